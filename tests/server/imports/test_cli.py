"""`trolley devices import|export` on real SQLite and PostgreSQL databases (P-REG-1)."""

from __future__ import annotations

from pathlib import Path

from openpyxl import load_workbook

from tests.server.imports.conftest import ipad, make_csv
from tests.server.test_cli import _count, env, postgres_env, run, sqlite_env

__all__ = ["env", "postgres_env", "sqlite_env"]  # fixtures shared with the CLI tests


def _seeded(env: dict[str, str]) -> None:
    seeded = run(env, "demo", "--seed-only")
    assert seeded.exit_code == 0, seeded.output


def _devices(env: dict[str, str]) -> int:
    return _count(env, "SELECT count(*) FROM devices")


def test_import_lists_every_bad_row_and_imports_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    """P-REG-1: exit code 1, each bad row with its number and reason, nothing imported."""
    _seeded(env)
    file = tmp_path / "register.csv"
    file.write_bytes(
        make_csv(
            [
                ipad("CLI-1", "DMPXK2Q1CL11", Room="Year 4 classroom"),
                ipad("CLI-2", "DMPXK2Q1CL12", **{"Cost (£)": "01/09/2021"}, Room=""),
                ipad("CLI-3", "DMPXK2Q1CL13", Room="Year 9 classroom"),
                ipad("OAK-IPAD-031", "DMPXK2Q1CL14", Room=""),
            ]
        )
    )
    result = run(env, "devices", "import", str(file))
    assert result.exit_code == 1
    assert (
        "Row 3, column E (Cost (£)): This looks like a date, not a cost: are the columns in the "
        "right order?" in result.stderr
    )
    assert "Row 4, column F (Room): “Year 9 classroom” is not in Places yet" in result.stderr
    assert "2 row(s) have problems; nothing was imported." in result.stderr
    assert "Row 2" not in result.stderr
    # row 5 re-uses a demo tag with a different serial: an update, which is allowed
    assert "Row 5" not in result.stderr and "1 updated" in result.stdout
    assert _devices(env) == 90


def test_dry_run_then_import_then_reimport(env: dict[str, str], tmp_path: Path) -> None:
    _seeded(env)
    file = tmp_path / "register.csv"
    file.write_bytes(
        make_csv(
            [
                ipad("CLI-1", "DMPXK2Q1CL11", Room="Year 4 classroom"),
                ipad("CLI-2", "DMPXK2Q1CL12", Room="Music room"),
            ]
        )
    )
    dry = run(env, "devices", "import", str(file), "--dry-run", "--create-locations")
    assert dry.exit_code == 0, dry.output
    assert "2 new, 0 updated, 0 unchanged." in dry.stdout
    assert "Dry run: nothing was imported." in dry.stdout
    assert "Checking: 2 of 2 rows" in dry.stderr  # progress
    assert _devices(env) == 90
    assert _count(env, "SELECT count(*) FROM locations WHERE name = 'Music room'") == 0

    done = run(
        env, "devices", "import", str(file), "--create-locations", "--parent", "Oakfield Road site"
    )
    assert done.exit_code == 0, done.output
    assert "Imported: 2 new, 0 updated, 0 unchanged. Added to Places: Music room." in done.stdout
    assert _devices(env) == 92
    again = run(env, "devices", "import", str(file), "--school", "oakfield")
    assert again.exit_code == 0, again.output
    assert "Imported: 0 new, 0 updated, 2 unchanged." in again.stdout
    assert _devices(env) == 92


def test_export_then_import_round_trips(env: dict[str, str], tmp_path: Path) -> None:
    """P-REG-1: `devices export` writes the columns `devices import` reads; nothing changes."""
    _seeded(env)
    as_csv, as_xlsx = tmp_path / "register.csv", tmp_path / "register.xlsx"
    exported = run(env, "devices", "export", str(as_csv))
    assert exported.exit_code == 0 and "Wrote 90 devices" in exported.stdout
    assert run(env, "devices", "export", str(as_xlsx)).exit_code == 0
    rows = list(load_workbook(as_xlsx).active.iter_rows(values_only=True))
    assert len(rows) == 91 and rows[0][0] == "Asset tag"
    events = _count(env, "SELECT count(*) FROM device_events")
    back = run(env, "devices", "import", str(as_csv))
    assert back.exit_code == 0, back.output
    assert "Imported: 0 new, 0 updated, 90 unchanged." in back.stdout
    assert _count(env, "SELECT count(*) FROM device_events") == events
    wrong = run(env, "devices", "export", str(tmp_path / "register.pdf"))
    assert wrong.exit_code == 2 and "must end in .csv or .xlsx" in wrong.output


def test_a_file_that_is_not_csv(env: dict[str, str], tmp_path: Path) -> None:
    _seeded(env)
    file = tmp_path / "register.csv"
    file.write_bytes(b"PK\x03\x04" + bytes(100))
    result = run(env, "devices", "import", str(file))
    assert result.exit_code == 1 and "Excel workbook" in result.output
    assert _devices(env) == 90


def test_column_map_re_tag_and_before_and_after(env: dict[str, str], tmp_path: Path) -> None:
    """`--map`, `--retag`, the heading row found under a title, and every change shown."""
    _seeded(env)
    headings = ["Kit No", "Serial Number", "Make/Model", "Cost"]
    first = tmp_path / "first.csv"
    first.write_bytes(
        b"Oakfield register,,,\n"
        + make_csv([["CLI-1", "DMPXK2Q1CL11", "Apple iPad", "£329.00"]], headings)
    )
    unmapped = run(env, "devices", "import", str(first))
    assert unmapped.exit_code == 1 and "No column holds the asset tag" in unmapped.stderr
    mapped = run(env, "devices", "import", str(first), "--map", "Asset tag=Kit No")
    assert mapped.exit_code == 0, mapped.output
    assert "headings on row 2" in mapped.stdout and "1 new" in mapped.stdout
    wrong = run(env, "devices", "import", str(first), "--map", "Asset tag=Kit Number")
    assert wrong.exit_code == 2 and "no column headed “Kit Number”" in wrong.output

    second = tmp_path / "second.csv"
    second.write_bytes(make_csv([["CLI-NEW", "DMPXK2Q1CL11", "Apple iPad", "£1,349.99"]], headings))
    args = ("devices", "import", str(second), "--map", "Asset tag=Kit No", "--dry-run")
    refused = run(env, *args)
    assert refused.exit_code == 1
    assert "Serial number DMPXK2Q1CL11 belongs to CLI-1 in the register" in refused.stderr
    assert "--retag CLI-NEW" in refused.stderr
    dry = run(env, *args, "--retag", "CLI-NEW")
    assert dry.exit_code == 0, dry.output
    assert "Row 2, CLI-NEW: Asset tag: CLI-1 → CLI-NEW; Cost: £329.00 → £1,349.99" in dry.stdout
    assert _count(env, "SELECT count(*) FROM devices WHERE asset_tag = 'CLI-NEW'") == 0
