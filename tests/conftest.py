"""Fixtures shared by every suite."""

from __future__ import annotations

import pytest

from tests.helpers import MOSQUITTO_ADDR, POSTGRES_ADDR, clear_retained, free_port, require_service


@pytest.fixture
def mosquitto_addr() -> tuple[str, int]:
    """The machine's Mosquitto at 127.0.0.1:1883 (anonymous listener)."""
    require_service("Mosquitto", MOSQUITTO_ADDR)
    return MOSQUITTO_ADDR


@pytest.fixture(scope="session")
def postgres_server() -> tuple[str, int]:
    """PostgreSQL at 127.0.0.1:5432, database `test`, trust auth."""
    require_service("PostgreSQL", POSTGRES_ADDR)
    return POSTGRES_ADDR


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture(scope="session", autouse=True)
def clean_shared_broker() -> None:
    """Start every run without the retained messages earlier runs left on the shared broker."""
    clear_retained(MOSQUITTO_ADDR)


# The broker's memory bound waits nine minutes: started first, it runs beside the rest of the
# suite (`make test` lets idle processes take over the tests queued behind it), not after it.
FIRST = "tests/mqtt/test_memory_bound.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the longest test first; the rest keep their order."""
    items.sort(key=lambda item: not item.nodeid.startswith(FIRST))
