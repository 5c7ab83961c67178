"""Typed message bodies: validation, round trips through signed envelopes."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mqtt.envelope import encode_public_key, key_id, open_envelope, sign
from mqtt.errors import MessageError, UnknownCommandError
from mqtt.messages import (
    Ack,
    AckState,
    Command,
    CommandType,
    Desired,
    Report,
    build_ack,
    build_command,
    build_desired,
    profile_sha256,
)

NOW = 1767225600
SERVER = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
DEVICE = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
SKID = key_id(SERVER.public_key())
DKID = key_id(DEVICE.public_key())


def command(**changes: Any) -> Command:
    options: dict[str, Any] = {"device_id": "dev-a", "kid": SKID, "seq": 1, "now": NOW}
    options.update(changes)
    command_type = options.pop("command_type", CommandType.PING)
    return build_command(command_type, **options)


def test_build_command_fills_id_and_times() -> None:
    first, second = command(), command(ttl=60)
    assert first.cmd_id != second.cmd_id
    assert (first.iat, first.exp, second.exp) == (NOW, NOW + 24 * 3600, NOW + 60)
    assert command(exp=NOW + 5).exp == NOW + 5
    assert command(cmd_id="7c9e6679-7425-40de-944b-e07fc1f90ae7").cmd_id.startswith("7c9e")


def test_command_round_trip_through_an_envelope() -> None:
    original = command(
        command_type="lost_mode", args={"enabled": True, "message": "Please return to Oak"}
    )
    body = original.to_body()
    assert set(body) == {"v", "kid", "cmd_id", "device_id", "seq", "type", "args", "iat", "exp"}
    assert body["type"] == "lost_mode"
    opened = open_envelope(
        sign(body, SERVER), {SKID: SERVER.public_key()}, device_id="dev-a", now=NOW
    )
    parsed = Command.from_body(opened)
    assert parsed == original
    assert parsed.type is CommandType.LOST_MODE


def test_unknown_command_type_is_a_clear_error() -> None:
    with pytest.raises(UnknownCommandError, match="unknown command type 'self_destruct'"):
        command(command_type="self_destruct")
    body = command().to_body() | {"type": "self_destruct"}
    with pytest.raises(UnknownCommandError, match="known types: ping"):
        Command.from_body(body)


@pytest.mark.parametrize(
    ("command_type", "args"),
    [
        ("ping", {"extra": 1}),
        ("lost_mode", {}),
        ("lost_mode", {"enabled": "yes"}),
        ("apply_profile", {"sha256": "ABC"}),
        ("apply_profile", {"version": -1}),
        ("lock", {"message": "x" * 501}),
        ("wipe_photos", {"reason": 5}),
        ("wipe_photos", {"reason": 0.5}),
    ],
)
def test_command_arguments_are_checked(command_type: str, args: dict[str, Any]) -> None:
    with pytest.raises(MessageError):
        command(command_type=command_type, args=args)


@pytest.mark.parametrize(
    "changes",
    [
        {"cmd_id": "not-a-uuid"},
        {"cmd_id": "7C9E6679-7425-40DE-944B-E07FC1F90AE7"},
        {"device_id": "DEV/A"},
        {"seq": -1},
        {"seq": True},
        {"iat": NOW, "exp": NOW},
        {"kid": ""},
        {"v": 2},
    ],
)
def test_command_body_fields_are_checked(changes: dict[str, Any]) -> None:
    with pytest.raises(MessageError):
        Command.from_body(command().to_body() | changes)


def test_unknown_and_missing_fields_are_refused() -> None:
    with pytest.raises(MessageError, match="unknown field"):
        Command.from_body(command().to_body() | {"priority": 1})
    body = command().to_body()
    del body["seq"]
    with pytest.raises(MessageError, match="missing field"):
        Command.from_body(body)
    with pytest.raises(MessageError, match="missing field"):
        Command.from_body(command().to_body() | {"seq": None})


def test_a_body_for_one_kind_does_not_parse_as_another() -> None:
    ack = build_ack(str(command().cmd_id), "done", device_id="dev-a", kid=DKID, now=NOW)
    with pytest.raises(MessageError):
        Command.from_body(ack.to_body())
    with pytest.raises(MessageError):
        Report.from_body(ack.to_body())
    with pytest.raises(MessageError):
        Ack.from_body(command().to_body())


def test_ack_round_trip_signed_by_the_device() -> None:
    ack = build_ack(
        "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        AckState.DONE,
        device_id="dev-a",
        kid=DKID,
        now=NOW,
        detail="wiped 12 photos",
        result={"deleted": 12},
    )
    raw = sign(ack.to_body(), DEVICE)
    opened = open_envelope(raw, {DKID: DEVICE.public_key()}, device_id="dev-a", now=NOW + 60)
    assert Ack.from_body(opened) == ack
    assert Ack.from_body({k: v for k, v in ack.to_body().items() if k != "result"}).result == {}


@pytest.mark.parametrize(
    "changes",
    [{"state": "finished"}, {"state": 1}, {"cmd_id": ""}, {"result": {"ratio": 0.5}}],
)
def test_ack_fields_are_checked(changes: dict[str, Any]) -> None:
    base = build_ack("c-1", "received", device_id="dev-a", kid=DKID, now=NOW).to_body()
    with pytest.raises(MessageError):
        Ack.from_body(base | changes)


def test_report_optional_fields() -> None:
    report = Report(
        kid=DKID,
        device_id="dev-a",
        iat=NOW,
        exp=NOW + 60,
        os="iPadOS",
        battery_percent=87,
        charging=False,
        photo_count=0,
        apps=["com.apple.mobilesafari", "org.scratch.jr"],  # type: ignore[arg-type]
        profile_sha256="0" * 64,
        extra={"wifi": "school"},
    )
    body = report.to_body()
    assert body["apps"] == ["com.apple.mobilesafari", "org.scratch.jr"]
    assert "serial" not in body
    parsed = Report.from_body(body)
    assert parsed == report
    assert parsed.apps == ("com.apple.mobilesafari", "org.scratch.jr")
    minimal = Report.from_body(
        {"v": 1, "kid": DKID, "device_id": "dev-a", "iat": NOW, "exp": NOW + 1}
    )
    assert minimal.battery_percent is None and minimal.extra == {}


@pytest.mark.parametrize(
    "changes",
    [
        {"battery_percent": 101},
        {"photo_count": -1},
        {"apps": "one-string"},
        {"apps": [""]},
        {"charging": 1},
        {"profile_sha256": "xyz"},
        {"extra": {"temp": 21.5}},
        {"storage_free_bytes": 1.0},
    ],
)
def test_report_fields_are_checked(changes: dict[str, Any]) -> None:
    base = {"v": 1, "kid": DKID, "device_id": "dev-a", "iat": NOW, "exp": NOW + 1}
    with pytest.raises(MessageError):
        Report.from_body(base | changes)


def test_desired_hash_binds_the_profile() -> None:
    profile = {"name": "KS2 iPad", "restrictions": {"allowCamera": True}, "version": 4}
    desired = build_desired(
        profile,
        device_id="dev-a",
        kid=SKID,
        version=4,
        now=NOW,
        trusted_keys={"next": encode_public_key(DEVICE.public_key())},
    )
    assert desired.sha256 == profile_sha256(profile)
    assert Desired.from_body(desired.to_body()) == desired
    tampered = desired.to_body()
    tampered["profile"]["restrictions"]["allowCamera"] = False
    with pytest.raises(MessageError, match="sha256"):
        Desired.from_body(tampered)
    with pytest.raises(MessageError, match="trusted_keys"):
        Desired.from_body(desired.to_body() | {"trusted_keys": {"k": "not-a-key"}})
    with pytest.raises(MessageError):
        build_desired({"brightness": 0.5}, device_id="dev-a", kid=SKID, version=1, now=NOW)


def test_a_report_carries_each_settings_state_and_the_security_posture() -> None:
    """P-PROFILE-1, P-REG-7: per setting what the device did, and its passcode and encryption."""
    settings = [
        {
            "setting": "device.camera",
            "state": "enforced",
            "evidence": {"VideoCaptureAllowed": False},
        },
        {"setting": "passcode.required", "state": "not_supported", "detail": "no passcode here"},
        {"setting": "device.bluetooth_changes", "state": "failed", "detail": "rfkill: denied"},
    ]
    report = Report(
        kid=DKID,
        device_id="dev-a",
        iat=NOW,
        exp=NOW + 60,
        settings=settings,  # type: ignore[arg-type]
        settings_sha256="1" * 64,
        passcode=False,
        storage_encrypted=True,
        security_detail={"storage_encrypted": "/ is on dm-crypt (LUKS2)"},
    )
    parsed = Report.from_body(report.to_body())
    assert parsed == report
    assert [s["state"] for s in parsed.settings or ()] == ["enforced", "not_supported", "failed"]
    assert parsed.settings and parsed.settings[0]["detail"] == ""
    assert parsed.settings[1]["evidence"] == {}
    older = Report.from_body(
        {"v": 1, "kid": DKID, "device_id": "dev-a", "iat": NOW, "exp": NOW + 1}
    )
    assert older.settings is None and older.passcode is None and older.storage_encrypted is None
    assert older.network is None
    seen = Report(kid=DKID, device_id="dev-a", iat=NOW, exp=NOW + 60, network={"ssid": "Guest"})
    assert Report.from_body(seen.to_body()).network == {"ssid": "Guest"}


@pytest.mark.parametrize(
    "changes",
    [
        {"settings": [{"setting": "device.camera", "state": "enforced"}]},  # no sha256
        {"settings": [{"setting": "device.camera", "state": "on"}], "settings_sha256": "1" * 64},
        {
            "settings": [{"setting": "Device Camera", "state": "enforced"}],
            "settings_sha256": "1" * 64,
        },
        {
            "settings": [{"setting": "device.camera", "state": "enforced", "why": "x"}],
            "settings_sha256": "1" * 64,
        },
        {
            "settings": [{"setting": "device.camera", "state": "enforced"}] * 2,
            "settings_sha256": "1" * 64,
        },
        {
            "settings": [
                {"setting": "device.camera", "state": "enforced", "evidence": {"x": "y" * 3000}}
            ],
            "settings_sha256": "1" * 64,
        },
        {"passcode": "yes"},
        {"security_detail": {"owner": "me"}},
        {"network": {"ssid": "Guest", "gateway": "the router"}},
        {"network": {"ssid": "x" * 33}},
        {"network": {"ssid": "Guest", "mac": "00:11:22:33:44:55"}},
        {"network": "Guest"},
    ],
)
def test_the_applied_state_fields_are_checked(changes: dict[str, Any]) -> None:
    base = {"v": 1, "kid": DKID, "device_id": "dev-a", "iat": NOW, "exp": NOW + 1}
    with pytest.raises(MessageError):
        Report.from_body(base | changes)
