"""Layout and accessibility checks for the page a browser test has open: at phone, tablet and
desktop widths the page never scrolls sideways and nothing is cut off, touch targets are at least
44 px, and axe-core (from the npm registry, `make axe`) finds nothing serious or critical."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from tests.helpers import CI

AXE_JS = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# An iPhone, an iPad in portrait, a desktop.
WIDTHS = (390, 820, 1280)
# At or below this width a finger, not a mouse, is assumed.
TOUCH_WIDTH = 820
TARGET_PX = 44
AXE_FAILS_ON = ("serious", "critical")

LAYOUT_JS = Path(__file__).with_suffix(".js")

_SETTLED_JS = (
    "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
)

_AXE_RUN_JS = """async (impacts) => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations.filter((v) => impacts.includes(v.impact)).map((v) =>
    `${v.impact} ${v.id}: ${v.help} — ` +
    v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", "));
}"""


@cache
def axe_source() -> str:
    """axe.min.js as `make axe` installed it; without it a CI run fails and a local run skips."""
    if not AXE_JS.exists():
        message = f"axe-core is not installed at {AXE_JS} (make axe installs it with npm)"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    return AXE_JS.read_text(encoding="utf-8")


@cache
def _layout_js() -> str:
    return LAYOUT_JS.read_text(encoding="utf-8")


def _settle(page: object) -> None:
    """Wait for two frames, so resize observers and layout have caught up."""
    page.evaluate(_SETTLED_JS)  # type: ignore[attr-defined]


def layout_problems(page: object) -> dict[int, list[str]]:
    """What is wrong with the open page's layout at each width (the viewport is put back)."""
    before = page.viewport_size  # type: ignore[attr-defined]
    found: dict[int, list[str]] = {}
    try:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": before["height"]})  # type: ignore[attr-defined]
            _settle(page)
            touch = {"touch": width <= TOUCH_WIDTH, "px": TARGET_PX}
            problems = page.evaluate(_layout_js(), touch)  # type: ignore[attr-defined]
            if problems:
                found[width] = problems
    finally:
        page.set_viewport_size(before)  # type: ignore[attr-defined]
    return found


def accessibility_problems(page: object) -> list[str]:
    """axe-core's serious and critical violations on the open page, at its current width."""
    source = axe_source()
    if not page.evaluate("() => typeof window.axe === 'object'"):  # type: ignore[attr-defined]
        # Evaluated, not added as a script tag: the pages' CSP allows only their own scripts.
        page.evaluate(source)  # type: ignore[attr-defined]
    _settle(page)
    return list(page.evaluate(_AXE_RUN_JS, list(AXE_FAILS_ON)))  # type: ignore[attr-defined]


def check_page(page: object) -> None:
    """Fail with every layout and accessibility problem the open page has."""
    # A click's navigation can leave the page still loading, its scripts not yet run.
    page.wait_for_load_state("load")  # type: ignore[attr-defined]
    where = page.url  # type: ignore[attr-defined]
    layout = layout_problems(page)
    access = accessibility_problems(page)
    report = [f"at {w} px: {p}" for w, ps in layout.items() for p in ps] + access
    assert not report, f"{where}:\n  " + "\n  ".join(report)
