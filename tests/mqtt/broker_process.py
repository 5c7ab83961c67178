"""Run the embedded broker in a process of its own, so its memory can be measured alone.

`python -m tests.mqtt.broker_process PORT PASSWORD_FILE DATA_DIR` serves until SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from mqtt.broker import EmbeddedBroker


def main(port: int, password_file: Path, data_dir: Path) -> None:
    """Serve until SIGTERM."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmbeddedBroker(password_file=password_file, data_dir=data_dir, port=port):
        print("listening", flush=True)
        stop.wait()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
