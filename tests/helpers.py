"""Shared test helpers: reaching the real services this machine runs."""

from __future__ import annotations

import os
import socket

import pytest

CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADDR = ("127.0.0.1", 5432)
MOSQUITTO_ADDR = ("127.0.0.1", 1883)


def require_service(name: str, addr: tuple[str, int]) -> None:
    """Fail under CI=true (never skip) when a required service is down; skip visibly otherwise."""
    try:
        socket.create_connection(addr, timeout=2).close()
    except OSError as exc:
        message = f"{name} is not reachable at {addr[0]}:{addr[1]} ({exc})"
        if CI:
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(f"{message}; set CI=true to make this a failure")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is listening on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clear_retained(addr: tuple[str, int], *, wait: float = 2.0) -> int:
    """Delete Trolley's retained messages left on a shared broker by earlier runs.

    Every run's devices leave a retained `status`; thousands of them would be replayed to each
    new worker subscription and slow every test that follows.
    """
    import time

    from paho.mqtt import client as paho

    topics: set[str] = set()
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=f"trolley-tests-clean-{time.time_ns()}",
        clean_session=True,
    )
    client.on_message = lambda _c, _u, message: (
        topics.add(message.topic) if message.retain else None
    )
    try:
        client.connect(*addr)
    except OSError:
        return 0
    client.subscribe([("trolley/v1/dev/+/status", 1), ("trolley/v1/dev/+/desired", 1)])
    client.loop_start()
    time.sleep(wait)
    infos = [client.publish(topic, b"", qos=1, retain=True) for topic in topics]
    for info in infos:
        info.wait_for_publish(timeout=5)
    client.loop_stop()
    client.disconnect()
    return len(topics)
