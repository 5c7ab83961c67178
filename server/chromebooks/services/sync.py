"""Devices from Google: the domain's ChromeOS devices read page by page and matched by serial."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import User
from server.chromebooks.models import GoogleDevice, GoogleLink
from server.chromebooks.services.google import Clients, GoogleApi, GoogleError, call
from server.chromebooks.services.link import clients_for, require_link
from server.crypto import SecretBox
from server.db import utcnow
from server.devices.models import Device, DeviceStatus, Platform
from server.devices.services import add_event, normalise_serial
from server.events import NetworkSighting
from server.loans.services.off_site import seen_on_networks
from server.schools.services.networks import on_school_network

log = logging.getLogger(__name__)
PAGE = 200  # Google allows up to 300 a page


@dataclass(frozen=True)
class SyncResult:
    """What one sync found: how many Chromebooks, how many matched, what needs a person."""

    seen: int
    matched: int
    unknown: int
    missing: list[str]

    @property
    def words(self) -> str:
        text = f"{self.seen} Chromebooks in Google, {self.matched} matched to the register"
        if self.unknown:
            text += f", {self.unknown} not in the register yet"
        if self.missing:
            text += f", {len(self.missing)} register Chromebooks missing from Google"
        return text + "."


def google_time(text: Any) -> datetime | None:
    """An RFC 3339 time from Google, as an aware UTC datetime."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _expiry(text: Any) -> date | None:
    """autoUpdateExpiration is milliseconds since 1970 (an int64 sent as text)."""
    try:
        return datetime.fromtimestamp(int(text) / 1000, UTC).date()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _networks(resource: dict[str, Any]) -> list[dict[str, str]]:
    found = []
    for entry in resource.get("lastKnownNetwork") or []:
        if isinstance(entry, dict):
            found.append(
                {
                    key: str(entry[key])[:64]
                    for key in ("ipAddress", "wanIpAddress")
                    if isinstance(entry.get(key), str)
                }
            )
    return found[:5]


def directory_devices(clients: Clients, link: GoogleLink) -> Iterator[dict[str, Any]]:
    """Every ChromeOS device in the domain, a page at a time (chromeosdevices.list)."""
    token = None
    while True:
        page = call(
            clients.directory.chromeosdevices().list(
                customerId=link.customer_id, projection="FULL", maxResults=PAGE, pageToken=token
            )
        )
        yield from page.get("chromeosdevices", [])
        token = page.get("nextPageToken")
        if not token:
            return


def apply_facts(
    session: Session, row: GoogleDevice, resource: dict[str, Any], link: GoogleLink, now: datetime
) -> None:
    """Copy what Google says about one Chromebook onto its row and the register (never names)."""
    was_status = row.status
    row.serial = normalise_serial(str(resource.get("serialNumber") or row.serial))[:64]
    row.status = str(resource.get("status") or row.status or "UNKNOWN")[:32]
    row.model = str(resource.get("model") or row.model or "")[:120]
    row.os_version = str(resource.get("osVersion") or row.os_version or "")[:64]
    row.last_sync = google_time(resource.get("lastSync")) or row.last_sync
    row.org_unit_path = str(resource.get("orgUnitPath") or row.org_unit_path or "")[:400]
    row.org_unit_id = str(resource.get("orgUnitId") or row.org_unit_id or "")[:64]
    row.auto_update_expires = _expiry(resource.get("autoUpdateExpiration")) or (
        row.auto_update_expires
    )
    if "lastKnownNetwork" in resource:
        row.networks = _networks(resource)
    if "recentUsers" in resource:
        row.recent_users = len(resource.get("recentUsers") or [])
    wan = next((n["wanIpAddress"] for n in row.networks if n.get("wanIpAddress")), None)
    on_site = on_school_network(
        session, link.school_id, public_address=wan, extra_ranges=link.school_networks
    )
    row.off_site = None if on_site is None else not on_site
    row.seen_at = now
    device = row.device
    if device is None:
        return
    if row.os_version:
        device.os_version = row.os_version
    if row.last_sync and (device.last_seen_at is None or row.last_sync > device.last_seen_at):
        device.last_seen_at = row.last_sync
    if was_status and was_status != row.status:
        add_event(
            session,
            device,
            kind="google",
            summary=f"Google shows it as {row.status.lower()}",
            actor=None,
        )
    if wan:
        # P-TROLLEY-2: the same off-site rule and alert as a kiosk's own report.
        seen_on_networks(
            session,
            [NetworkSighting(device, row.last_sync or now, "google", public_address=wan)],
            extra_ranges=tuple(link.school_networks),
        )


def _register(session: Session, school_id: int, serials: set[str]) -> dict[str, Device]:
    if not serials:
        return {}
    devices = session.scalars(
        select(Device).where(Device.school_id == school_id, Device.serial.in_(sorted(serials)))
    ).all()
    return {d.serial: d for d in devices}


def missing_from_google(session: Session, school_id: int) -> Sequence[Device]:
    """Register Chromebooks Google does not list: not enrolled in the domain, or removed."""
    linked = select(GoogleDevice.device_id).where(
        GoogleDevice.school_id == school_id, GoogleDevice.device_id.is_not(None)
    )
    return session.scalars(
        select(Device)
        .where(
            Device.school_id == school_id,
            Device.platform == Platform.CHROMEOS,
            Device.status != DeviceStatus.DISPOSED,
            Device.id.not_in(linked),
        )
        .order_by(Device.asset_tag)
    ).all()


def sync_devices(
    session: Session,
    box: SecretBox,
    google: GoogleApi,
    school_id: int,
    *,
    actor: User | None = None,
    now: datetime | None = None,
) -> SyncResult:
    """Read every ChromeOS device from Google and bring the register's Google facts up to date."""
    now = now or utcnow()
    link = require_link(session, school_id)
    try:
        with clients_for(box, google, link) as clients:
            resources = {
                str(r["deviceId"]): r for r in directory_devices(clients, link) if r.get("deviceId")
            }
    except GoogleError as exc:
        link.sync_problem = exc.message[:500]
        session.commit()
        raise
    rows = {
        row.google_id: row
        for row in session.scalars(select(GoogleDevice).where(GoogleDevice.school_id == school_id))
    }
    gone = [google_id for google_id in rows if google_id not in resources]
    if gone:
        # First, so a Chromebook enrolled again under a new Google id can be matched again.
        session.execute(
            delete(GoogleDevice).where(
                GoogleDevice.school_id == school_id, GoogleDevice.google_id.in_(gone)
            )
        )
        for google_id in gone:
            session.expunge(rows.pop(google_id))
    serials = {normalise_serial(str(r.get("serialNumber") or "")) for r in resources.values()}
    register = _register(session, school_id, serials - {""})
    taken = {row.device_id for row in rows.values() if row.device_id is not None}
    matched = 0
    for google_id, resource in resources.items():
        row = rows.get(google_id)
        if row is None:
            row = GoogleDevice(school_id=school_id, google_id=google_id, serial="", status="")
            session.add(row)
            rows[google_id] = row
        if row.device_id is None:
            device = register.get(normalise_serial(str(resource.get("serialNumber") or "")))
            if device is not None and device.id not in taken:
                row.device_id, row.device = device.id, device
                taken.add(device.id)
                add_event(
                    session,
                    device,
                    kind="google",
                    summary="Linked to its record in the school's Google domain "
                    f"(org unit {resource.get('orgUnitPath') or '/'})",
                    actor=None,
                )
        apply_facts(session, row, resource, link, now)
        matched += row.device_id is not None
    session.flush()
    link.synced_at, link.sync_problem = now, None
    missing = [d.asset_tag for d in missing_from_google(session, school_id)]
    result = SyncResult(len(resources), matched, len(resources) - matched, missing)
    if actor is not None:
        record(
            session,
            actor=actor,
            action="google.synced",
            school_id=school_id,
            target_type="google_link",
            target_id=link.client_email,
            details={"seen": result.seen, "matched": matched, "missing": len(missing)},
        )
    session.commit()
    log.info("google sync for school %s: %s", school_id, result.words)
    return result
