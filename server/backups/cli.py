"""`trolley backup`, `trolley restore`, `trolley restore-drill` and `trolley backup-keygen`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import make_url

from server.backups import services
from server.cli_support import Context, fail_on_domain_errors, pass_ctx
from server.db import utcnow

passphrase_file = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="TROLLEY_BACKUP_PASSPHRASE_FILE",
    help="Read the passphrase from the first line of this file (default: ask for it)",
)

recipient_file = click.option(
    "--recipient",
    "recipient",
    # Checked when read, with a message that says what the file should hold.
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="TROLLEY_BACKUP_RECIPIENT_FILE",
    help="Seal to the public key(s) in this file (from `trolley backup-keygen`) instead of a "
    "passphrase: this server then holds nothing that opens its backups",
)
identity_file = click.option(
    "--identity",
    "identity",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="TROLLEY_BACKUP_IDENTITY_FILE",
    help="Open a backup sealed to a public key with the private key in this file",
)


def _opener(
    archive: Path, passphrase_file: Path | None, identity: Path | None
) -> str | services.Identities:
    """What opens this backup: the private key given, or the passphrase (asked for if need be)."""
    header = services.describe(archive)
    if identity is not None:
        if passphrase_file is not None:
            raise click.ClickException("give either --identity or --passphrase-file, not both")
        click.echo(f"{archive.name}: a Trolley backup taken {header.about.get('created_at', '?')}.")
        return services.read_identities(identity)
    if header.kdf is None:
        # Sealed to a key pair: a typed passphrase could never open it, so do not ask for one.
        raise click.ClickException(
            f"{archive.name} is sealed to a key pair: give its private key with --identity"
        )
    return _passphrase(passphrase_file, new=False, opening=archive)


def _passphrase(file: Path | None, *, new: bool, opening: Path | None = None) -> str:
    """The backup passphrase from a file (timers) or typed (twice for a new backup)."""
    if opening is not None:
        # Not a backup at all: say so before asking for anything.
        about = services.describe(opening).about
        click.echo(f"{opening.name}: a Trolley backup taken {about.get('created_at', '?')}.")
    if file is None:
        if not sys.stdin.isatty() and new:
            raise click.ClickException("give the passphrase with --passphrase-file")
        return str(click.prompt("Backup passphrase", hide_input=True, confirmation_prompt=new))
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise click.ClickException(
            f"cannot read the passphrase file {file}: {exc.strerror}"
        ) from exc
    if not lines or not lines[0].strip():
        raise click.ClickException(f"the passphrase file {file} is empty")
    return lines[0]


@click.command("backup")
@click.argument("target", type=click.Path(path_type=Path))
@passphrase_file
@recipient_file
@click.option(
    "--keep-daily",
    type=click.IntRange(min=1),
    default=None,
    help="TARGET is a folder: keep the newest backup of each of this many days",
)
@click.option(
    "--keep-monthly",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="...and of each of this many months",
)
@pass_ctx
@fail_on_domain_errors
def backup(
    ctx: Context,
    target: Path,
    passphrase_file: Path | None,
    recipient: Path | None,
    keep_daily: int | None,
    keep_monthly: int,
) -> None:
    """Write the database and every key to one encrypted file, while Trolley keeps running.

    TARGET is a file, or a folder to write a dated file in.
    """
    lock: str | services.Recipients
    if recipient is not None:
        if passphrase_file is not None:
            raise click.ClickException("give either --recipient or --passphrase-file, not both")
        lock = services.read_recipients(recipient)
    else:
        lock = _passphrase(passphrase_file, new=True)
        services.check_passphrase(lock)
    retention = (
        services.Retention(daily=keep_daily or 1, monthly=keep_monthly)
        if keep_daily or keep_monthly
        else None
    )
    written = services.take_backup(ctx.db, ctx.settings, target, lock, retention=retention)
    if isinstance(lock, services.Recipients):
        sealed = (
            f"sealed to the public key(s) in {recipient}. Only the matching private key opens "
            "it; keep that key off this server."
        )
    else:
        sealed = (
            "sealed with the passphrase. Without the passphrase it cannot be restored; keep the "
            "passphrase apart from the backups."
        )
    click.echo(
        f"Backup written to {written.path} ({written.size:,} bytes): the database and every key, "
        + sealed
    )
    if written.removed:
        click.echo(f"Removed {len(written.removed)} older backup(s) beyond what is kept.")


def _where(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@passphrase_file
@identity_file
@click.option("--yes", is_flag=True, help="Do not ask for confirmation")
@pass_ctx
@fail_on_domain_errors
def restore(
    ctx: Context, file: Path, passphrase_file: Path | None, identity: Path | None, yes: bool
) -> None:
    """Bring back the database and keys from FILE, on this or a new machine (stop Trolley first)."""
    opener = _opener(file, passphrase_file, identity)
    locations = ctx.locations
    with services.open_backup(file, opener) as opened:
        placement = services.plan_restore(opened, locations, ctx.environ())
        if not yes:
            click.confirm(
                f"This replaces everything in {_where(locations.database_url)} with the backup "
                f"taken {opened.created_at}, and puts its keys in place. Continue?",
                abort=True,
            )
        services.restore(opened, locations, placement)
        report = services.after_restore(ctx.db, ctx.settings, opened)
    click.echo(f"Restored the database from {file}.")
    for note in placement.notes:
        click.echo(f"  {note}")
    for line in report.lines():
        click.echo(f"  {line}")
    if not report.ok:
        raise click.ClickException("the restored server did not pass every check (above)")
    click.echo(
        "Start Trolley again. With Mosquitto, run `trolley mqtt-config` first: it makes the "
        "broker's files again from the restored database."
    )


@click.command("restore-drill")
@click.argument("file", type=click.Path(path_type=Path))
@passphrase_file
@identity_file
@click.option(
    "--scratch-database",
    "scratch_url",
    default=None,
    help="An empty database to restore into (default: a temporary one, removed afterwards)",
)
@pass_ctx
@fail_on_domain_errors
def restore_drill(
    ctx: Context,
    file: Path,
    passphrase_file: Path | None,
    identity: Path | None,
    scratch_url: str | None,
) -> None:
    """Restore FILE (or a folder's newest backup) into a scratch place, check it and report.

    The live server is not touched.
    """
    if not file.exists():
        raise click.ClickException(f"there is no file or folder {file}")
    if file.is_dir():
        found = services.newest(file)
        if found is None:
            raise click.ClickException(f"there is no Trolley backup in {file}")
        file = found
    opener = _opener(file, passphrase_file, identity)
    report = services.drill(file, opener, ctx.locations.database_url, scratch_url=scratch_url)
    click.echo(f"Restore drill of {file}:")
    for line in report.lines():
        click.echo(f"  {line}")
    services.record_drill(ctx.db, file.name, report)
    if not report.ok:
        raise click.ClickException("the drill failed: this backup would not recover the school")
    click.echo("The drill passed: this backup recovers the school.")


@click.command("backup-keygen")
@click.argument("private_key", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the public key (default: PRIVATE_KEY with .pub added)",
)
@fail_on_domain_errors
def backup_keygen(private_key: Path, public_key: Path | None) -> None:
    """Make a key pair for backups: the server seals to the public key; the school keeps the other.

    Best run on a machine other than the server. `age-keygen` makes the same kind of key.
    """
    public_file = public_key or private_key.with_name(private_key.name + ".pub")
    public = services.generate(private_key, public_file, utcnow())
    click.echo(f"Public key {public} written to {public_file}.")
    click.echo(f"  Give it to the server: trolley backup FOLDER --recipient {public_file.name}")
    click.echo(
        f"Private key written to {private_key} (readable by you only). It alone opens the "
        "backups: print it or put it in the school's password manager, keep a copy in the "
        "school safe, and do not leave it on the server, a laptop, a phone or a USB stick."
    )


commands = [backup, restore, restore_drill, backup_keygen]
