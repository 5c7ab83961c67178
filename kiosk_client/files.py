"""Small file helpers: atomic writes with fixed permissions, and JSON read back safely."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_json", "read_json", "remove_quietly"]


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600, fsync: bool = True) -> None:
    """Replace `path` with `data` in one rename, so a crash leaves the old or the new file.

    With `fsync` the data (and the rename) also survive a power cut; the fleet simulator turns
    it off because a thousand fsyncs per fan-out measure the disk, not the protocol.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    if fsync:
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (not every filesystem allows it; then skip)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: Path, value: Any, *, mode: int = 0o600, fsync: bool = True) -> None:
    """Write `value` as sorted, indented JSON atomically."""
    text = json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    atomic_write(path, text.encode("utf-8"), mode=mode, fsync=fsync)


def read_json(path: Path) -> Any:
    """Parse a JSON file; `OSError` or `ValueError` (including bad UTF-8) if it cannot be read."""
    return json.loads(path.read_bytes().decode("utf-8"))


def remove_quietly(path: Path) -> None:
    """Delete a file if it exists."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
