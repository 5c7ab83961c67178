"""`trolley keys rotate`: re-seal every secret under the newest data key."""

from __future__ import annotations

import click


@click.group("keys")
def group() -> None:
    """Keys that encrypt secrets at rest."""


@group.command("rotate")
@click.pass_obj
def rotate(ctx: object) -> None:
    """Re-seal escrowed credentials and second-factor seeds under the newest data key."""
    from server.cli_support import Context
    from server.crypto import SecretBox
    from server.escrow.services import rotate as rotate_all

    assert isinstance(ctx, Context)
    with ctx.db.begin() as session:
        count = rotate_all(session, SecretBox(ctx.settings.data_keys))
    click.echo(f"Re-sealed {count} secret(s) under the newest key; older keys can now be retired.")
