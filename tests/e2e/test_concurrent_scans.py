"""200 scans of one trolley's 30 devices at the same instant, over real HTTP: a consistent state."""

from __future__ import annotations

import http.client
import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text

from mqtt.envelope import encode_public_key
from server.activity.models import ActivityEntry
from server.activity.services import verify_chain
from server.commands.models import Command
from server.crypto import SecretBox
from server.db import Database
from server.devices.models import Device, DeviceStatus
from server.enrolment.services import enrol, issue_enrolment_token, server_key
from server.loans.models import ItemState, Loan, LoanItem, Scan
from tests.e2e.conftest import stack_app
from tests.helpers import free_port
from tests.server.conftest import seed_trolley_school, serving, settings_on

pytestmark = pytest.mark.slow

DEVICES = 30
TEACHERS = 6
BURST = 200
OUT_BEFORE = 15  # devices 0..14 are out with a teacher when the burst starts
# Every refusal a scan may give here: someone else has it, someone else just put it back,
# or the code is not one of the school's devices.
REFUSALS = {"held_by_other", "already_returned", "unknown_device", "bad_code"}


@dataclass
class Served:
    port: int
    database: Database
    school_id: int
    trolley_id: int
    tags: list[str]
    tokens: list[str]
    teacher_ids: list[int]


@dataclass(frozen=True)
class Call:
    teacher: int
    body: dict[str, Any]


@dataclass
class Answer:
    call: Call
    status: int
    body: dict[str, Any]


@pytest.fixture
def served(live_url: str, tmp_path: Path) -> Iterator[Served]:
    """One trolley of 30 enrolled devices, six teachers with tokens, the app on a real socket."""
    port = free_port()
    settings = settings_on(
        live_url,
        tmp_path / "instance",
        base_url=f"http://127.0.0.1:{port}",
        mqtt_port=free_port(),
        secret_key="scans-" + "x" * 40,
    )
    database = Database(live_url)
    box = SecretBox(settings.data_keys)
    with database.begin() as session:
        seeded = seed_trolley_school(session, "burst", devices=DEVICES, teachers=TEACHERS)
        server_key(session, box)
        session.flush()
        school_id, trolley_id = seeded.school.id, seeded.trolley.id
        device_ids = [d.id for d in seeded.devices]
        tags = [d.asset_tag for d in seeded.devices]
        tokens, teacher_ids = seeded.tokens, [t.id for t in seeded.teachers]
    for device_id in device_ids:
        # Enrolled for real, so every return can queue its photo wipe.
        with database.begin() as session:
            device = session.get(Device, device_id)
            assert device is not None
            _code, payload = issue_enrolment_token(session, None, device, settings)
            enrol(
                session,
                box,
                settings,
                token=payload.token,
                public_key=encode_public_key(Ed25519PrivateKey.generate().public_key()),
                platform="simulated",
            )
    with serving(stack_app(settings), port):
        yield Served(port, database, school_id, trolley_id, tags, tokens, teacher_ids)
    database.dispose()


def _scan(served: Served, teacher: int, mode: str, code: str) -> Call:
    body = {
        "mode": mode,
        "trolley": served.trolley_id,
        "code": code,
        "idempotency_key": uuid.uuid4().hex,
    }
    if mode == "out":
        body["class_label"] = "Year 4 Oak"
    return Call(teacher, body)


def _headers(served: Served, teacher: int) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {served.tokens[teacher]}",
        "Content-Type": "application/json",
    }


def _send(served: Served, call: Call, connection: http.client.HTTPConnection) -> Answer:
    connection.request(
        "POST", "/api/v1/scans", body=json.dumps(call.body), headers=_headers(served, call.teacher)
    )
    response = connection.getresponse()
    raw = response.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"unparsed": raw.decode(errors="replace")[:500]}
    return Answer(call, response.status, body)


def _get(served: Served, path: str) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.request("GET", f"/api/v1{path}", headers=_headers(served, 0))
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 200, (path, body)
    return body


def _plan(served: Served) -> list[Call]:
    """Outs and ins mixed: two teachers on one device at once, and keys re-sent at once."""
    rng = random.Random(20250311)
    calls: list[Call] = []
    for n, tag in enumerate(served.tags):
        holder = n % TEACHERS if n < OUT_BEFORE else None
        others = [t for t in range(TEACHERS) if t != holder]
        rng.shuffle(others)
        if holder is not None:
            back = _scan(served, holder, "in", tag)
            # The holder puts it back (their offline queue re-sends it), another teacher puts
            # it back at the same instant, and a third wants it.
            calls += [back, back]
            calls += [_scan(served, others[0], "in", tag), _scan(served, others[1], "out", tag)]
        else:
            first = _scan(served, others[0], "out", tag)
            calls += [first, first]
            calls += [_scan(served, others[1], "out", tag), _scan(served, others[2], "in", tag)]
    calls += [_scan(served, 0, "out", "NOPE-9999"), _scan(served, 1, "in", "http://x.invalid/")]
    while len(calls) < BURST:
        call = _scan(
            served, rng.randrange(TEACHERS), rng.choice(("out", "in")), rng.choice(served.tags)
        )
        calls.append(call)
        if rng.random() < 0.25 and len(calls) < BURST:
            calls.append(call)  # re-sent by the offline queue
    rng.shuffle(calls)
    return calls


def _burst(served: Served, calls: list[Call]) -> list[Answer]:
    """Every call on its own thread and connection, all sent at the same instant."""
    barrier = threading.Barrier(len(calls))
    answers: list[Answer | None] = [None] * len(calls)

    def send(n: int, call: Call) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=120)
        try:
            connection.connect()  # connected first, so the requests really arrive together
            barrier.wait(timeout=60)
            answers[n] = _send(served, call, connection)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(n, c)) for n, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert all(a is not None for a in answers), "some scans were never answered"
    return [a for a in answers if a is not None]


def test_two_hundred_scans_at_once_leave_a_consistent_state(served: Served) -> None:
    """P-TROLLEY-1, P-PHOTO-1: 200 scans at once: each device out once at most, a wipe a return."""
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    for n in range(OUT_BEFORE):
        before = _send(served, _scan(served, n % TEACHERS, "out", served.tags[n]), connection)
        assert before.status == 200 and before.body["outcome"] == "out", before.body
    connection.close()

    answers = _burst(served, _plan(served))

    # Every answer is a success or a refusal a teacher can read; never a server error.
    for answer in answers:
        assert 200 <= answer.status < 500, (answer.status, answer.body, answer.call.body)
        if answer.status >= 300:
            error = answer.body.get("error")
            assert isinstance(error, dict), answer.body
            assert error["code"] in REFUSALS, (answer.status, error)
            assert error["message"].strip(), error
    ok = [a for a in answers if a.status == 200]
    outcomes = Counter(a.body["outcome"] for a in ok if not a.body["replayed"])
    assert outcomes["out"] and outcomes["returned"], outcomes  # the burst really did both
    assert not outcomes["put_back"] and not outcomes["transferred"], outcomes

    # A key re-sent at the same instant is recorded once and answered the same way.
    by_key: dict[str, list[Answer]] = {}
    for answer in ok:
        by_key.setdefault(answer.call.body["idempotency_key"], []).append(answer)
    for key, same in by_key.items():
        recorded = [a for a in same if a.body["recorded"]]
        assert len({a.body["outcome"] for a in recorded}) <= 1, key
        assert sum(not a.body["replayed"] for a in recorded) <= 1, key

    with served.database.begin() as session:
        school = served.school_id
        items = session.scalars(select(LoanItem).where(LoanItem.school_id == school)).all()
        devices = session.scalars(select(Device).where(Device.school_id == school)).all()
        loans = session.scalars(select(Loan).where(Loan.school_id == school)).all()
        wipes = session.scalars(
            select(Command).where(Command.school_id == school, Command.type == "wipe_photos")
        ).all()
        scans = session.scalar(
            select(func.count()).select_from(Scan).where(Scan.school_id == school)
        )
        wipe_entries = session.scalar(
            select(func.count())
            .select_from(ActivityEntry)
            .where(ActivityEntry.school_id == school, ActivityEntry.action == "command.wipe_photos")
        )
        teacher_of = {loan.id: loan.teacher_id for loan in loans}

        # Each device is in at most one open loan item, and is where that item says.
        open_items = [i for i in items if i.state is ItemState.OUT]
        per_device = Counter(i.device_id for i in open_items)
        assert max(per_device.values(), default=0) <= 1, per_device
        open_by_device = {i.device_id: i for i in open_items}
        for device in devices:
            assert device.status is DeviceStatus.IN_SERVICE, device.asset_tag
            item = open_by_device.get(device.id)
            if item is None:
                assert device.holder_id is None, device.asset_tag
                assert device.current_location_id == served.trolley_id, device.asset_tag
            else:
                assert device.holder_id == teacher_of[item.loan_id] == item.out_by_id
                assert device.current_location_id is None, device.asset_tag

        # Every success answer is exactly one record: the outs and returns in the answers
        # (plus the take-outs before the burst) are the loan items, no more, no fewer.
        returned = [i for i in items if i.state is ItemState.RETURNED]
        assert len(items) == OUT_BEFORE + outcomes["out"], (len(items), outcomes)
        assert len(returned) == outcomes["returned"], (len(returned), outcomes)
        recorded_keys = {
            a.call.body["idempotency_key"]
            for a in ok
            if a.body["recorded"] and not a.body["replayed"]
        }
        assert scans == OUT_BEFORE + len(recorded_keys)

        # P-PHOTO-1: each return queued exactly one wipe, for that device, and the trail
        # records each one.
        assert len(wipes) == len(returned), (len(wipes), len(returned))
        by_id = {c.id: c for c in wipes}
        assert len({i.wipe_command_id for i in returned}) == len(returned)
        for item in returned:
            assert item.wipe_command_id in by_id, item.id
            assert by_id[item.wipe_command_id].device_id == item.device_id
            assert item.wipe_note is None
        assert wipe_entries == len(wipes)

        # The hash chain verifies from the first entry to the last.
        verified = verify_chain(session)
        assert verified.ok, verified
        if session.get_bind().dialect.name == "sqlite":
            assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"

    # What the API says about each loan and the trolley agrees with the items.
    items_by_loan: dict[int, list[LoanItem]] = {}
    for item in items:
        items_by_loan.setdefault(item.loan_id, []).append(item)
    tag_of = {d.id: d.asset_tag for d in devices}
    for loan in loans:
        shown = _get(served, f"/loans/{loan.id}")
        mine = items_by_loan.get(loan.id, [])
        still = sorted(tag_of[i.device_id] for i in mine if i.state is ItemState.OUT)
        assert sorted(shown["still_out"]) == still, loan.id
        assert sorted(i["asset_tag"] for i in shown["items"] if i["state"] == "out") == still
        assert len(shown["items"]) == len(mine), loan.id
        assert (shown["closed_at"] is None) == bool(still), (loan.id, shown["closed_at"], still)
        for item in shown["items"]:
            assert (item["state"] == "returned") == (item["wipe_state"] == "pending"), item
    trolley = _get(served, f"/loans/trolleys/{served.trolley_id}")
    assert trolley["counts"]["total"] == DEVICES
    assert trolley["counts"]["out"] == len(open_items)
    assert trolley["counts"]["here"] == DEVICES - len(open_items)
    assert sorted(s["asset_tag"] for s in trolley["still_out"]) == sorted(
        tag_of[i.device_id] for i in open_items
    )
