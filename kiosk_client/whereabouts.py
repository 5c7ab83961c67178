"""The kiosk's HTTPS check-in: the server sees its public address only on a direct request.

Its MQTT messages reach the server through the broker, which hides the kiosk's address, so with
its reports (at most every `CHECK_IN_INTERVAL` seconds) the kiosk also posts a signed check-in
naming its Wi-Fi and gateway. A thread of its own makes the call, so neither paho's loop nor the
command worker waits on the server; a failure is logged and the next report tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from kiosk_client.config import DeviceIdentity
from kiosk_client.errors import KioskError
from kiosk_client.server_api import ServerClient
from mqtt.envelope import sign

__all__ = ["CHECK_IN_INTERVAL", "CheckIns"]

logger = logging.getLogger(__name__)

# Often enough to notice a move off-site within minutes; rarely enough to cost the server nothing.
CHECK_IN_INTERVAL = 300
CHECK_IN_TTL = 120


class CheckIns:
    """Posts the latest network facts offered, in its own thread, no more than once an interval."""

    def __init__(
        self,
        server: ServerClient,
        identity: DeviceIdentity,
        device_id: str,
        *,
        interval: float = CHECK_IN_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Nothing is sent until `start()` and an `offer()`."""
        self.server = server
        self.identity = identity
        self.device_id = device_id
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, str] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_sent: float | None = None
        self._last_iat = 0
        self._thread: threading.Thread | None = None

    def offer(self, network: Mapping[str, str]) -> None:
        """Queue these facts for a check-in unless one went out less than an interval ago."""
        now = time.monotonic()
        with self._lock:
            if self._last_sent is not None and now - self._last_sent < self.interval:
                return
            self._last_sent = now
            self._pending = dict(network)
        self._wake.set()

    def start(self) -> None:
        """Start the sending thread."""
        self._thread = threading.Thread(target=self._run, name="trolley-check-in", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (a call in flight is bounded by the HTTP timeout)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        """Send each pending check-in until stopped."""
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                pending, self._pending = self._pending, None
            if pending is not None and not self._stop.is_set():
                self.send(pending)

    def send(self, network: Mapping[str, str]) -> bool:
        """Post one signed check-in now; False (and logged) if the server did not take it."""
        # The server takes each check-in only if it is newer than the last: never repeat an iat.
        iat = max(int(self.clock()), self._last_iat + 1)
        self._last_iat = iat
        body: dict[str, object] = {
            "v": 1,
            "kid": self.identity.kid,
            "device_id": self.device_id,
            "iat": iat,
            "exp": iat + CHECK_IN_TTL,
        }
        body.update({k: v for k, v in network.items() if k in ("ssid", "gateway") and v})
        try:
            address = self.server.check_in(sign(body, self.identity.private_key))
        except (KioskError, OSError) as exc:
            logger.warning("%s: check-in not taken: %s", self.device_id, exc)
            return False
        logger.info("%s: checked in; the server sees %s", self.device_id, address)
        return True
