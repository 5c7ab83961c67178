"""Shared helpers for benchmarks: machine facts, percentiles and the result file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/meminfo") as handle:
            facts["memory_kb"] = int(handle.readline().split()[1])
    except OSError:
        pass
    return facts


def percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock seconds of `repeat` calls."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def write_result(
    name: str,
    *,
    value: float,
    unit: str,
    baseline: float,
    ratio: float,
    target: str,
    details: dict[str, Any] | None = None,
) -> Path:
    """bench/results/<name>.json, and the ratio printed first."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "details": details or {},
        "machine": machine(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"ratio {ratio:.2f} ({target}) — {name}: {value:.4g} {unit} vs baseline {baseline:.4g}")
    return path


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)
