"""`trolley devices shared-serials`: for the trust's administrators, never shown to a school."""

from __future__ import annotations

import click

from server.cli_support import Context, pass_ctx


@click.group("devices")
def group() -> None:
    """Devices in the register."""


@group.command("shared-serials")
@pass_ctx
def shared_serials(ctx: Context) -> None:
    """List serial numbers registered in more than one school, with each school's asset tag."""
    from server.devices.services import shared_serials as find

    with ctx.db.begin() as session:
        found = find(session)
    if not found:
        click.echo("No serial number is registered in more than one school.")
        return
    for row in found:
        click.echo(f"{row.serial}\t{row.school}\t{row.asset_tag}")
