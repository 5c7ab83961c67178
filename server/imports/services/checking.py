"""Checking every row against the register, loaded once, before anything is imported."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.auth.permissions import Permission, has_permission
from server.devices.models import Device, DeviceStatus
from server.devices.services import DeviceFields, normalise_serial
from server.devices.services.parsing import DecimalMark
from server.errors import Forbidden
from server.imports.pages import Options, Plan, PlannedRow, Problem, RetagOffer
from server.imports.services.cells import _looks_like, _RowReader, _split_make_model
from server.imports.services.columns import BY_KEY, CHANGE_LABELS, describe_value, guess_mapping
from server.imports.services.conventions import Conventions
from server.imports.services.places import Places, _missing_place_problems, _resolve_parent
from server.imports.services.reading import Sheet, read_sheet
from server.imports.services.shared import _KNOWN_COLUMNS, Progress, _Known, _norm, _notify
from server.schools.services import location_path, locations


def check_mapping(mapping: Sequence[str | None], headings: Sequence[str]) -> list[str]:
    """Why a chosen set of columns cannot work, in plain words (empty if it can)."""
    reasons = []
    if len(mapping) != len(headings):
        return [f"Choose what each of the {len(headings)} columns holds."]
    unknown = [m for m in mapping if m is not None and m not in BY_KEY]
    if unknown:
        reasons.append(f"Unknown column choice: {', '.join(map(str, unknown))}.")
    for key, times in Counter(m for m in mapping if m).items():
        if times > 1 and key in BY_KEY:
            reasons.append(f"“{BY_KEY[key].heading}” is chosen for {times} columns; choose one.")
    chosen = set(mapping)
    for key in ("asset_tag", "serial"):
        if key not in chosen:
            reasons.append(f"No column holds the {BY_KEY[key].heading.lower()}: choose one.")
    for key in ("make", "model"):
        if key not in chosen and "make_model" not in chosen:
            reasons.append(
                f"No column holds the {key}: choose “{BY_KEY[key].heading}” or “Make/Model”."
            )
    return reasons


def plan_import(
    session: Session,
    school_id: int,
    sheet: Sheet,
    *,
    actor: User | None,
    options: Options,
    filename: str,
    progress: Progress | None = None,
) -> Plan:
    """Check every row against the rules and the register; decide new, update or unchanged."""
    mapping = options.mapping if options.mapping is not None else guess_mapping(sheet.headings)
    plan = Plan(
        filename=filename,
        encoding=sheet.encoding,
        headings=sheet.headings,
        mapping=list(mapping),
        options=options,
        samples=[cells for _, cells in sheet.rows[:3]],
        header_row=sheet.header_row,
        encoding_note=sheet.encoding_note,
    )
    reasons = check_mapping(mapping, sheet.headings)
    if reasons:
        plan.problems.extend(Problem(sheet.header_row, None, None, r) for r in reasons)
        return plan
    decimal: DecimalMark = "," if sheet.decimal == "," else "."
    _Checker(session, school_id, plan, actor, decimal).run(sheet.rows, progress)
    return plan


class _Checker(_RowReader):
    """One pass over the rows with the register loaded once (no query per row)."""

    def __init__(
        self,
        session: Session,
        school_id: int,
        plan: Plan,
        actor: User | None,
        decimal: DecimalMark = ".",
    ) -> None:
        self.session = session
        self.school_id = school_id
        self.plan = plan
        self.actor = actor
        self.columns = {key: i for i, key in enumerate(plan.mapping) if key is not None}
        self.conventions = Conventions(decimal)
        self.retag = set(plan.options.retag)
        known = [
            _Known(*row)
            for row in session.execute(
                select(*_KNOWN_COLUMNS).where(Device.school_id == school_id)
            ).all()
        ]
        self.by_tag = {d.asset_tag: d for d in known}
        self.by_serial = {d.serial: d for d in known}
        self.by_id = {d.id: d for d in known}
        self.slots = {
            (d.home_location_id, d.home_slot): d.id for d in known if d.home_slot is not None
        }
        self.homes: Counter[int] = Counter(
            d.home_location_id
            for d in known
            if d.home_location_id is not None and d.status is not DeviceStatus.DISPOSED
        )
        self.places = Places(locations(session, school_id))
        self.seen_tags: dict[str, int] = {}
        self.seen_serials: dict[str, int] = {}
        self.seen_devices: dict[int, int] = {}
        self.seen_slots: dict[tuple[int, int], int] = {}
        self.new_names: dict[str, str] = {}
        self.arrivals: dict[int, list[int]] = {}  # place id → rows moving a device in
        self.departures: Counter[int] = Counter()
        self.may_move = actor is None or actor.role is Role.SBM

    # -- the pass

    def run(self, rows: Sequence[tuple[int, list[str]]], progress: Progress | None) -> None:
        total = len(rows)
        width = len(self.plan.headings)
        self.conventions.decide(
            self.columns,
            rows,
            lambda row, key, message, value: self._problem(row, key, message, value),
        )
        self.plan.conventions = {
            self.plan.headings[self.columns[key]]: words
            for key, words in self.conventions.described.items()
        }
        planned: list[PlannedRow] = []
        for done, (number, cells) in enumerate(rows, start=1):
            _notify(progress, "checking", done, total)
            if not any(c.strip() for c in cells):
                continue  # blank rows between blocks of devices are common
            self.plan.rows_read += 1
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                self._problem(
                    number,
                    None,
                    f"This row has {len(cells)} cells but there are {width} headings: a comma "
                    "inside a cell may have split it. Put that cell in quotes, or save the file "
                    "from Excel as CSV.",
                )
                continue
            result = self._row(number, cells)
            if result is not None:
                planned.append(result)
        self._check_capacity()
        bad = set(self.plan.bad_rows)
        self.plan.rows = [r for r in planned if r.row not in bad]

    def _row(self, number: int, cells: list[str]) -> PlannedRow | None:
        """Check one row; its plan if it has no problems, else None (its problems recorded)."""
        before = len(self.plan.problems)
        text, refused = self._cells(number, cells)
        tag = text.get("asset_tag", "")
        serial = normalise_serial(text.get("serial", ""))
        make, model = text.get("make", ""), text.get("model", "")
        if text.get("make_model"):
            split_make, split_model = _split_make_model(text["make_model"])
            make, model = make or split_make, model or split_model
        for key, value, what in (
            ("asset_tag", tag, "an asset tag"),
            ("serial", text.get("serial", ""), "a serial number"),
            ("make", make, "a make"),
            ("model", model, "a model"),
        ):
            looks = _looks_like(value) if value else None
            if looks:
                self._problem(
                    number,
                    key,
                    f"This looks like {looks}, not {what}: are the columns in the right order?",
                    value,
                )
            elif not value and key not in refused:
                self._problem(
                    number,
                    key,
                    f"The {BY_KEY[key].heading.lower()} is empty; every device needs one.",
                )
        device = self._match(number, tag, serial)
        fields = self._fields(number, text, tag, serial, make, model, device)
        home_id, slot, new_place = self._home(number, text, device)
        planned = self._decide(number, fields, device, home_id, slot, new_place)
        if planned.action != "unchanged":
            # A row that changes nothing writes nothing, so only rows that write are re-judged.
            self._rules(number, fields, before)
        if len(self.plan.problems) > before:
            return None
        if home_id is not None and home_id != (device.home_location_id if device else None):
            self.arrivals.setdefault(home_id, []).append(number)
            if device is not None and device.home_location_id is not None:
                self.departures[device.home_location_id] += 1
        return planned

    def _match(self, number: int, tag: str, serial: str) -> _Known | None:
        """The register's device for this row (by tag, else serial), and duplicate checks; only
        this school's register counts (another school's serials are neither shown nor a bar)."""
        device = self.by_tag.get(tag) if tag else None
        by_serial = self.by_serial.get(serial) if serial else None
        if device is None and by_serial is not None:
            if tag and tag not in self.retag:
                # A new tag on a known serial: a new label on the device, or a typing mistake.
                self.plan.retag_offers.append(RetagOffer(number, tag, by_serial.asset_tag))
                self._problem(
                    number,
                    "serial",
                    f"Serial number {serial} belongs to {by_serial.asset_tag} in the register. "
                    f"If {tag} is {by_serial.asset_tag}'s new asset tag, choose “Re-tag” for "
                    "this row; otherwise correct the serial number.",
                    serial,
                )
            else:
                device = by_serial
        elif device is not None and by_serial is not None and by_serial.id != device.id:
            self._problem(
                number,
                "serial",
                f"Serial number {serial} belongs to {by_serial.asset_tag} in the register, "
                f"not to {tag}.",
                serial,
            )
        if tag and tag in self.seen_tags:
            self._problem(
                number,
                "asset_tag",
                f"Asset tag {tag} is also on row {self.seen_tags[tag]} of this file.",
                tag,
            )
        elif tag:
            self.seen_tags[tag] = number
        if serial and serial in self.seen_serials:
            self._problem(
                number,
                "serial",
                f"Serial number {serial} is also on row {self.seen_serials[serial]} of this file.",
                serial,
            )
        elif serial:
            self.seen_serials[serial] = number
        if device is None:
            return None
        if device.id in self.seen_devices:
            self._problem(
                number,
                None,
                f"This is the same device ({device.asset_tag}) as row "
                f"{self.seen_devices[device.id]}.",
            )
        else:
            self.seen_devices[device.id] = number
        if device.status is DeviceStatus.DISPOSED:
            self._problem(
                number,
                "asset_tag",
                f"{device.asset_tag} has been disposed of; an import cannot change it.",
                tag,
            )
        return device

    def _home(
        self, number: int, text: Mapping[str, str], device: _Known | None
    ) -> tuple[int | None, int | None, str | None]:
        """(home place id, slot, name of a place to create) for this row."""
        current = device.home_location_id if device is not None else None
        current_slot = device.home_slot if device is not None else None
        value = text.get("location", "")
        home_id, new_place = current, None
        if value:
            place, why = self.places.find(value)
            if why:
                self._problem(number, "location", why, value)
                return current, current_slot, None
            if place is not None:
                home_id = place.id
            elif re.search(r"[›>]", value):
                self._problem(
                    number, "location", "There is no place at that path in Places.", value
                )
                return current, current_slot, None
            else:
                # One new place per name, however its spelling varies in case and spaces.
                new_place = self.new_names.setdefault(_norm(value), " ".join(value.split()))
                home_id = None
                self.plan.missing_places.setdefault(new_place, []).append(number)
        moved = new_place is not None or home_id != current
        if "slot" in self.columns:
            slot_text = text.get("slot", "")
            slot = None
            if slot_text:
                if not slot_text.isdigit() or not 1 <= int(slot_text) <= 200:
                    self._problem(number, "slot", "Write the slot as a number from 1.", slot_text)
                    return home_id, None, new_place
                slot = int(slot_text)
        else:
            slot = None if moved else current_slot
        if moved and device is not None and not self.may_move:
            self._problem(
                number,
                "location",
                f"{device.asset_tag} lives somewhere else in the register. Only the school "
                "business manager changes where devices live: use “Move” on the device page.",
                value,
            )
        if slot is not None:
            self._check_slot(number, home_id, slot, device, new_place)
        return home_id, slot, new_place

    def _check_slot(
        self, number: int, home_id: int | None, slot: int, device: _Known | None, new: str | None
    ) -> None:
        place = self.places.by_id.get(home_id) if home_id is not None else None
        if place is None or place.capacity is None:
            name = place.name if place is not None else (new or "a device with no home")
            self._problem(number, "slot", f"{name} has no numbered slots.", str(slot))
            return
        if slot > place.capacity:
            self._problem(
                number,
                "slot",
                f"Slots in {place.name} run from 1 to {place.capacity}.",
                str(slot),
            )
            return
        holder = self.slots.get((place.id, slot))
        if holder is not None and (device is None or holder != device.id):
            self._problem(
                number,
                "slot",
                f"Slot {slot} in {place.name} is {self.by_id[holder].asset_tag}'s; free it first.",
                str(slot),
            )
        elif (place.id, slot) in self.seen_slots:
            self._problem(
                number,
                "slot",
                f"Slot {slot} in {place.name} is also given on row "
                f"{self.seen_slots[(place.id, slot)]}.",
                str(slot),
            )
        else:
            self.seen_slots[(place.id, slot)] = number

    def _check_capacity(self) -> None:
        for place_id, rows in self.arrivals.items():
            place = self.places.by_id[place_id]
            if place.capacity is None:
                continue
            room = place.capacity - self.homes[place_id] + self.departures[place_id]
            for number in rows[max(room, 0) :]:
                self._problem(
                    number,
                    "location",
                    f"{place.name} holds {place.capacity} devices and this file would put more "
                    "there.",
                )

    def _decide(
        self,
        number: int,
        fields: DeviceFields,
        device: _Known | None,
        home_id: int | None,
        slot: int | None,
        new_place: str | None,
    ) -> PlannedRow:
        values = {name: getattr(fields, name) for name in DeviceFields.__dataclass_fields__}
        values["home_location_id"], values["home_slot"] = home_id, slot
        if device is None:
            values["current_location_id"] = home_id
            return PlannedRow(number, fields.asset_tag, "new", None, values, new_place=new_place)
        changes = {
            name: (getattr(device, name), value)
            for name, value in values.items()
            if name != "status" and getattr(device, name) != value
        }
        if new_place is not None:
            changes["home_location_id"] = (device.home_location_id, None)
        return PlannedRow(
            number,
            fields.asset_tag,
            "update" if changes else "unchanged",
            device.id,
            {name: values[name] for name in changes},
            changes,
            new_place=new_place,
            shown=[
                (
                    CHANGE_LABELS.get(name, name),
                    self._shown(name, before),
                    f"{new_place} (new)"
                    if name == "home_location_id" and new_place
                    else self._shown(name, after),
                )
                for name, (before, after) in changes.items()
            ],
        )

    def _shown(self, name: str, value: object) -> str:
        """A value as the preview shows it: dates, money and places in the school's words."""
        if name == "home_location_id" and isinstance(value, int) and value in self.places.by_id:
            return location_path(self.places.by_id[value])
        return describe_value(name, value)


def preview(
    session: Session,
    school_id: int,
    data: bytes,
    *,
    actor: User | None,
    options: Options | None = None,
    filename: str = "import.csv",
    progress: Progress | None = None,
) -> Plan:
    """Read and check a file without changing anything."""
    options = options or Options()
    if options.create_locations and actor is not None:
        if not has_permission(actor.role, Permission.LOCATIONS_WRITE):
            raise Forbidden("Your role cannot add places; ask the school business manager.")
    sheet = read_sheet(data, options.header_row)
    plan = plan_import(
        session,
        school_id,
        sheet,
        actor=actor,
        options=options,
        filename=filename,
        progress=progress,
    )
    _resolve_parent(session, school_id, plan)
    _missing_place_problems(plan)
    plan.problems.sort(key=lambda p: (p.row, p.column or ""))
    plan.warnings.sort(key=lambda p: (p.row, p.column or ""))
    return plan
