"""`trolley labels`: label sheets from the command line, read back with a QR decoder (P-REG-3)."""

from __future__ import annotations

from pathlib import Path

from tests.server.labels.support import pdf_qr_texts
from tests.server.test_cli import env, postgres_env, run, sqlite_env

__all__ = ["env", "postgres_env", "sqlite_env"]  # fixtures shared with the CLI tests
BASE = "http://127.0.0.1:5000"  # TROLLEY_BASE_URL's default


def test_labels_for_tags_a_trolley_and_its_place(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "demo", "--seed-only").exit_code == 0
    out = tmp_path / "labels.pdf"
    result = run(env, "labels", "--out", str(out), "OAK-IPAD-031", "OAK-CB-002")
    assert result.exit_code == 0, result.output
    assert "Wrote 2 labels (Avery L7160" in result.output
    assert pdf_qr_texts(out.read_bytes()) == [[f"{BASE}/d/OAK-IPAD-031", f"{BASE}/d/OAK-CB-002"]]

    result = run(
        env,
        "labels",
        "--out",
        str(out),
        "--layout",
        "L7163",
        "--in",
        "Year 3 trolley",
        "--place",
        "Year 3 trolley",
    )
    assert result.exit_code == 0, result.output
    pages = pdf_qr_texts(out.read_bytes())
    urls = [url for page in pages for url in page]
    assert [len(p) for p in pages] == [14, 14, 3]
    assert urls[:30] == [f"{BASE}/d/OAK-IPAD-{n:03d}" for n in range(1, 31)]
    assert urls[30].startswith(f"{BASE}/l/")


def test_every_device_as_svg_sheets_and_html(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "demo", "--seed-only").exit_code == 0
    result = run(env, "labels", "--out", str(tmp_path / "all.svg"))
    assert result.exit_code == 0, result.output
    sheets = sorted(tmp_path.glob("all-*.svg"))
    assert len(sheets) == 5 and "Wrote 90 labels" in result.output  # 90 labels, 21 a sheet
    result = run(
        env, "labels", "--out", str(tmp_path / "one.html"), "--layout", "single", "OAK-CB-001"
    )
    assert result.exit_code == 0 and "OAK-CB-001" in (tmp_path / "one.html").read_text()


def test_mistakes_are_clear(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "demo", "--seed-only").exit_code == 0
    unknown = run(env, "labels", "--out", str(tmp_path / "x.pdf"), "NOT-A-TAG")
    assert unknown.exit_code == 1 and "not in your register: NOT-A-TAG" in unknown.output
    wrong = run(env, "labels", "--out", str(tmp_path / "x.png"), "OAK-CB-001")
    assert wrong.exit_code == 2 and ".pdf, .html or .svg" in wrong.output
    place = run(env, "labels", "--out", str(tmp_path / "x.pdf"), "--in", "Narnia")
    assert place.exit_code == 2 and "no place called 'Narnia'" in place.output
    assert not (tmp_path / "x.pdf").exists()
