"""Generated Mosquitto configuration text (the live checks are in test_broker_contract)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mqtt.errors import BrokerConfigError
from mqtt.limits import BrokerLimits
from mqtt.mosquitto import (
    MosquittoTLS,
    acl_file_text,
    mosquitto_conf_text,
    password_file_text,
    write_mosquitto_config,
)
from mqtt.passwords import hash_password, parse_password_file, verify_password


def test_acl_file() -> None:
    lines = [line for line in acl_file_text().splitlines() if line and not line.startswith("#")]
    assert lines == [
        "pattern read trolley/v1/dev/%u/cmd",
        "pattern read trolley/v1/dev/%u/desired",
        "pattern write trolley/v1/dev/%u/ack",
        "pattern write trolley/v1/dev/%u/reported",
        "pattern write trolley/v1/dev/%u/status",
        "user trolley_server",
        "topic readwrite trolley/v1/#",
    ]
    assert acl_file_text(["w_1", "w_2"]).count("topic readwrite trolley/v1/#") == 2


@pytest.mark.parametrize("users", [[], ["trolley-server"], ["bad user"], ["x\ntopic readwrite #"]])
def test_acl_refuses_bad_server_users(users: list[str]) -> None:
    with pytest.raises(BrokerConfigError):
        acl_file_text(users)


def test_password_file_text_is_deterministic_given_hashes() -> None:
    fixed = hash_password("pw", salt=b"0" * 12)
    text = password_file_text(hashes={"dev-b": fixed, "dev-a": fixed})
    assert text == f"dev-a:{fixed}\ndev-b:{fixed}\n"
    generated = parse_password_file(password_file_text({"dev-c": "secret"}))
    assert verify_password("secret", generated["dev-c"])


def test_conf_text(tmp_path: Path) -> None:
    tls = MosquittoTLS(
        port=8883,
        cafile=tmp_path / "ca.pem",
        certfile=tmp_path / "server.pem",
        keyfile=tmp_path / "server.key",
        require_certificate=True,
        use_identity_as_username=True,
    )
    text = mosquitto_conf_text(
        port=1884,
        password_file=tmp_path / "passwd",
        acl_file=tmp_path / "acl",
        persistence_dir=tmp_path / "data",
        tls=tls,
    )
    lines = text.splitlines()
    for expected in [
        "allow_anonymous false",
        f"password_file {tmp_path}/passwd",
        f"acl_file {tmp_path}/acl",
        "persistence true",
        f"persistence_location {tmp_path}/data/",
        "listener 1884 127.0.0.1",
        "listener 8883 0.0.0.0",
        f"cafile {tmp_path}/ca.pem",
        f"certfile {tmp_path}/server.pem",
        f"keyfile {tmp_path}/server.key",
        "require_certificate true",
        "use_identity_as_username true",
        "log_dest stderr",
        "max_packet_size 2097152",
        "max_queued_messages 50000",
        "max_queued_bytes 67108864",
        "max_inflight_bytes 4194304",
        # Without it a burst of PUBACKs waited ~40 ms a burst behind Nagle's algorithm.
        "set_tcp_nodelay true",
    ]:
        assert expected in lines
    assert "allow_anonymous true" not in text
    assert not any(line.startswith("user ") for line in lines)
    # Devices log in on the TLS listener, where the client id is always the username; the
    # workers share the loopback listener under one login with their own client ids.
    tls_listener = lines.index("listener 8883 0.0.0.0")
    assert "use_username_as_clientid true" not in lines[:tls_listener]
    assert "use_username_as_clientid true" in lines[tls_listener:]


@pytest.mark.parametrize(
    ("host", "tied"),
    [
        ("127.0.0.1", False),
        ("localhost", False),
        ("::1", False),
        ("0.0.0.0", True),
        ("10.1.2.3", True),
        ("broker.example", True),
    ],
)
def test_a_plain_listener_devices_can_reach_ties_client_ids(
    tmp_path: Path, host: str, tied: bool
) -> None:
    text = mosquitto_conf_text(
        port=1883,
        host=host,
        password_file=tmp_path / "passwd",
        acl_file=tmp_path / "acl",
        persistence_dir=tmp_path / "data",
    )
    assert ("use_username_as_clientid true" in text) == tied


def test_limits_reach_the_configuration(tmp_path: Path) -> None:
    limits = BrokerLimits(max_packet_bytes=1000, max_queued_messages=7, max_queued_bytes=9000)
    text = mosquitto_conf_text(
        port=1883,
        password_file=tmp_path / "passwd",
        acl_file=tmp_path / "acl",
        persistence_dir=tmp_path / "data",
        limits=limits,
    )
    lines = text.splitlines()
    assert {"max_packet_size 1000", "max_queued_messages 7", "max_queued_bytes 9000"} <= set(lines)


def test_conf_refusals(tmp_path: Path) -> None:
    with pytest.raises(BrokerConfigError):
        mosquitto_conf_text(port=0, password_file="p", acl_file="a", persistence_dir=tmp_path)
    with pytest.raises(BrokerConfigError, match="whitespace"):
        mosquitto_conf_text(
            port=1883, password_file=tmp_path / "a b", acl_file="a", persistence_dir=tmp_path
        )
    with pytest.raises(BrokerConfigError):
        MosquittoTLS(
            port=8883, cafile="c", certfile="s", keyfile="k", use_identity_as_username=True
        )


def test_write_mosquitto_config(tmp_path: Path) -> None:
    files = write_mosquitto_config(tmp_path / "mosq", port=1885, passwords={"dev-a": "pw"})
    assert files.conf.read_text().count("listener ") == 1
    assert files.persistence_dir.is_dir()
    assert stat.S_IMODE(files.password_file.stat().st_mode) == 0o600
    assert verify_password("pw", parse_password_file(files.password_file.read_text())["dev-a"])
    assert "pattern read trolley/v1/dev/%u/cmd" in files.acl_file.read_text()
