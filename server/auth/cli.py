"""`trolley users deactivate|reactivate|role` and `trolley schools security`: the server's own
command line, for whoever runs Trolley for the trust."""

from __future__ import annotations

import click

from server.cli_support import Context, fail_on_domain_errors, pass_ctx


@click.group("users")
def users() -> None:
    """People who log in."""


@users.command("deactivate")
@click.argument("email")
@click.option("--reason", required=True, help="Why (kept in the activity trail)")
@pass_ctx
@fail_on_domain_errors
def deactivate(ctx: Context, email: str, reason: str) -> None:
    """Turn an account off: no log-in, its sessions end and its tokens are revoked."""
    from server.auth.services import deactivate as turn_off
    from server.auth.services import user_by_email

    with ctx.db.begin() as session:
        turn_off(session, None, user_by_email(session, email), reason)
    click.echo(f"{email} is turned off; its sessions and tokens have ended.")


@users.command("reactivate")
@click.argument("email")
@click.option("--reason", required=True, help="Why (kept in the activity trail)")
@pass_ctx
@fail_on_domain_errors
def reactivate(ctx: Context, email: str, reason: str) -> None:
    """Turn an account back on (it waits the cooling-off again before approving)."""
    from server.auth.services import reactivate as turn_on
    from server.auth.services import user_by_email

    with ctx.db.begin() as session:
        turn_on(session, None, user_by_email(session, email), reason)
    click.echo(f"{email} is turned back on.")


@users.command("role")
@click.argument("email")
@click.argument("role")
@pass_ctx
@fail_on_domain_errors
def role(ctx: Context, email: str, role: str) -> None:
    """Give EMAIL the role ROLE at once (sessions and tokens end; approvers are announced)."""
    from server.auth.models import Role
    from server.auth.services import change_role, user_by_email

    try:
        new_role = Role(role)
    except ValueError as exc:
        raise click.BadParameter(
            f"choose one of {', '.join(r.value for r in Role)}", param_hint="ROLE"
        ) from exc
    with ctx.db.begin() as session:
        change_role(session, None, user_by_email(session, email), new_role)
    click.echo(f"{email} is now {new_role.label.lower()}.")


@click.group("schools")
def schools() -> None:
    """Schools in this Trolley."""


@schools.command("security")
@click.argument("slug")
@click.option("--idle-minutes", type=int, default=None, help="Sign out after this idle time")
@click.option(
    "--approver-cooling-off-days",
    type=int,
    default=None,
    help="Days before a new, re-roled or re-activated account may approve destructive commands",
)
@click.option("--token-days", type=int, default=None, help="The longest an API token may last")
@pass_ctx
@fail_on_domain_errors
def security(
    ctx: Context,
    slug: str,
    idle_minutes: int | None,
    approver_cooling_off_days: int | None,
    token_days: int | None,
) -> None:
    """Show, or change, a school's security settings."""
    from server.auth.services import get_school, set_security
    from server.auth.services import security as current

    with ctx.db.begin() as session:
        school = get_school(session, slug)
        shown = current(session, school.id)
        if (idle_minutes, approver_cooling_off_days, token_days) != (None, None, None):
            shown = set_security(
                session,
                None,
                school.id,
                idle_minutes=idle_minutes,
                approver_cooling_off_days=approver_cooling_off_days,
                token_days=token_days,
            )
    click.echo(
        f"{slug}: idle time-out {shown.idle_minutes} minutes; approvers wait "
        f"{shown.approver_cooling_off_days} days; tokens last at most {shown.token_days} days."
    )


commands = [users, schools]
