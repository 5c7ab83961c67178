"""The demo's Google: the school linked to the stand-in, Chromebooks synced, a profile read back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from server.chromebooks import services
from server.chromebooks.demo import link_up, prepare, stand_in_from
from server.chromebooks.models import GooglePolicySetting, PolicyState
from server.db import Database, make_engine, migrate
from server.schools.demo import DEMO_SLUG, demo_fleet_arguments, seed_demo
from tests.helpers import free_port
from tests.server.conftest import settings_on


def test_the_demo_school_is_linked_synced_and_its_profile_read_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    settings = settings_on(url, tmp_path / "instance", demo=True)
    database = Database(url)
    try:
        with database.begin() as session:
            school, _logins = seed_demo(session)
            school_id = school.id
        domain = prepare(database, settings, DEMO_SLUG)
        stand_in = stand_in_from(domain, free_port())
        stand_in.up()
        try:
            link_up(database, settings, DEMO_SLUG, stand_in.root)
        finally:
            stand_in.down()
        assert stand_in.violations == []
        with database.begin() as session:
            seen = services.overview(session, school_id)
            assert seen.link is not None and seen.link.working
            assert (seen.linked, len(seen.unknown), len(seen.off_site)) == (30, 2, 1)
            states = set(session.scalars(select(GooglePolicySetting.state)))
            assert PolicyState.ENFORCED in states and PolicyState.FAILED not in states
        # The simulated kiosk fleet leaves alone the Chromebooks Google manages and the six
        # iPads managed through Apple's MDM protocol.
        arguments = demo_fleet_arguments(database, settings)
        codes = Path(arguments[arguments.index("--enrol-file") + 1]).read_text().split()
        assert len(codes) == 54 and arguments[arguments.index("--count") + 1] == "54"
    finally:
        database.dispose()
