"""Fixtures shared by every suite."""

from __future__ import annotations

import itertools
import os

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


# The longest tests, with roughly what each group takes on a busy 2-core machine. `make test`'s
# scheduler (xdist's worksteal) gives each process one contiguous share of the collection and lets
# idle processes take work from the *end* of a busy one's share: a long test queued behind
# another long test is never taken over, and ends the run late. So the broker's nine-minute
# memory bound heads the first share and only short tests follow it, and each other long group
# heads a share of its own.
SOLO = "tests/mqtt/test_memory_bound.py"
LONG = {
    "tests/browser/": 300,  # kept together: they share each demo school they start
    "tests/deploy/test_trust.py::test_a_trust_deployment_wipes": 150,
    "tests/security/test_api_schema.py": 190,
    "tests/mqtt/test_conformance_limits.py::test_mosquitto_closes_sockets_that_never": 96,
}


def _shares(total: int, processes: int) -> list[int]:
    """How many tests each process is given at the start (as worksteal divides them)."""
    sizes = []
    for index in range(processes):
        sizes.append(total // (processes - index))
        total -= sizes[-1]
    return sizes


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the collection so that no long test waits behind another (see LONG)."""
    processes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    solo = [item for item in items if item.nodeid.startswith(SOLO)]
    groups = {prefix: [item for item in items if item.nodeid.startswith(prefix)] for prefix in LONG}
    placed = {id(item) for item in solo} | {id(i) for group in groups.values() for i in group}
    rest = iter([item for item in items if id(item) not in placed])
    heads: list[list[pytest.Item]] = [[] for _ in range(processes)]
    loads = [0] * processes
    heads[0].extend(solo)
    others = range(1, processes) if processes > 1 else range(1)
    for prefix in sorted(LONG, key=LONG.__getitem__, reverse=True):
        share = min(others, key=loads.__getitem__)
        heads[share].extend(groups[prefix])
        loads[share] += LONG[prefix]
    ordered: list[pytest.Item] = []
    end = 0
    for head, size in zip(heads, _shares(len(items), processes), strict=True):
        end += size
        ordered.extend(head)
        ordered.extend(itertools.islice(rest, max(end - len(ordered), 0)))
    ordered.extend(rest)
    items[:] = ordered
