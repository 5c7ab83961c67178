"""Golden files: every built-in profile compiled for every target, byte for byte.

Regenerate after an intended change with `UPDATE_GOLDEN=1 .venv/bin/pytest tests/device_profiles`,
then review the diff by eye against the technical reference before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from device_profiles import TARGETS, CompileResult, builtin_profiles, compile_profile

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
# Fixed options so the files are reproducible; they also exercise each writer's options.
OPTIONS: dict[str, dict[str, object]] = {
    "apple": {"identifier_prefix": "uk.sch.example-primary", "organisation": "Example Primary"},
    "chrome": {},
    "chromeos": {"org_unit_id": "03ph8a2z1example"},
    "kiosk": {"version": 1},
}
CASES = [(slug, target) for slug in sorted(builtin_profiles()) for target in sorted(TARGETS)]


def _warnings_text(result: CompileResult) -> str:
    return "".join(f"[{w.kind}] {w}\n" for w in result.warnings)


def _check(path: Path, actual: bytes) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual)
    assert path.exists(), f"missing golden file {path.name}; run with UPDATE_GOLDEN=1"
    assert path.read_bytes() == actual, f"{path.name} differs; review, then UPDATE_GOLDEN=1"


def test_every_target_has_fixed_options() -> None:
    assert set(OPTIONS) == set(TARGETS)


@pytest.mark.parametrize(("slug", "target"), CASES)
def test_golden(slug: str, target: str) -> None:
    result = compile_profile(builtin_profiles()[slug], target, **OPTIONS[target])
    assert result.filename.startswith(slug + ".")
    _check(GOLDEN / target / result.filename, result.content)
    _check(GOLDEN / target / f"{slug}.warnings.txt", _warnings_text(result).encode("utf-8"))


def test_no_stale_golden_files() -> None:
    expected = set()
    for slug, target in CASES:
        result = compile_profile(builtin_profiles()[slug], target, **OPTIONS[target])
        expected |= {f"{target}/{result.filename}", f"{target}/{slug}.warnings.txt"}
    present = {str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*") if p.is_file()}
    assert present == expected
