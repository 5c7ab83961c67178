"""The settings editor: switches and lists that save through the same checks as typed YAML."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from device_profiles import builtin_profile_texts, builtin_profiles, load_profile
from device_profiles.descriptions import SETTINGS
from device_profiles.form import form_values
from server.activity.models import ActivityEntry
from server.auth.models import User
from server.profiles import services
from server.profiles.models import Profile, ProfileVersion
from tests.server.conftest import csrf_token, log_in_as

REQUIREMENT_ID = re.compile(r"\bP-[A-Z]+-\d+\b")


class _FormFields(HTMLParser):
    """What a browser would post for one form, left as the page filled it."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: dict[str, list[str]] = {}
        self.textarea: str | None = None
        self.select: str | None = None
        self.text = ""

    def add(self, name: str | None, value: str) -> None:
        if name:
            self.fields.setdefault(name, []).append(value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input":
            kind = a.get("type", "text")
            if kind in ("radio", "checkbox"):
                if "checked" in a:
                    value = a.get("value", "on")
                    self.add(a.get("name"), value or "")
            elif kind not in ("submit", "button"):
                self.add(a.get("name"), a.get("value") or "")
        elif tag == "textarea":
            self.textarea, self.text = a.get("name"), ""
        elif tag == "select":
            self.select = a.get("name")
        elif tag == "option" and "selected" in a:
            self.add(self.select, a.get("value") or "")

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea" and self.textarea is not None:
            self.add(self.textarea, self.text)
            self.textarea = None


def _fields_on(page: str) -> dict[str, list[str]]:
    parser = _FormFields("settings-editor")
    parser.feed(page)
    return parser.fields


def _versions(session: Session, profile: Profile) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(ProfileVersion)
            .where(ProfileVersion.profile_id == profile.id)
        )
        or 0
    )


def _outputs(session: Session, profile: Profile, settings: object) -> dict[str, bytes]:
    school = services.get_school(session, profile.school_id)
    found = services.previews(settings, school=school)  # type: ignore[arg-type]
    return {target: result.content for target, result in found.items()}


@pytest.mark.parametrize("slug", sorted(builtin_profile_texts()))
def test_the_form_filled_from_a_library_profile_posts_back_the_same_outputs(
    session: Session,
    client: FlaskClient,
    lead: User,
    make_profile: Callable[..., Profile],
    slug: str,
) -> None:
    """The page's own fields, posted untouched, make every platform's file byte for byte as the
    YAML did, and save nothing."""
    profile = make_profile("Copied profile", start_from=slug)
    log_in_as(client, lead)
    page = client.get(f"/profiles/{profile.id}").get_data(as_text=True)
    fields = _fields_on(page)
    token = fields.pop("csrf_token")[0]
    check = services.check_form(session, profile, fields)
    assert check.profile is not None, check.field_errors
    in_force = services.loaded(services.latest_version(session, profile))
    assert _outputs(session, profile, check.profile) == _outputs(session, profile, in_force)
    assert check.changes == []
    saved = client.post(
        f"/profiles/{profile.id}/settings", data={**fields, "csrf_token": token, "action": "save"}
    )
    assert saved.status_code == 302
    assert _versions(session, profile) == 1


def test_the_ks2_ipad_profile_built_with_the_form_equals_the_yaml_path(
    session: Session, client: FlaskClient, lead: User, make_profile: Callable[..., Profile]
) -> None:
    """P-PROFILE-1, P-PROFILE-2, P-PROFILE-4: school apps only, Bluetooth changes blocked and a
    10-minute auto-lock, set with the form, reach every platform exactly as the library's YAML
    does; the change is a new version in the activity trail."""
    profile = make_profile("Year 5 iPads", start_from=None)
    fields = form_values(builtin_profiles()["ks2-ipad"])
    fields["name"] = ["Year 5 iPads"]
    log_in_as(client, lead)
    token = csrf_token(client, f"/profiles/{profile.id}")
    saved = client.post(
        f"/profiles/{profile.id}/settings",
        data={**fields, "csrf_token": token, "action": "save", "note": "KS2 settings"},
    )
    assert saved.status_code == 302
    version = services.latest_version(session, profile)
    assert version.number == 2
    yaml_path = load_profile(services.starting_text("Year 5 iPads", "ks2-ipad"))
    built = services.loaded(version)
    assert built == yaml_path
    assert _outputs(session, profile, built) == _outputs(session, profile, yaml_path)
    assert built.apps.allow_list and built.device.bluetooth_changes == "blocked"
    assert built.device.auto_lock_minutes == 10
    entry = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "profile.version_saved")
    ).one()
    assert entry.actor_id == lead.id and entry.details["note"] == "KS2 settings"
    assert "Camera: Not managed → Allowed" in entry.details["changes"]


def test_invalid_values_are_shown_next_to_their_settings_and_nothing_is_saved(
    session: Session, client: FlaskClient, lead: User, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile("Year 5 iPads")
    log_in_as(client, lead)
    page = client.get(f"/profiles/{profile.id}").get_data(as_text=True)
    fields = _fields_on(page)
    fields.update(
        {
            "passcode.min_length": ["99"],
            "passcode.history": ["lots"],
            "web_filter.mode": ["allow_list_only"],
            "web_filter.allowed_urls": [""],
            "web_filter.blocked_urls": ["https://www.tiktok.com\nnot a site"],
            "device.camera": ["maybe"],
            "name": [""],
        }
    )
    for action in ("preview", "save"):
        refused = client.post(f"/profiles/{profile.id}/settings", data={**fields, "action": action})
        assert refused.status_code == 400
        html = refused.get_data(as_text=True)

        def box(path: str, page: str = html) -> str:
            start = page.index(f'data-setting="{path}"')
            return page[start : page.index('<div class="setting', start + 1)]

        assert "problems to fix; nothing was saved" in html
        assert "99 is out of range: use a number from 0 to 16" in box("passcode.min_length")
        assert "Expected a whole number, found &#39;lots&#39;" in box("passcode.history")
        assert "at least one address in “Websites always allowed”" in box("web_filter.allowed_urls")
        assert "&#39;not a site&#39; is not a usable web address" in box("web_filter.blocked_urls")
        assert "Choose Allowed or Blocked." in box("device.camera")
        assert 'id="s-name-error"' in html and "every profile needs a name" in html.lower()
        # What was typed is still there to correct.
        assert "https://www.tiktok.com\nnot a site</textarea>" in html
        assert 'value="lots"' in html
        said = " ".join(re.findall(r'class="field-error"[^>]*>(.*?)</div>', html, re.S))
        assert said and not any(s.path in said or s.path.split(".")[1] in said for s in SETTINGS)
    assert _versions(session, profile) == 1


def test_a_preview_shows_the_changes_and_each_platform_before_saving(
    session: Session, client: FlaskClient, lead: User, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile("Year 5 iPads")
    log_in_as(client, lead)
    fields = _fields_on(client.get(f"/profiles/{profile.id}").get_data(as_text=True))
    fields["device.camera"] = ["blocked"]
    fields["web_filter.safe_search"] = ["enforced"]
    fields["apps.allow_list"].remove("com.apple.clips")
    shown = client.post(f"/profiles/{profile.id}/settings", data={**fields, "action": "preview"})
    html = shown.get_data(as_text=True)
    assert shown.status_code == 200
    changes = html[html.index('id="changes-title"') : html.index("What each kind of device will")]
    assert "Camera: Allowed → Blocked" in changes
    assert "SafeSearch: Not managed → On" in changes
    assert "Only approved apps: removed Clips" in changes
    ipad = html[html.index('data-target="apple"') :].split('<details class="raw">')[0]
    assert "It cannot do:" in ipad and "SafeSearch" in ipad and "DNS" in ipad
    assert "&lt;key&gt;allowCamera&lt;/key&gt;" in html  # the file itself, folded away
    assert _versions(session, profile) == 1


def test_no_requirement_id_is_shown_in_either_editor(
    session: Session, client: FlaskClient, lead: User, make_profile: Callable[..., Profile]
) -> None:
    """A profile saved with requirement ids in its comments shows none of them to staff, nor do
    the profile pages around it; saving the text as shown is no change."""
    profile = make_profile("Year 5 iPads")
    text = services.latest_version(session, profile).yaml_text
    marked = text.replace("auto_lock_minutes: 10", "auto_lock_minutes: 10  # P-PROFILE-2")
    services.save_version(session, lead, profile, marked, "with ids")
    assert REQUIREMENT_ID.search(services.latest_version(session, profile).yaml_text)
    log_in_as(client, lead)
    here = f"/profiles/{profile.id}"
    for path in (
        here,
        f"{here}/yaml",
        f"{here}/history",
        "/profiles/activity",
        "/filter-exceptions",
    ):
        page = client.get(path).get_data(as_text=True)
        assert not REQUIREMENT_ID.search(page), path
    token = csrf_token(client, f"/profiles/{profile.id}/yaml")
    shown = services.staff_text(services.latest_version(session, profile).yaml_text)
    again = client.post(f"/profiles/{profile.id}", data={"csrf_token": token, "yaml_text": shown})
    assert again.status_code == 302
    assert _versions(session, profile) == 2
