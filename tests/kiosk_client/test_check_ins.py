"""The kiosk's HTTPS check-in is best effort: a server it cannot reach is logged, not raised,
and reports in quick succession make one check-in, not one each."""

from __future__ import annotations

import logging
import socket

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk_client.config import DeviceIdentity
from kiosk_client.server_api import ServerClient
from kiosk_client.whereabouts import CheckIns
from tests.kiosk_client.support import wait_until


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_server_is_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = ServerClient(f"http://127.0.0.1:{_closed_port()}", timeout=2.0)
    identity = DeviceIdentity.from_key(Ed25519PrivateKey.generate())
    check_ins = CheckIns(server, identity, "dev-0123456789abcdef", interval=3600)
    caplog.set_level(logging.WARNING, logger="kiosk_client.whereabouts")
    check_ins.start()
    try:
        check_ins.offer({"ssid": "OAKFIELD"})
        check_ins.offer({"ssid": "OAKFIELD"})  # within the interval: not another call
        wait_until(lambda: "check-in not taken" in caplog.text)
    finally:
        check_ins.stop()
    assert caplog.text.count("check-in not taken") == 1
