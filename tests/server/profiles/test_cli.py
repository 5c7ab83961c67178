"""`trolley profiles compile`: each target, precise errors, a signed profile OpenSSL accepts."""

from __future__ import annotations

import json
import plistlib
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from device_profiles import builtin_profile_texts
from provisioning.ca import create_school_ca, new_signing_identity
from server.cli import main

OPENSSL = "/usr/bin/openssl"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["profiles", *args], catch_exceptions=False)


@pytest.fixture
def ks2(tmp_path: Path) -> Path:
    path = tmp_path / "ks2-ipad.yaml"
    path.write_text(builtin_profile_texts()["ks2-ipad"], encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("target", "extra", "check"),
    [
        ("apple", [], lambda data: plistlib.loads(data)["PayloadType"] == "Configuration"),
        ("chrome", [], lambda data: "URLBlocklist" in json.loads(data)),
        ("chromeos", ["--org-unit", "03ph8a2z"], lambda data: b"orgunits/03ph8a2z" in data),
        ("kiosk", [], lambda data: json.loads(data)["auto_lock_minutes"] == 10),
    ],
)
def test_compile_each_target(
    ks2: Path, tmp_path: Path, target: str, extra: list[str], check: object
) -> None:
    out = tmp_path / f"out.{target}"
    result = run("compile", str(ks2), "--target", target, "--out", str(out), *extra)
    assert result.exit_code == 0, result.output
    assert check(out.read_bytes())  # type: ignore[operator]
    if target == "kiosk":
        assert "warning: device.airdrop" in result.stderr


def test_an_invalid_profile_exits_1_with_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "format: trolley-profile/1\nname: Bad\ndevice:\n  camera: sometimes\n"
        "  auto_lock_minutes: 99\nweb_filter:\n  mode: allow_list_only\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.mobileconfig"
    result = run("compile", str(bad), "--target", "apple", "--out", str(out))
    assert result.exit_code == 1 and not out.exists()
    assert "3 problems" in result.stderr
    assert (
        "bad.yaml:4: device.camera:" in result.stderr
        and "Allowed: allowed, blocked" in result.stderr
    )
    assert "bad.yaml:5: device.auto_lock_minutes:" in result.stderr
    assert "web_filter.allowed_urls" in result.stderr


def test_a_signed_mobileconfig_verifies_with_openssl(ks2: Path, tmp_path: Path) -> None:
    """P-PROFILE-1: the iPad profile is signed by the school's CA and OpenSSL verifies it."""
    now = datetime.now(UTC)
    ca = create_school_ca("Oakfield Primary", now=now)
    signer = new_signing_identity(ca, now=now)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    (tmp_path / "cert.pem").write_bytes(signer.cert_pem())
    (tmp_path / "key.pem").write_bytes(signer.key_pem())
    unsigned = tmp_path / "unsigned.mobileconfig"
    signed = tmp_path / "signed.mobileconfig"
    assert run("compile", str(ks2), "--target", "apple", "--out", str(unsigned)).exit_code == 0
    result = run(
        "compile",
        str(ks2),
        "--target",
        "apple",
        "--out",
        str(signed),
        "--sign",
        "--cert",
        str(tmp_path / "cert.pem"),
        "--key",
        str(tmp_path / "key.pem"),
    )
    assert result.exit_code == 0, result.output
    assert "(signed)" in result.stdout
    verified = subprocess.run(
        [
            OPENSSL,
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            str(signed),
            "-CAfile",
            str(tmp_path / "ca.pem"),
            "-out",
            str(tmp_path / "content"),
        ],
        capture_output=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr.decode()
    assert (tmp_path / "content").read_bytes() == unsigned.read_bytes()


def test_signing_with_a_key_that_is_not_the_certificates_is_refused(
    ks2: Path, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    ca = create_school_ca("Oakfield Primary", now=now)
    one, two = new_signing_identity(ca, now=now), new_signing_identity(ca, now=now)
    (tmp_path / "cert.pem").write_bytes(one.cert_pem())
    (tmp_path / "key.pem").write_bytes(two.key_pem())
    out = tmp_path / "signed.mobileconfig"
    result = run(
        "compile",
        str(ks2),
        "--target",
        "apple",
        "--out",
        str(out),
        "--sign",
        "--cert",
        str(tmp_path / "cert.pem"),
        "--key",
        str(tmp_path / "key.pem"),
    )
    assert result.exit_code == 1 and not out.exists()
    assert "private_key: the private key does not belong to the certificate" in result.stderr


def test_sign_needs_apple_and_a_certificate(ks2: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "x")
    assert run("compile", str(ks2), "--target", "kiosk", "--out", out, "--sign").exit_code == 2
    assert run("compile", str(ks2), "--target", "apple", "--out", out, "--sign").exit_code == 2
    assert run("compile", str(ks2), "--target", "chromeos", "--out", out).exit_code == 2
    listed = run("library")
    assert listed.exit_code == 0 and "ks2-ipad" in listed.stdout.split()
