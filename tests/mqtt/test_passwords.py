"""The shared broker password file (Mosquitto's `$7$` PBKDF2-SHA512 lines)."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest

from mqtt.errors import PasswordFileError
from mqtt.passwords import (
    generate_secret,
    hash_password,
    parse_password_file,
    read_password_file,
    verify_password,
    write_password_file,
)

# Written by `mosquitto_passwd -c -b passwd dev-a secret1` (Mosquitto 2.0.11).
MOSQUITTO_PASSWD_LINE = (
    "dev-a:$7$101$aejpeBl5Qw7A1kKA$1PhUB4RC6yI+er97od6HGUJOdag9vOvu+Cc2Zo9e2UoqOe1eGMRApXtjzXO6SA"
    "5Pa2dqG3UPvoay8XawDiKVfg=="
)


def test_hash_format_with_a_fixed_salt() -> None:
    salt = bytes(range(12))
    expected = hashlib.pbkdf2_hmac("sha512", b"secret1", salt, 1000)
    encoded = hash_password("secret1", salt=salt)
    assert (
        encoded
        == f"$7$1000${base64.b64encode(salt).decode()}${base64.b64encode(expected).decode()}"
    )
    assert encoded.startswith("$7$1000$AAECAwQFBgcICQoL$")


def test_verifies_a_hash_written_by_mosquitto_passwd() -> None:
    users = parse_password_file(MOSQUITTO_PASSWD_LINE + "\n")
    assert verify_password("secret1", users["dev-a"])
    assert not verify_password("secret2", users["dev-a"])


def test_verify_password() -> None:
    encoded = hash_password("pw", iterations=10)
    assert verify_password("pw", encoded)
    assert not verify_password("PW", encoded)
    assert not verify_password("", encoded)
    assert not verify_password(None, encoded)
    assert not verify_password("pw", "$6$salt$notpbkdf2")
    assert not verify_password("pw", encoded[:-8])
    assert hash_password("pw") != hash_password("pw")  # random salts


def test_write_and_read(tmp_path: Path) -> None:
    secret = generate_secret()
    assert len(secret) >= 43
    path = write_password_file(
        tmp_path / "passwd",
        {"dev-b": secret, "trolley_server": "s"},
        hashes={"dev-a": MOSQUITTO_PASSWD_LINE.split(":", 1)[1]},
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["dev-a", "dev-b", "trolley_server"]
    users = read_password_file(path)
    assert verify_password(secret, users["dev-b"])
    assert verify_password("secret1", users["dev-a"])
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize(
    "text",
    [
        "no-colon-here\n",
        "dev-a:plaintext\n",
        "dev/a:$7$101$aejpeBl5Qw7A1kKA$AAAA\n",
        "dev-a:$7$101$aejpeBl5Qw7A1kKA$AAAA\n",
        MOSQUITTO_PASSWD_LINE + "\n" + MOSQUITTO_PASSWD_LINE + "\n",
    ],
)
def test_malformed_files_name_the_line(text: str) -> None:
    with pytest.raises(PasswordFileError, match="line"):
        parse_password_file("# comment\n\n" + text)


def test_bad_entries_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PasswordFileError):
        write_password_file(tmp_path / "p", {"dev a": "x"})
    with pytest.raises(PasswordFileError):
        write_password_file(tmp_path / "p", {"dev-a": ""})
    with pytest.raises(PasswordFileError):
        write_password_file(tmp_path / "p", {"dev-a": "x"}, hashes={"dev-a": hash_password("y")})
    with pytest.raises(PasswordFileError):
        read_password_file(tmp_path / "missing")
