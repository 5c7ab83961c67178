"""What building the web app and drawing its first page costs, against the same app with Flask's
defaults (every URL builder compiled up front, every template compiled anew), in the same run.

Every gunicorn worker, every `trolley` command that needs the app and every web test builds one:
the suite builds well over a thousand. Each round builds an app on a migrated SQLite file and
draws the log-in page and an error page; the baseline swaps in werkzeug's own `Rule` class and
no template cache. Prints the ratio first and writes bench/results/app_start.json.

    .venv/bin/python bench/bench_app_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import server
import server.web
from bench.common import median, write_result
from server.db import make_engine, migrate

TARGET = 0.7  # at most seven tenths of the CPU of Flask's defaults


def _round(url: str, instance: Path, key: str) -> float:
    """CPU seconds to build one app and draw two pages."""
    started = time.process_time()
    app = server.create_app(
        {"database_url": url, "instance_dir": instance, "data_keys": [key], "testing": True}
    )
    client = app.test_client()
    assert client.get("/login").status_code == 200
    assert client.get("/no-such-page").status_code == 404
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    key = Fernet.generate_key().decode()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate(make_engine(url))
        lazy_rules, template_code = server._lazily_built_rule, server.web.TEMPLATE_CODE
        from werkzeug.routing import Rule

        def defaults() -> None:
            server._lazily_built_rule = lambda: Rule
            server.web.TEMPLATE_CODE = None  # type: ignore[assignment]

        def ours() -> None:
            server._lazily_built_rule = lazy_rules
            server.web.TEMPLATE_CODE = template_code

        _round(url, Path(tmp) / "warm", key)  # imports and the first compilation, both sides
        measured, baseline = [], []
        for run in range(args.runs):  # alternated, so both sides see the same machine
            ours()
            measured.append(_round(url, Path(tmp) / f"m{run}", key))
            defaults()
            baseline.append(_round(url, Path(tmp) / f"b{run}", key))
        ours()
    value, base = median(measured), median(baseline)
    ratio = value / base
    write_result(
        "app_start",
        value=value,
        unit="s CPU per app built and two pages drawn",
        baseline=base,
        ratio=ratio,
        target=f"<= {TARGET}",
        details={"runs": args.runs},
    )
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
