"""Domain events: every event the device channel publishes has a listener, or start-up fails."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from blinker import Namespace

from server import events
from server.domains import import_part


def test_every_event_is_heard_by_the_domains_that_must_act_on_it() -> None:
    """A factory reset reaches escrow and disposals (which frees its licence seats with any
    erasure); an enrolment reaches profiles; reports reach licences, profiles, losses."""
    namespace = Namespace()
    events.wire(import_part("handlers"), namespace)
    heard = {
        kind.__name__: sorted(
            receiver.__module__ for receiver in events._signal(kind, namespace).receivers.values()
        )
        for kind in events.EVENTS
    }
    assert heard == {
        "FactoryResetConfirmed": ["server.disposals.handlers", "server.escrow.handlers"],
        "DeviceEnrolled": ["server.profiles.handlers"],
        "AppsReported": ["server.licences.handlers"],
        "ProfileReported": ["server.profiles.handlers"],
        "DeviceCameOnline": ["server.losses.handlers"],
        "NetworksReported": ["server.loans.handlers"],
    }


def test_a_missing_handler_is_a_start_up_error_not_silence() -> None:
    """Without the losses domain's handlers, a lost device coming online would go unnoticed."""
    modules = [m for m in import_part("handlers") if m.__name__ != "server.losses.handlers"]
    with pytest.raises(events.MissingHandler, match="DeviceCameOnline"):
        events.wire(modules, Namespace())


def test_a_handler_for_an_unknown_event_is_refused() -> None:
    class Invented(events.DeviceEvent):
        pass

    stray = SimpleNamespace(__name__="server.stray.handlers", HANDLERS=((Invented, print),))
    with pytest.raises(events.MissingHandler, match="unknown event"):
        events.wire([*import_part("handlers"), stray], Namespace())  # type: ignore[list-item]
