"""A settled process collects its garbage without walking everything it holds again and again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter starts as `trolley serve` and `trolley worker` do, then, three times, holds
# 20,000 small objects at once (a fleet-wide command's rows) and lets them go; it prints how many
# full collections that set off.
_BURSTS = """
import gc, json, sys
import server
if sys.argv[1] == "settled":
    server.settle_process()
else:
    gc.freeze()
full = []
def count(phase, info):
    if phase == "stop" and info["generation"] == 2:
        full.append(1)
gc.callbacks.append(count)
class Row:
    def __init__(self, n):
        self.n, self.values = n, {"id": n}
for _ in range(3):
    rows = [Row(n) for n in range(20_000)]
    del rows
seen = {"full": len(full), "thresholds": gc.get_threshold(), "frozen": gc.get_freeze_count()}
print(json.dumps(seen))
"""


def _bursts(how: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _BURSTS, how],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(done.stdout))


def test_a_settled_process_holds_thousands_of_rows_without_a_full_collection() -> None:
    """With start-up merely frozen, three bursts of 20,000 rows set off full collections; once
    settled (`settle_process`, what the web and worker processes do) they set off none, and
    start-up stays frozen."""
    frozen_only = _bursts("frozen")
    settled = _bursts("settled")
    assert frozen_only["full"] > 0, frozen_only
    assert settled["full"] == 0, settled
    assert settled["thresholds"] == [50_000, 20, 10]
    assert settled["frozen"] > 1000
