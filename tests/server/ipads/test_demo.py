"""The demo's MDM iPads: six Year 3 iPads enrol over real HTTP through Apple's protocol, report,
and come back with the same identity when the demo starts again."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from server.auth.models import Role, User
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.db import Database, make_engine, migrate
from server.devices.models import Device
from server.ipads.demo import demo_ipads, state_dir
from server.ipads.models import IpadEnrolment, Stage
from server.ipads.simulator import FleetIpad, SimulatedIpad, run_fleet
from server.schools.demo import MDM_IPADS, seed_demo
from tests.helpers import free_port
from tests.server.conftest import file_app, serving, settings_on


def _one_round(base: str, fleet: list[FleetIpad], kept: Path) -> list[SimulatedIpad]:
    """Run the fleet until every iPad has checked in once; the iPads as they ended."""
    stop, seen = threading.Event(), []

    def polled(ipad: SimulatedIpad) -> None:
        seen.append(ipad)
        if len(seen) >= len(fleet):
            stop.set()

    run_fleet(base, fleet, kept, every=0.05, stop=stop, on_poll=polled)
    return seen


def test_the_demo_ipads_enrol_over_mdm_report_and_resume(tmp_path: Path) -> None:
    """P-REG-7: each demo iPad's report is recorded as it said it; a restart keeps its identity."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    settings = settings_on(url, tmp_path / "instance", demo=True)
    database = Database(url)
    app = file_app(url, tmp_path / "instance")
    try:
        with database.begin() as session:
            seed_demo(session)
        fleet = demo_ipads(database, settings)
        assert len(fleet) == 6 and all(each.link for each in fleet)
        assert [each.supervised for each in fleet].count(False) == 1
        kept = state_dir(settings)
        with serving(app, free_port()) as base:
            first = _one_round(base, fleet, kept)
            assert {tuple(ipad.handled) for ipad in first} == {
                ("DeviceInformation", "SecurityInfo", "InstalledApplicationList")
            }
            with database.begin() as session:
                enrolments = session.scalars(select(IpadEnrolment)).all()
                assert len(enrolments) == 6
                assert {e.stage for e in enrolments} == {Stage.ENROLLED}
                assert all(e.facts_at and e.apps_count == 2 for e in enrolments)
                tech = session.scalar(select(User).where(User.role == Role.TECHNICIAN))
                device = session.scalar(select(Device).where(Device.asset_tag == MDM_IPADS[0]))
                assert tech is not None and device is not None
                (lock,) = commands.issue(session, tech, [device], "lock")
                lock_id = lock.id

            # The demo starts again: every iPad resumes with the identity it kept.
            again = demo_ipads(database, settings)
            assert [each.link for each in again] == [None] * 6
            second = _one_round(base, again, kept)
            assert [ipad.locked for ipad in second].count(True) == 1
        with database.begin() as session:
            done = session.get(Command, lock_id)
            assert done is not None and done.status is CommandStatus.DONE
    finally:
        database.dispose()
