"""The sealed backup format: a wrong passphrase, a change, a reorder or a cut is refused."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyrage import x25519

from server.backups.services.keypairs import generate, read_identities, read_recipients
from server.backups.services.retention import archive_name, newest, to_remove
from server.backups.services.sealing import (
    CHUNK,
    MAGIC,
    TAG,
    Opener,
    read_header,
    seal,
    unseal,
)
from server.errors import ValidationFailed

PASSPHRASE = "four random words here"


@pytest.fixture(scope="module")
def sealed() -> tuple[bytes, bytes]:
    """Two and a half chunks of data and their sealed form (one scrypt run for the module)."""
    plain = os.urandom(CHUNK * 2 + CHUNK // 2)
    out = io.BytesIO()
    seal(io.BytesIO(plain), out, PASSPHRASE, {"database": "sqlite"})
    return plain, out.getvalue()


def _open(data: bytes, opener: Opener = PASSPHRASE) -> bytes:
    out = io.BytesIO()
    unseal(io.BytesIO(data), out, opener, "b.backup")
    return out.getvalue()


def _body_start(data: bytes) -> int:
    return data.index(b"\n", len(MAGIC)) + 1


def test_round_trip_with_the_kdf_named_in_the_header(sealed: tuple[bytes, bytes]) -> None:
    """P-SEC-6: the backup is encrypted, and says how its key is derived."""
    plain, data = sealed
    assert plain[:64] not in data
    header = read_header(io.BytesIO(data), "b.backup")
    assert header.kdf["name"] == "scrypt" and header.kdf["n"] >= 2**17
    assert header.about == {"database": "sqlite"}
    assert _open(data) == plain


def test_a_wrong_passphrase_is_named_as_such(sealed: tuple[bytes, bytes]) -> None:
    with pytest.raises(ValidationFailed) as refused:
        _open(sealed[1], "another passphrase entirely")
    assert refused.value.code == "wrong_passphrase"


def test_a_cut_a_change_or_a_reorder_is_refused(sealed: tuple[bytes, bytes]) -> None:
    _plain, data = sealed
    start = _body_start(data)
    size = CHUNK + TAG
    cut = data[: start + 2 * size]  # ends cleanly after a whole chunk: still refused
    flipped = bytearray(data)
    flipped[start + size + 5] ^= 1
    swapped = data[:start] + data[start + size : start + 2 * size] + data[start : start + size]
    swapped += data[start + 2 * size :]
    for damaged in (cut, bytes(flipped), swapped):
        with pytest.raises(ValidationFailed) as refused:
            _open(damaged)
        assert refused.value.code == "damaged_backup"


def test_a_changed_header_is_refused(sealed: tuple[bytes, bytes]) -> None:
    """The header is authenticated: weakening its KDF or rewording it breaks the file."""
    _plain, data = sealed
    start = _body_start(data)
    header = json.loads(data[len(MAGIC) : start])
    header["about"]["database"] = "postgresql"
    changed = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + data[start:]
    with pytest.raises(ValidationFailed) as refused:
        _open(changed)
    assert refused.value.code == "damaged_backup"
    header["kdf"]["n"] = 2**40
    with pytest.raises(ValidationFailed):
        read_header(io.BytesIO(MAGIC + json.dumps(header).encode() + b"\n"), "b.backup")


def test_other_files_and_weak_passphrases_are_refused() -> None:
    with pytest.raises(ValidationFailed, match="is not a Trolley backup"):
        read_header(io.BytesIO(b"SQLite format 3\x00"), "b.backup")
    with pytest.raises(ValidationFailed, match="at least 12 characters"):
        seal(io.BytesIO(b"x"), io.BytesIO(), "short", {})


def test_retention_keeps_the_newest_of_each_day_and_month(tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, 1, 30, tzinfo=UTC)
    for day in range(70):
        for hour in (0, 12):
            (tmp_path / archive_name(start + timedelta(days=day, hours=hour))).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a backup")
    removed = to_remove(tmp_path, daily=7, monthly=3)
    kept = sorted(p.name for p in tmp_path.iterdir() if p not in removed)
    assert "notes.txt" in kept and all(p.name != "notes.txt" for p in removed)
    backups = [k for k in kept if k.endswith(".backup")]
    assert len(backups) == 7 + 2  # the last 7 days, plus the newest of January and February
    assert backups[-1] == archive_name(start + timedelta(days=69, hours=12))
    assert "trolley-20260131T133000Z.backup" in backups
    assert newest(tmp_path) == tmp_path / backups[-1]


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    generate(folder / "backup.key", folder / "backup.key.pub", datetime.now(UTC))
    return folder / "backup.key", folder / "backup.key.pub"


def test_sealed_to_a_public_key_only_its_private_key_opens_it(
    key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """P-SEC-6: a backup sealed to a public key; the wrong key or a passphrase is refused."""
    identity, public = key_pair
    assert oct(identity.stat().st_mode & 0o777) == "0o600"
    plain = os.urandom(CHUNK + 100)
    out = io.BytesIO()
    seal(io.BytesIO(plain), out, read_recipients(public), {"database": "sqlite"})
    data = out.getvalue()
    header = read_header(io.BytesIO(data), "b.backup")
    assert header.kdf is None and header.recipients == (public.read_text().strip(),)
    assert _open(data, read_identities(identity)) == plain

    generate(tmp_path / "other.key", tmp_path / "other.pub", datetime.now(UTC))
    with pytest.raises(ValidationFailed) as refused:
        _open(data, read_identities(tmp_path / "other.key"))
    assert refused.value.code == "wrong_identity"
    assert "does not open b.backup, which is sealed to age1" in refused.value.message
    with pytest.raises(ValidationFailed) as refused:
        _open(data, PASSPHRASE)
    assert refused.value.code == "needs_identity"


def test_a_passphrase_backup_refuses_a_private_key(
    sealed: tuple[bytes, bytes], key_pair: tuple[Path, Path]
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        _open(sealed[1], read_identities(key_pair[0]))
    assert refused.value.code == "needs_passphrase"


def test_swapped_recipients_in_the_header_are_refused(key_pair: tuple[Path, Path]) -> None:
    """The recipients are authenticated like the rest of the header."""
    out = io.BytesIO()
    seal(io.BytesIO(b"school"), out, read_recipients(key_pair[1]), {})
    data = out.getvalue()
    start = _body_start(data)
    header = json.loads(data[len(MAGIC) : start])
    header["recipients"] = [str(x25519.Identity.generate().to_public())]
    changed = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + data[start:]
    with pytest.raises(ValidationFailed) as refused:
        _open(changed, read_identities(key_pair[0]))
    assert refused.value.code == "damaged_backup"


def test_key_files_are_checked_and_never_overwritten(
    key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    identity, public = key_pair
    with pytest.raises(ValidationFailed, match="holds a private key"):
        read_recipients(identity)
    with pytest.raises(ValidationFailed, match="should hold an age private key"):
        read_identities(public)
    with pytest.raises(ValidationFailed, match="never overwritten"):
        generate(identity, tmp_path / "x.pub", datetime.now(UTC))
    # A key age-keygen wrote (the same format, comments and all) is read as well.
    made = x25519.Identity.generate()
    (tmp_path / "age.txt").write_text(f"# created: today\n# public key: x\n{made}\n")
    assert read_identities(tmp_path / "age.txt").public == (str(made.to_public()),)
