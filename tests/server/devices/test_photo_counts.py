"""A device's photo count is what it last counted, with when; an erase since makes it not known."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device
from server.disposals import services as disposals
from server.disposals.models import ErasureMethod
from tests.server.conftest import confirm_reset, log_in_as

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def _photos_shown(html: str) -> str:
    """The device page's "Photos on it" line, tags and spacing taken out."""
    found = re.search(r"<dt>Photos on it</dt><dd>(.*?)</dd>", html, re.S)
    assert found is not None
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


@pytest.mark.parametrize("erased_by", ["device", "technician"])
def test_photos_counted_before_an_erase_are_not_known_on_the_device_page_or_the_api(
    session: Session,
    client: FlaskClient,
    make_device: Callable[..., Device],
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
    erased_by: str,
) -> None:
    """P-PHOTO-2, P-REG-7: the count a device reported before its storage was erased (a reset
    it confirmed, or a technician's evidence) describes photos that went with the erase: the
    device page and the API say "not known" rather than show it, and show a count with when the
    device counted it; counting again after the erase counts."""
    erased, kept = make_device(), make_device()
    erased.photo_count, erased.photo_count_at = 7, NOW
    kept.photo_count, kept.photo_count_at = 3, NOW
    session.commit()
    if erased_by == "device":
        confirm_reset(session, erased, NOW + timedelta(hours=1))
    else:
        disposals.record_erasure(
            session,
            make_user(Role.TECHNICIAN),
            erased,
            ErasureMethod.FACTORY_RESET,
            "reset at the desk",
        )
        session.commit()
    sbm = make_user(Role.SBM)

    def api(device: Device) -> tuple[object, object]:
        found = client.get(f"/api/v1/devices/{device.asset_tag}", headers=token_for(sbm))
        body = found.get_json()
        assert found.status_code == 200, body
        return body["photo_count"], body["photo_count_at"]

    assert api(erased) == (None, None)
    assert api(kept) == (3, "2026-03-03T09:00:00Z")
    log_in_as(client, sbm)
    shown = _photos_shown(client.get(f"/devices/{erased.asset_tag}").get_data(as_text=True))
    assert shown.startswith("Not known: not reported since its storage was erased"), shown
    shown = _photos_shown(client.get(f"/devices/{kept.asset_tag}").get_data(as_text=True))
    assert shown.startswith("3 reported"), shown

    erased.photo_count, erased.photo_count_at = 0, datetime.now(UTC) + timedelta(minutes=1)
    session.commit()
    assert api(erased)[0] == 0
    shown = _photos_shown(client.get(f"/devices/{erased.asset_tag}").get_data(as_text=True))
    assert shown.startswith("0 reported"), shown
