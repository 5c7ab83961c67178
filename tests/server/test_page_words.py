"""Every page each role reaches speaks the school's words: no internal codes, requirement ids,
e-mail addresses standing for people, ISO timestamps, "UTC" or a second time format in what
staff read."""

from __future__ import annotations

import re
from collections import deque
from html.parser import HTMLParser

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.commands import services as commands
from server.schools.demo import seed_demo
from tests.server.commands.test_budget import add_fleet
from tests.server.conftest import log_in_as, settle

# What the issue found on pages, and the shapes of the rest of their kind.
FORBIDDEN = {
    "an internal code": re.compile(
        r"\b(screen_cracked|filter_exception\.\w+|in_service|in_repair|in_stock|"
        r"pending_approval|ipados|chromeos|[a-z]+_[a-z_]+\.[a-z_]+)\b"
    ),
    "a platform list in codes": re.compile(r"\bipados/chromeos/linux\b"),
    "a requirement id": re.compile(r"\bP-[A-Z]+-\d+\b"),
    "an e-mail address": re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"),
    "an ISO timestamp": re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"),
    "UTC": re.compile(r"\bUTC\b"),
    # One format for times: '14:05 on Tue 3 Mar 2026'; not '03 Mar 2026 14:05' or 'Tue 14:05'.
    "a time in another format": re.compile(
        r"\b(\d{2} [A-Z][a-z]{2} \d{4},? \d{2}:\d{2}"
        r"|(Mon|Tue|Wed|Thu|Fri|Sat|Sun)( \d{2} [A-Z][a-z]{2})? \d{2}:\d{2})\b"
    ),
    "a dangling honorific": re.compile(r"Hello, (Dr|Mr|Mrs|Ms|Miss|Mx|Prof)\b(?! \w)"),
}
# Pages whose business is e-mail addresses or raw records, not people's names.
SKIP = re.compile(
    r"^/(logout|static/|api/|account|notifications/email|people$)"
    r"|\.(csv|pdf|ics|png|svg|mobileconfig|json)$"
)
MAX_PAGES = 80
# One page of each shape is enough: /devices/OAK-IPAD-001 speaks as /devices/OAK-IPAD-002 does.
_ID = re.compile(r"/(?:[A-Z]+-[A-Z0-9-]+|\d+)(?=/|$)")


class _Text(HTMLParser):
    """The words a person reads: text outside scripts and styles, and the links in the page."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self.links: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "template"):
            self._hidden += 1
        found = dict(attrs)
        if tag == "a" and (found.get("href") or "").startswith("/"):
            self.links.append((found["href"] or "").split("#")[0])
        for name in ("title", "aria-label", "placeholder"):
            if found.get(name):
                self.words.append(found[name] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template"):
            self._hidden = max(0, self._hidden - 1)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.words.append(data)


def _walk(client: FlaskClient) -> dict[str, list[str]]:
    """Every page reachable from home by links, and what each shows that it should not."""
    seen: set[str] = set()
    shapes: set[str] = set()
    queue = deque(["/"])
    problems: dict[str, list[str]] = {}
    while queue and len(seen) < MAX_PAGES:
        path = queue.popleft()
        shape = _ID.sub("/<id>", path.split("?")[0])
        if path in seen or shape in shapes or SKIP.search(path):
            continue
        seen.add(path)
        shapes.add(shape)
        answer = client.get(path)
        if answer.status_code >= 500:
            problems.setdefault(path, []).append(f"a failed page: {answer.status_code}")
        if answer.status_code != 200 or not answer.mimetype == "text/html":
            continue
        page = _Text()
        page.feed(answer.get_data(as_text=True))
        # Addresses of outside services (Google's scopes to grant) are not words for staff.
        text = re.sub(r"https?://\S+", "", " ".join(page.words))
        for what, pattern in FORBIDDEN.items():
            for match in pattern.finditer(text):
                problems.setdefault(path, []).append(f"{what}: {match.group(0)!r}")
        queue.extend(link for link in page.links if link not in seen)
    return problems


@pytest.fixture
def demo(session: Session) -> list[User]:
    """The demo school, its people settled, and a wipe of 12 devices waiting for approval."""
    school, _logins = seed_demo(session)
    people = list(session.scalars(select(User).where(User.school_id == school.id)))
    for person in people:
        settle(person)
    session.commit()
    lead = next(p for p in people if p.role is Role.COMPUTING_LEAD)
    commands.issue(session, lead, add_fleet(session, school.id, 12), "wipe_photos", {})
    return people


def test_every_page_each_role_reaches_speaks_the_schools_words(
    client: FlaskClient, demo: list[User]
) -> None:
    """P-TROLLEY-1: staff read labels, names and the school's own time, never codes."""
    problems: dict[str, dict[str, list[str]]] = {}
    for person in demo:
        log_in_as(client, person)
        found = _walk(client)
        if found:
            problems[person.role.value] = found
    report = "\n".join(
        f"{role} {path}: {', '.join(sorted(set(found)))}"
        for role, pages in problems.items()
        for path, found in pages.items()
    )
    assert not problems, report
