"""A profile that follows a loan: the home-loan profile while at home, the usual one back."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from server.devices.models import Device
from server.profiles import services
from server.profiles.models import Profile
from tests.server.profiles.conftest import Places


def test_a_home_loan_switches_the_profile_and_the_return_switches_it_back(
    session: Session,
    lead: object,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    """P-PROFILE-1: filtered at home too — the home-loan profile applies only while at home."""
    device = make_device(home=places.trolley)
    lesson = make_profile("KS2 iPads")
    services.assign(session, lead, lesson, "location", places.trolley.id)  # type: ignore[arg-type]
    at_school = services.desired_state(session, device)
    assert at_school is not None and services.resolve(session, device).profile_version is not None
    school_sha = at_school.sha256  # the row object itself is updated in place later
    assert services.resolve(session, device).profile_version.profile.name == "KS2 iPads"  # type: ignore[union-attr]

    services.set_home_loan(session, device, at_home=True)
    session.commit()
    home = services.resolve(session, device)
    assert home.profile_version is not None
    assert home.profile_version.profile.name == services.HOME_LOAN_PROFILE
    assert services.HOME_LOAN_GROUP in home.reason
    at_home = services.desired_state(session, device)
    assert at_home is not None and at_home.sha256 != school_sha
    policy = at_home.document["linux"]["chrome_policy"]  # type: ignore[index]
    assert policy["SafeSitesFilterBehavior"] == 1 and policy["ForceGoogleSafeSearch"] is True

    services.set_home_loan(session, device, at_home=False)
    session.commit()
    back = services.desired_state(session, device)
    assert back is not None and back.sha256 == school_sha
    assert services.resolve(session, device).profile_version.profile.name == "KS2 iPads"  # type: ignore[union-attr]

    services.set_home_loan(session, device, at_home=True)  # a second loan reuses the profile
    session.commit()
    assert (
        services.resolve(session, device).profile_version.profile.name == services.HOME_LOAN_PROFILE
    )  # type: ignore[union-attr]
