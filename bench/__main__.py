"""`make bench`: run every benchmark, then print one table of the latest results."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Every size and database the targets name, not only each script's quick default.
RUNS = {
    "audit": [["--postgres"]],
    "fanout": [["--big"]],
    "loans": [[], ["--postgres"]],
    "server_cost": [[], ["--postgres"], ["--big"], ["--big", "--postgres"]],
}


def main() -> int:
    only = set(sys.argv[1:])
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if only and name not in only:
            continue
        for extra in RUNS.get(name, [[]]):
            print(f"\n=== {' '.join([name, *extra])} ===", flush=True)
            started = time.monotonic()
            done = subprocess.run([sys.executable, str(script), *extra], cwd=HERE.parent)
            print(f"({time.monotonic() - started:.0f}s)", flush=True)
            if done.returncode != 0:
                failed.append(name)
    print("\n| benchmark | ratio | target | value | baseline |\n|---|---|---|---|---|")
    for path in sorted((HERE / "results").glob("*.json")):
        result = json.loads(path.read_text())
        print(
            f"| {result['name']} | {result['ratio']:.2f} | {result['target']} | "
            f"{result['value']:.4g} {result['unit']} | {result['baseline']:.4g} |"
        )
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
