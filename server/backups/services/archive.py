"""One backup file: the database and every key, sealed; opened again on any machine."""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from server.activity.services import record
from server.backups.services.checks import (
    Check,
    Report,
    bring_schema_up_to_date,
    check_restored,
)
from server.backups.services.database import (
    DUMP_NAMES,
    dump,
    kind_of,
    load,
    schema_of,
    scratch,
)
from server.backups.services.keypairs import Recipients
from server.backups.services.keys import KEYS_FOLDER, Placement, data_keys, gather, place, put
from server.backups.services.retention import archive_name, to_remove
from server.backups.services.sealing import (
    Header,
    Lock,
    Opener,
    check_passphrase,
    read_header,
    seal,
    unseal,
)
from server.config import Locations, Settings
from server.db import Database, utcnow
from server.enrolment.services import write_broker_passwords
from server.errors import ValidationFailed

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE_FOLDER = "database"


@dataclass(frozen=True)
class Written:
    path: Path
    size: int
    removed: tuple[Path, ...]


@dataclass(frozen=True)
class Retention:
    """How many of the dated backups in a folder to keep."""

    daily: int
    monthly: int


def _trolley_version() -> str:
    try:
        return version("trolley-mdm")
    except PackageNotFoundError:
        return "unknown"


def take_backup(
    db: Database,
    settings: Settings,
    target: Path,
    lock: Lock,
    *,
    retention: Retention | None = None,
    now: datetime | None = None,
) -> Written:
    """Write the database and every key to one sealed file (dated, when `target` is a folder).

    `lock` is the school's passphrase, or public keys whose private halves are kept elsewhere.
    """
    if not isinstance(lock, Recipients):
        check_passphrase(lock)
    now = now or utcnow()
    file = target / archive_name(now) if target.is_dir() else target
    if retention is not None and not target.is_dir():
        raise ValidationFailed("Keeping only some backups needs a folder to keep them in.")
    if not file.parent.is_dir():
        raise ValidationFailed(f"There is no folder {file.parent} to write the backup in.")
    kind = kind_of(settings.database_url)
    with tempfile.TemporaryDirectory(prefix="trolley-backup-") as tmp:
        staging = Path(tmp) / "contents"
        (staging / DATABASE_FOLDER).mkdir(parents=True)
        dumped = dump(settings.database_url, staging / DATABASE_FOLDER)
        manifest = {
            "format": FORMAT,
            "created_at": now.isoformat(),
            "trolley": _trolley_version(),
            "database": {
                "kind": kind,
                "file": f"{DATABASE_FOLDER}/{dumped.name}",
                "schema": schema_of(settings.database_url),
            },
            "keys": gather(settings, staging / KEYS_FOLDER),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        bundle = Path(tmp) / "contents.tar"
        with tarfile.open(bundle, "w") as tar:
            for member in (MANIFEST, DATABASE_FOLDER, KEYS_FOLDER):
                tar.add(staging / member, arcname=member)
        partial = file.with_name(file.name + ".partial")
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with bundle.open("rb") as plain, os.fdopen(fd, "wb") as out:
            about = {"created_at": manifest["created_at"], "database": kind}
            seal(plain, out, lock, {**about, "trolley": manifest["trolley"]})
            out.flush()
            os.fsync(out.fileno())
        partial.replace(file)
    removed: list[Path] = []
    if retention is not None:
        removed = to_remove(target, daily=retention.daily, monthly=retention.monthly)
        for old in removed:
            old.unlink()
    with db.begin() as session:
        record(
            session,
            actor=None,
            action="backup.written",
            school_id=None,
            target_type="backup",
            target_id=file.name,
            details={
                "bytes": file.stat().st_size,
                "removed": [p.name for p in removed],
                "sealed_to": list(lock.keys) if isinstance(lock, Recipients) else "passphrase",
            },
        )
    return Written(file, file.stat().st_size, tuple(removed))


@dataclass(frozen=True)
class Opened:
    """A backup decrypted into a private temporary folder."""

    name: str
    folder: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.manifest["database"]["kind"])

    @property
    def dump(self) -> Path:
        return self.folder / str(self.manifest["database"]["file"])

    @property
    def keys(self) -> Path:
        return self.folder / KEYS_FOLDER

    @property
    def created_at(self) -> str:
        return str(self.manifest["created_at"])


def describe(archive: Path) -> Header:
    """What a backup says about itself, read without opening it; refuses other files."""
    with archive.open("rb") as source:
        return read_header(source, archive.name)


@contextmanager
def open_backup(archive: Path, opener: Opener) -> Iterator[Opened]:
    """Decrypt and unpack a backup; a wrong passphrase or key, or damage, is refused here."""
    with tempfile.TemporaryDirectory(prefix="trolley-restore-") as tmp:
        bundle = Path(tmp) / "contents.tar"
        with archive.open("rb") as source, bundle.open("wb") as out:
            unseal(source, out, opener, archive.name)
        folder = Path(tmp) / "contents"
        with tarfile.open(bundle) as tar:
            tar.extractall(folder, filter="data")
        bundle.unlink()
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            known = manifest["format"] == FORMAT and manifest["database"]["kind"] in (DUMP_NAMES)
        except (OSError, ValueError, KeyError, TypeError):
            known = False
        if not known:
            raise ValidationFailed(f"{archive.name} was made by another version of Trolley.")
        yield Opened(archive.name, folder, manifest)


def plan_restore(opened: Opened, locations: Locations, environ: Mapping[str, str]) -> Placement:
    """What a restore would put where, refusing anything that does not fit this machine."""
    here = kind_of(locations.database_url)
    if opened.kind != here:
        raise ValidationFailed(
            f"{opened.name} holds a {opened.kind} database, but this server is set up for "
            f"{here}: point TROLLEY_DATABASE_URL at a {opened.kind} database. Nothing was changed."
        )
    return place(opened.keys, locations, environ)


def restore(opened: Opened, locations: Locations, placement: Placement) -> None:
    """Replace the database and put the keys back (stop the server and workers first)."""
    load(locations.database_url, opened.dump, dumped_schema=opened.manifest["database"]["schema"])
    put(placement)


def after_restore(db: Database, settings: Settings, opened: Opened) -> Report:
    """Bring the schema up to date, check the result with this machine's settings, record it."""
    schema = bring_schema_up_to_date(db)
    checks = [schema, *check_restored(db, settings.data_keys)] if schema.ok else [schema]
    report = Report(tuple(checks))
    if schema.ok:
        with db.begin() as session:
            record(
                session,
                actor=None,
                action="backup.restored",
                school_id=None,
                target_type="backup",
                target_id=opened.name,
                details={"taken_at": opened.created_at, "checks_passed": report.ok},
            )
            write_broker_passwords(session, settings)
    return report


def drill(
    archive: Path, opener: Opener, live_url: str, *, scratch_url: str | None = None
) -> Report:
    """Restore a backup into a scratch database and check it; the live server is untouched."""
    with open_backup(archive, opener) as opened, tempfile.TemporaryDirectory() as tmp:
        what = "passphrase" if isinstance(opener, str) else "private key"
        checks = [Check(what, True, f"opens the backup taken {opened.created_at}")]
        if opened.kind != kind_of(live_url) and scratch_url is None:
            raise ValidationFailed(
                f"{archive.name} holds a {opened.kind} database: name an empty one to restore "
                "it into with --scratch-database."
            )
        with scratch(live_url, Path(tmp), scratch_url) as url:
            try:
                load(url, opened.dump, dumped_schema=opened.manifest["database"]["schema"])
            except ValidationFailed as exc:
                return Report((*checks, Check("database", False, exc.message)))
            checks.append(Check("database", True, f"restored whole into a scratch {opened.kind}"))
            scratch_db = Database(url)
            try:
                schema = bring_schema_up_to_date(scratch_db)
                checks.append(schema)
                if schema.ok:
                    checks.extend(check_restored(scratch_db, data_keys(opened.keys)))
            finally:
                scratch_db.dispose()
        taken = opened.manifest["keys"]
        checks.append(
            Check(
                "keys outside the database",
                bool(taken.get("data_keys")) and bool(taken.get("secret_key")),
                f"{taken.get('data_keys', 0)} data key(s), the session key"
                + (", the server's broker password" if taken.get("server_secret") else "")
                + (", the broker CA devices trust" if taken.get("mqtt_device_ca") else ""),
            )
        )
    return Report(tuple(checks))


def record_drill(db: Database, name: str, report: Report) -> None:
    """Keep the drill's result in the live trail: the evidence that restores are tested."""
    with db.begin() as session:
        record(
            session,
            actor=None,
            action="backup.drill",
            school_id=None,
            target_type="backup",
            target_id=name,
            details={"passed": report.ok, "failed": [c.name for c in report.checks if not c.ok]},
        )
