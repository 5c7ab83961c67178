"""SQLite's one writer, taken in turns by the worker's threads and processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from server.db import Database, WriterTurn

# Takes the turn at the path it is given, saying when it asked and when it got it.
_OTHER_PROCESS = """
import sys, time
from server.db import WriterTurn
turn = WriterTurn(sys.argv[1])
print("asking", flush=True)
with turn:
    print(time.monotonic(), flush=True)
"""


def test_another_process_waits_for_the_turn_and_gets_it_when_it_is_given_up(
    tmp_path: Path,
) -> None:
    """The publishing and recording processes never write at once, and the one waiting is
    handed the turn at once, not after a sleep of SQLite's busy handler."""
    path = str(tmp_path / "trolley.db-writer")
    turn = WriterTurn(path)
    with turn:
        other = subprocess.Popen(
            [sys.executable, "-c", _OTHER_PROCESS, path], stdout=subprocess.PIPE, text=True
        )
        assert other.stdout is not None
        assert other.stdout.readline() == "asking\n"
        time.sleep(0.5)
        given_up = time.monotonic()
    with other.stdout:
        got = float(other.stdout.readline())
    assert other.wait(timeout=10) == 0
    assert given_up <= got < given_up + 0.25


def test_threads_of_one_process_take_turns_too(tmp_path: Path) -> None:
    """The publishing and recording threads of a one-process worker share one turn."""
    turn = WriterTurn(str(tmp_path / "trolley.db-writer"))
    inside: list[int] = []
    overlaps: list[int] = []

    def write(n: int) -> None:
        for _ in range(50):
            with turn:
                inside.append(n)
                if len(inside) > 1:
                    overlaps.append(n)
                time.sleep(0.0005)
                inside.remove(n)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []


def test_the_turn_lies_beside_the_sqlite_file(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'trolley.db'}")
    try:
        turn = database.one_writer()
        assert isinstance(turn, WriterTurn)
        assert turn.path == str(tmp_path / "trolley.db-writer")
    finally:
        database.dispose()
