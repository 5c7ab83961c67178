"""`trolley devices import|export`: the register to and from the SBM's spreadsheet (P-REG-1).

The `devices` group lives here; another domain adds its own device commands to the same group
with `from server.imports.commands import group` and `@group.command(...)` in its commands.py
(and may re-export `group`: adding the same group to the CLI twice is harmless).
"""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.cli import Context, _fail_on_domain_errors, pass_ctx
from server.imports import services
from server.schools.models import School
from server.schools.services import locations


@click.group("devices")
def group() -> None:
    """The asset register: import from and export to a spreadsheet."""


def pick_school(session: Session, slug: str | None) -> School:
    """The school named by --school, or the only school there is."""
    if slug:
        from server.auth.services import get_school

        return get_school(session, slug)
    found = session.scalars(select(School).limit(2)).all()
    if len(found) != 1:
        raise click.ClickException(
            "say which school with --school SLUG"
            if found
            else "there is no school yet: run `trolley schools create SLUG NAME` first"
        )
    return found[0]


def _progress(stage: str, done: int, total: int) -> None:
    click.echo(f"{stage.capitalize()}: {done:,} of {total:,} rows", err=True)


@group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--school", "school_slug", default=None, help="School short name (default: the only one)"
)
@click.option("--dry-run", is_flag=True, help="Check every row and report, but import nothing")
@click.option("--create-locations", is_flag=True, help="Add places the file names but Places lacks")
@click.option("--parent", "parent_name", default=None, help="Site or building for new rooms")
@pass_ctx
@_fail_on_domain_errors
def import_command(
    ctx: Context,
    file: Path,
    school_slug: str | None,
    dry_run: bool,
    create_locations: bool,
    parent_name: str | None,
) -> None:
    """Import FILE.csv: every row, or nothing if any row has a problem (exit code 1)."""
    data = file.read_bytes()
    with ctx.db.begin() as session:
        school = pick_school(session, school_slug)
        school_name = school.name
        options = services.Options(create_locations=create_locations)
        if parent_name:
            options.location_parent_id = _parent_id(session, school.id, parent_name)
        plan, result = services.import_file(
            session,
            school.id,
            data,
            actor=None,
            options=options,
            filename=file.name,
            dry_run=dry_run,
            progress=_progress,
        )
    click.echo(f"Read {file.name} ({plan.encoding}, {plan.rows_read:,} rows) for {school_name}.")
    summary = plan.summary
    click.echo(
        f"{summary['new']:,} new, {summary['updated']:,} updated, "
        f"{summary['unchanged']:,} unchanged."
    )
    for warning in plan.warnings:
        click.echo(f"Note: {warning}", err=True)
    if plan.missing_places and plan.options.create_locations:
        click.echo(f"Places to add (in {plan.places_parent}): {', '.join(plan.missing_places)}")
    if not plan.ok:
        for problem in plan.problems:
            click.echo(str(problem), err=True)
        click.echo(
            f"{len(plan.bad_rows):,} row(s) have problems; nothing was imported. "
            "Correct them and run this again.",
            err=True,
        )
        raise SystemExit(1)
    if result is None:
        click.echo("Dry run: nothing was imported.")
        return
    click.echo(
        f"Imported: {result.created:,} new, {result.updated:,} updated, "
        f"{result.unchanged:,} unchanged."
        + (
            f" Added to Places: {', '.join(result.places_created)}."
            if result.places_created
            else ""
        )
    )


def _parent_id(session: Session, school_id: int, name: str) -> int:
    found, why = services.Places(locations(session, school_id)).find(name)
    if found is None:
        raise click.BadParameter(why or f"no place called {name!r}", param_hint="--parent")
    return found.id


@group.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--school", "school_slug", default=None, help="School short name (default: the only one)"
)
@pass_ctx
@_fail_on_domain_errors
def export_command(ctx: Context, file: Path, school_slug: str | None) -> None:
    """Write the register to FILE.csv or FILE.xlsx, in the columns the import reads."""
    fmt = file.suffix.lower().lstrip(".")
    if fmt not in services.MEDIA_TYPES:
        raise click.BadParameter("the file name must end in .csv or .xlsx", param_hint="FILE")
    with ctx.db.begin() as session:
        school = pick_school(session, school_slug)
        exported = services.export_register(session, school.id, fmt)
    file.write_bytes(exported.content)
    click.echo(f"Wrote {exported.devices:,} devices to {file}.")
