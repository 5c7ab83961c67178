"""`trolley labels`: print QR label sheets from the command line (P-REG-3)."""

from __future__ import annotations

from pathlib import Path

import click

from server.cli_support import Context, fail_on_domain_errors, pass_ctx, pick_school
from server.imports.services import Places
from server.labels import services
from server.schools.services import locations

FORMATS = {".pdf": "pdf", ".html": "html", ".htm": "html", ".svg": "svg"}


@click.command("labels")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="FILE.pdf, FILE.html, or FILE.svg (one file per sheet when there are several)",
)
@click.option(
    "--layout", type=click.Choice(list(services.LAYOUTS)), default="L7160", show_default=True
)
@click.option(
    "--school", "school_slug", default=None, help="School short name (default: the only one)"
)
@click.option("--start", default=1, show_default=True, help="First unused label on the first sheet")
@click.option("--in", "home", default=None, help="Label the devices that live in this place")
@click.option("--place", "place_names", multiple=True, help="Also print a label for this place")
@click.argument("tags", nargs=-1)
@pass_ctx
@fail_on_domain_errors
def group(
    ctx: Context,
    out: Path,
    layout: str,
    school_slug: str | None,
    start: int,
    home: str | None,
    place_names: tuple[str, ...],
    tags: tuple[str, ...],
) -> None:
    """Print QR labels for TAG ... (every device when no tags, --in or --place are given)."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise click.BadParameter(
            "the file name must end in .pdf, .html or .svg", param_hint="--out"
        )
    with ctx.db.begin() as session:
        school = pick_school(session, school_slug)
        known = Places(locations(session, school.id))
        home_id = _place_id(known, home, "--in") if home else None
        selection = services.Selection(
            asset_tags=list(tags),
            home_location_id=home_id,
            location_ids=[_place_id(known, name, "--place") for name in place_names],
            every_device=not (tags or home or place_names),
        )
        chosen = services.choose_labels(session, school.id, ctx.settings.base_url, selection)
    rendered = services.render_labels(chosen, layout=layout, fmt=fmt, start_position=start)
    if len(rendered.parts) == 1:
        out.write_bytes(rendered.parts[0])
        written = [out]
    else:
        written = [
            out.with_name(f"{out.stem}-{n}{out.suffix}") for n in range(1, len(rendered.parts) + 1)
        ]
        for path, part in zip(written, rendered.parts, strict=True):
            path.write_bytes(part)
    click.echo(
        f"Wrote {rendered.labels} label{'' if rendered.labels == 1 else 's'} "
        f"({services.LAYOUT_NAMES[layout]}) to {', '.join(map(str, written))}."
    )


def _place_id(known: Places, name: str, option: str) -> int:
    found, why = known.find(name)
    if found is None:
        raise click.BadParameter(why or f"no place called {name!r}", param_hint=option)
    return found.id
