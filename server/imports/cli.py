"""`trolley devices import|export`: the register to and from the SBM's spreadsheet (P-REG-1).

The `devices` group lives here; another domain adds its own device commands to the same group
with `from server.imports.cli import group` and `@group.command(...)` in its cli.py
(and may re-export `group`: adding the same group to the CLI twice is harmless).
"""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy.orm import Session

from server.cli_support import Context, fail_on_domain_errors, pass_ctx, pick_school
from server.imports import services
from server.schools.services import locations


@click.group("devices")
def group() -> None:
    """The asset register: import from and export to a spreadsheet."""


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
@click.option(
    "--map",
    "column_map",
    multiple=True,
    metavar="FIELD=HEADING",
    help='What a column holds, e.g. --map "Serial=Serial Number" (repeat for more; '
    '"ignore=Heading" skips one)',
)
@click.option(
    "--header-row", type=click.IntRange(min=1), default=None, help="The row holding the headings"
)
@click.option(
    "--retag",
    multiple=True,
    metavar="TAG",
    help="Let the row with this new asset tag re-tag the device that has its serial number",
)
@pass_ctx
@fail_on_domain_errors
def import_command(
    ctx: Context,
    file: Path,
    school_slug: str | None,
    dry_run: bool,
    create_locations: bool,
    parent_name: str | None,
    column_map: tuple[str, ...],
    header_row: int | None,
    retag: tuple[str, ...],
) -> None:
    """Import FILE (.csv or .xlsx): every row, or nothing if any row has a problem (exit 1)."""
    data = file.read_bytes()
    options = services.Options(
        create_locations=create_locations, header_row=header_row, retag=list(retag)
    )
    if column_map:
        headings = services.read_sheet(data, header_row).headings
        try:
            options.mapping = services.apply_column_map(headings, column_map)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--map") from exc
    with ctx.db.begin() as session:
        school = pick_school(session, school_slug)
        school_name = school.name
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
    note = f"; {plan.encoding_note}" if plan.encoding_note else ""
    click.echo(
        f"Read {file.name} ({plan.encoding}{note}; headings on row {plan.header_row}, "
        f"{plan.rows_read:,} rows) for {school_name}."
    )
    for heading, words in plan.conventions.items():
        click.echo(f"{heading}: {words}.")
    summary = plan.summary
    click.echo(
        f"{summary['new']:,} new, {summary['updated']:,} updated, "
        f"{summary['unchanged']:,} unchanged."
    )
    # Problems first, then the notes summarised by kind, so no real error drowns in notes.
    for problem in plan.problems:
        click.echo(str(problem), err=True)
    for group in plan.warning_groups:
        click.echo(f"Note: {group}", err=True)
    for offer in plan.retag_offers:
        click.echo(
            f"To re-tag {offer.current_tag} as {offer.asset_tag} (row {offer.row}), "
            f"run this again with --retag {offer.asset_tag}.",
            err=True,
        )
    if plan.missing_places and plan.options.create_locations:
        click.echo(f"Places to add (in {plan.places_parent}): {', '.join(plan.missing_places)}")
    if not plan.ok:
        click.echo(
            f"{len(plan.bad_rows):,} row(s) have problems; nothing was imported. "
            "Correct them and run this again.",
            err=True,
        )
        raise SystemExit(1)
    if dry_run:
        for row in plan.rows:
            if row.action == "update":
                changes = "; ".join(f"{w}: {b} → {a}" for w, b, a in row.shown)
                click.echo(f"Row {row.row}, {row.asset_tag}: {changes}")
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
@fail_on_domain_errors
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
