"""`trolley profiles ...`: compile a profile file for a platform, signed for iPads if asked."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from device_profiles import (
    ProfileError,
    ProfileValidationError,
    builtin_profile_texts,
    compile_profile,
    load_profile,
    load_signing_identity,
    sign_mobileconfig,
)

TARGET_CHOICES = ("apple", "chrome", "chromeos", "kiosk")


@click.group("profiles")
def group() -> None:
    """Restriction profiles: compile them for iPads, Chrome, ChromeOS and the kiosk client."""


def _fail(errors: list[ProfileError]) -> None:
    """Print every problem on its own line (file, line, key, allowed values) and exit 1."""
    noun = "problem" if len(errors) == 1 else "problems"
    click.echo(f"error: {len(errors)} {noun} in the profile; nothing was written", err=True)
    for error in errors:
        click.echo(f"  {error.describe()}", err=True)
    sys.exit(1)


@group.command("compile")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--target", required=True, type=click.Choice(TARGET_CHOICES), help="Platform")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--sign", is_flag=True, help="Sign the iPad profile (needs --cert and --key)")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--chain", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org-unit", "org_unit", default=None, help="ChromeOS organisational unit id")
@click.option("--prefix", default=None, help="Apple identifier prefix, e.g. uk.sch.oakfield")
@click.option("--profile-version", "version", default=1, show_default=True, type=click.IntRange(1))
def compile_command(
    file: Path,
    target: str,
    out: Path,
    sign: bool,
    cert: Path | None,
    key: Path | None,
    chain: Path | None,
    org_unit: str | None,
    prefix: str | None,
    version: int,
) -> None:
    """Compile profile FILE for --target and write it to --out; warnings go to stderr."""
    if sign and target != "apple":
        raise click.UsageError("--sign is only for --target apple (iPad .mobileconfig)")
    if sign and (cert is None or key is None):
        raise click.UsageError("--sign needs --cert CERT.pem and --key KEY.pem")
    if target == "chromeos" and not org_unit:
        raise click.UsageError("--target chromeos needs --org-unit ID")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {file.name}: {exc}") from exc
    options: dict[str, object] = {}
    if target == "chromeos":
        options["org_unit_id"] = org_unit
    elif target == "kiosk":
        options["version"] = version
    elif prefix:
        options["identifier_prefix"] = prefix
    try:
        profile = load_profile(text, file.name)
        result = compile_profile(profile, target, **options)
        content = result.content
        if sign and cert is not None and key is not None:
            identity = load_signing_identity(
                cert.read_bytes(), key.read_bytes(), chain.read_bytes() if chain else b""
            )
            content = sign_mobileconfig(
                content,
                identity.certificate,
                identity.private_key,
                identity.chain,
                now=datetime.now(UTC),
            )
    except ProfileValidationError as exc:
        _fail(list(exc.errors))
        return
    except ProfileError as exc:
        _fail([exc])
        return
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    out.write_bytes(content)
    signed = " (signed)" if sign else ""
    click.echo(f"Wrote {out}{signed}: {len(content):,} bytes, {len(result.warnings)} warnings.")


@group.command("library")
@click.argument("profile_id", required=False)
def library_command(profile_id: str | None) -> None:
    """List the built-in profiles, or print one's YAML to start from."""
    texts = builtin_profile_texts()
    if profile_id is None:
        for slug in texts:
            click.echo(slug)
        return
    if profile_id not in texts:
        raise click.ClickException(
            f"there is no built-in profile {profile_id!r}; choose one of {', '.join(texts)}"
        )
    click.echo(texts[profile_id], nl=False)
