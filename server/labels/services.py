"""QR asset labels for devices and places (P-REG-3), on the provisioning package's sheets.

A device's label encodes `<base URL>/d/<asset tag>`; a place's (a trolley, a safe, any room)
encodes `<base URL>/l/<place id>`, which opens that place's page (what lives there and what is
there now) after log-in. Neither carries personal data: a tag or a number, the school's name,
and a caption naming where the device lives.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.errors import LabelCodeError, ProvisioningError
from provisioning.labels import (
    L7160,
    L7163,
    MAX_CAPTION_CHARS,
    SINGLE_62X29,
    Label,
    LabelLayout,
    render_html,
    render_pdf,
    render_svg_sheets,
)
from provisioning.payload import is_valid_asset_tag, place_label_url
from server.devices.models import Device, DeviceStatus
from server.errors import NotFound, ValidationFailed
from server.schools.models import Location, School

LAYOUTS: dict[str, LabelLayout] = {"L7160": L7160, "L7163": L7163, "single": SINGLE_62X29}
LAYOUT_NAMES = {
    "L7160": "Avery L7160 (21 per A4 sheet, 63.5 × 38.1 mm)",
    "L7163": "Avery L7163 (14 per A4 sheet, 99.1 × 38.1 mm)",
    "single": "One 62 × 29 mm label per page (label printers)",
}
MEDIA_TYPES = {"pdf": "application/pdf", "html": "text/html", "svg": "image/svg+xml"}
MAX_LABELS = 2_000
CHUNK = 500
TAG_SPLIT = re.compile(r"[\s,;]+")


def place_url(base_url: str, location_id: int) -> str:
    """The URL printed on a place's label: `<base URL>/l/<id>`."""
    try:
        return place_label_url(base_url, location_id)
    except LabelCodeError as exc:
        raise ValidationFailed(
            "The server's address (TROLLEY_BASE_URL) is not an http(s) URL."
        ) from exc


def place_code(location: Location) -> str:
    """The large print on a place's label: its code, or its name written as a tag."""
    if location.code and is_valid_asset_tag(location.code):
        return location.code
    ascii_name = unicodedata.normalize("NFKD", location.name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-")[:32].rstrip("-._")
    return slug if slug and is_valid_asset_tag(slug) else f"PLACE-{location.id}"


def parse_tags(text: str) -> list[str]:
    """Asset tags typed or pasted one per line, or separated by commas or spaces."""
    return [t for t in TAG_SPLIT.split(text or "") if t]


@dataclass(frozen=True)
class Selection:
    """Which labels to print: devices by tag or by where they live, and places by id."""

    asset_tags: Sequence[str] = ()
    home_location_id: int | None = None
    location_ids: Sequence[int] = ()
    every_device: bool = False


@dataclass
class LabelSet:
    """The labels chosen, ready to render."""

    labels: list[Label] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [label.url for label in self.labels]


def _caption(name: str | None, slot: int | None) -> str | None:
    if not name:
        return None
    suffix = f" · slot {slot}" if slot else ""
    room = MAX_CAPTION_CHARS - len(suffix)
    return (name if len(name) <= room else name[: room - 1] + "…") + suffix


def _place(session: Session, school_id: int, location_id: int) -> Location:
    place = session.scalar(
        select(Location).where(Location.id == location_id, Location.school_id == school_id)
    )
    if place is None:
        raise NotFound("No such place in your school.")
    return place


def choose_labels(
    session: Session, school_id: int, base_url: str, selection: Selection
) -> LabelSet:
    """The labels for a selection, devices first, in the order a person will stick them on."""
    school = session.get_one(School, school_id)
    query = (
        select(Device.asset_tag, Device.home_slot, Location.name)
        .outerjoin(Location, Device.home_location_id == Location.id)
        .where(Device.school_id == school_id)
    )
    rows: list[tuple[str, int | None, str | None]] = []
    if selection.asset_tags:
        wanted = list(dict.fromkeys(selection.asset_tags))  # typed order, each once
        if len(wanted) > MAX_LABELS:
            raise ValidationFailed(f"Print at most {MAX_LABELS:,} labels at a time.")
        found: dict[str, tuple[str, int | None, str | None]] = {}
        for start in range(0, len(wanted), CHUNK):
            for tag, slot, name in session.execute(
                query.where(Device.asset_tag.in_(wanted[start : start + CHUNK]))
            ).all():
                found[tag] = (tag, slot, name)
        unknown = [t for t in wanted if t not in found]
        if unknown:
            raise ValidationFailed(
                "These asset tags are not in your register: " + ", ".join(unknown[:50]) + ".",
                details=[{"field": "asset_tags", "message": f"unknown: {t}"} for t in unknown],
            )
        rows.extend(found[t] for t in wanted)
    live = query.where(Device.status != DeviceStatus.DISPOSED)
    if selection.home_location_id is not None:
        place = _place(session, school_id, selection.home_location_id)
        rows.extend(
            session.execute(
                live.where(Device.home_location_id == place.id).order_by(
                    Device.home_slot, Device.asset_tag
                )
            ).all()
        )
    if selection.every_device:
        rows.extend(session.execute(live.order_by(Device.asset_tag)).all())
    rows = list({row[0]: row for row in rows}.values())  # a device chosen twice prints once
    places = [_place(session, school_id, i) for i in dict.fromkeys(selection.location_ids)]
    if len(rows) + len(places) > MAX_LABELS:
        raise ValidationFailed(f"Print at most {MAX_LABELS:,} labels at a time.")
    if not rows and not places:
        raise ValidationFailed("Choose some devices or places to print labels for.")
    try:
        labels = [
            Label.for_device(base_url, tag, school.name, _caption(name, slot))
            for tag, slot, name in rows
        ]
        labels += [
            Label(
                place_code(place),
                place_url(base_url, place.id),
                school.name,
                _caption(f"{place.kind.value.capitalize()}: {place.name}", None),
            )
            for place in places
        ]
    except ProvisioningError as exc:
        raise ValidationFailed(f"These labels cannot be printed: {exc}.") from exc
    return LabelSet(labels)


@dataclass(frozen=True)
class RenderedLabels:
    """Printable output: one PDF or HTML document, or one SVG per sheet."""

    media_type: str
    extension: str
    parts: list[bytes]
    labels: int


def render_labels(
    chosen: LabelSet, *, layout: str = "L7160", fmt: str = "pdf", start_position: int = 1
) -> RenderedLabels:
    """Lay the labels out on sheets; `start_position` skips labels already used on sheet one."""
    if layout not in LAYOUTS:
        raise ValidationFailed(f"Choose a label layout: {', '.join(LAYOUTS)}.")
    if fmt not in MEDIA_TYPES:
        raise ValidationFailed(f"Choose an output: {', '.join(MEDIA_TYPES)}.")
    sheet = LAYOUTS[layout]
    try:
        if fmt == "pdf":
            parts = [render_pdf(chosen.labels, sheet, start_position=start_position)]
        elif fmt == "html":
            page = render_html(
                chosen.labels,
                sheet,
                start_position=start_position,
                title=f"Asset labels ({sheet.name})",
            )
            parts = [page.encode("utf-8")]
        else:
            parts = [
                svg.encode("utf-8")
                for svg in render_svg_sheets(chosen.labels, sheet, start_position=start_position)
            ]
    except ProvisioningError as exc:
        message = str(exc)
        raise ValidationFailed(message[:1].upper() + message[1:] + ".") from exc
    return RenderedLabels(MEDIA_TYPES[fmt], fmt, parts, len(chosen.labels))


def place_for_label(session: Session, school_id: int, location_id: int) -> Location:
    """The place a scanned place label points at (only in the scanner's own school)."""
    return _place(session, school_id, location_id)
