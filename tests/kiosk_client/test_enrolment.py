"""Enrolment, the data directory and its configuration, and the CLI's exit codes."""

from __future__ import annotations

import io
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk_client.cli import main
from kiosk_client.config import (
    CONFIG_NAME,
    KEY_NAME,
    SECRETS_NAME,
    load_config,
    load_identity,
    load_server_keys,
)
from kiosk_client.enrol import enrol
from kiosk_client.errors import ConfigError, EnrolmentRefusedError, NotEnrolledError
from mqtt.mosquitto import MosquittoTLS
from provisioning.ca import create_school_ca, new_server_identity
from tests.helpers import free_port
from tests.kiosk_client.conftest import Kiosk, require_mosquitto, start_mosquitto
from tests.kiosk_client.support import (
    SERVER_PASSWORD,
    SERVER_USER,
    FakeServer,
    IdentityPool,
    ServerPeer,
    identities,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_enrol_writes_an_identity_and_a_valid_config(server: FakeServer, tmp_path: Path) -> None:
    data = tmp_path / "kiosk"
    config = enrol(server.payload("OAK-0042"), platform="simulated", data_dir=data)
    assert config.asset_tag == "OAK-0042" and config.school == "Oakfield Primary"
    assert config.username == config.device_id
    assert mode(data / KEY_NAME) == 0o600 and mode(data / SECRETS_NAME) == 0o600
    assert mode(data) == 0o700
    assert config.password not in (data / CONFIG_NAME).read_text()
    loaded = load_config(data)
    assert loaded == config
    identity = load_identity(loaded)
    assert server.device_keys[config.device_id].public_bytes_raw() == (
        identity.private_key.public_key().public_bytes_raw()
    )
    assert list(load_server_keys(loaded)) == [server.kid]
    assert len(list((data / "device" / "DCIM").iterdir())) == 5
    request = server.enrolments[0]
    assert request["platform"] == "simulated" and len(request["public_key"]) == 43
    assert "tls_public_key_pem" not in request


def test_environment_overrides_secrets_and_addresses(server: FakeServer, tmp_path: Path) -> None:
    config = enrol(server.payload(), platform="simulated", data_dir=tmp_path / "k")
    loaded = load_config(
        config.data_dir,
        {
            "TROLLEY_KIOSK_BROKER_PASSWORD": "from-env",
            "TROLLEY_KIOSK_BROKER_URL": "mqtts://broker.school.example:8883",
            "TROLLEY_KIOSK_SERVER_URL": "https://trolley.school.example",
        },
    )
    assert loaded.password == "from-env"
    assert loaded.broker().host == "broker.school.example" and loaded.broker().tls
    assert loaded.server_url == "https://trolley.school.example"
    (config.data_dir / SECRETS_NAME).unlink()
    with pytest.raises(ConfigError, match="TROLLEY_KIOSK_BROKER_PASSWORD"):
        load_config(config.data_dir, {})
    assert load_config(config.data_dir, {"TROLLEY_KIOSK_BROKER_PASSWORD": "x"}).password == "x"


def test_a_bad_config_names_every_problem(server: FakeServer, tmp_path: Path) -> None:
    config = enrol(server.payload(), platform="simulated", data_dir=tmp_path / "k")
    path = config.data_dir / CONFIG_NAME
    text = path.read_text()
    text = text.replace('platform = "simulated"', 'platform = "ipados"')
    text = text.replace("report_interval = 900", 'report_interval = "often"')
    text += 'colour = "blue"\n'
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(config.data_dir, {})
    message = str(caught.value)
    assert "platform: must be one of simulated, linux" in message
    assert "report_interval: must be a whole number" in message
    assert "colour: unknown setting" in message
    path.write_text("device_id = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(config.data_dir, {})
    with pytest.raises(NotEnrolledError):
        load_config(tmp_path / "nowhere", {})


def test_cli_exit_codes(
    server: FakeServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = str(tmp_path / "kiosk")
    code = server.payload("OAK-0007")
    monkeypatch.setattr("sys.stdin", io.StringIO(code + "\n"))  # `-`: keeps it out of `ps`
    assert main(["enrol", "-", "--platform", "simulated", "--data-dir", data]) == 0
    assert "enrolled OAK-0007" in capsys.readouterr().out
    # Already enrolled here: refuse to overwrite an identity by accident.
    assert main(["enrol", server.payload(), "--platform", "simulated", "--data-dir", data]) == 6
    # The same code again elsewhere: the token is one-time.
    other = str(tmp_path / "other")
    assert main(["enrol", code, "--platform", "simulated", "--data-dir", other]) == 3
    assert "token_used" in capsys.readouterr().err
    assert (
        main(["enrol", "trolley-enrol:1:bm9wZQ", "--platform", "linux", "--data-dir", other]) == 2
    )
    unreachable = f"http://127.0.0.1:{free_port()}"
    assert (
        main(
            [
                "enrol",
                server.payload(),
                "--platform",
                "simulated",
                "--data-dir",
                other,
                "--server-url",
                unreachable,
                "--timeout",
                "2",
            ]
        )
        == 4
    )
    assert main(["run", "--data-dir", other]) == 5
    with pytest.raises(SystemExit) as usage:
        main(["enrol", code, "--platform", "windows", "--data-dir", other])
    assert usage.value.code == 2
    err = capsys.readouterr().err
    assert code.split(":")[2][:20] not in err  # the token never reaches the terminal


def test_tls_enrolment_pins_the_school_ca_and_connects_with_a_client_certificate(
    tmp_path: Path,
) -> None:
    """A code that pins a school CA: the kiosk gets a client certificate and speaks mqtts.

    Mosquitto requires the certificate (mTLS, the production set-up). The embedded broker is
    not used here: amqtt asks for client certificates but checks them against the system CAs,
    so a school-CA certificate is refused in the handshake (reported to the mqtt package).
    """
    require_mosquitto()
    now = datetime.now(UTC)
    ca = create_school_ca("Oakfield Primary", now=now)
    listener = new_server_identity(ca, now=now)
    for name, data in (
        ("broker.pem", listener.cert_pem()),
        ("broker.key", listener.key_pem()),
        ("ca.pem", ca.cert_pem()),
    ):
        (tmp_path / name).write_bytes(data)
    pool = list(identities(2, prefix="tls"))
    port, tls_port = free_port(), free_port()
    broker = start_mosquitto(
        tmp_path / "mosquitto",
        port=port,
        passwords={SERVER_USER: SERVER_PASSWORD, **{i.device_id: i.password for i in pool}},
        tls=MosquittoTLS(
            port=tls_port,
            host="127.0.0.1",
            cafile=tmp_path / "ca.pem",
            certfile=tmp_path / "broker.pem",
            keyfile=tmp_path / "broker.key",
            require_certificate=True,
        ),
    )
    server = FakeServer(IdentityPool(pool), tls_port, ca=ca, broker_scheme="mqtts")
    peer = ServerPeer(port, server)
    try:
        config = enrol(server.payload(), platform="simulated", data_dir=tmp_path / "k")
        assert "BEGIN PUBLIC KEY" in server.enrolments[0]["tls_public_key_pem"]
        assert config.broker_url == f"mqtts://127.0.0.1:{tls_port}"
        assert config.tls is not None and config.tls.cert_file is not None
        assert config.tls.key_file is not None and mode(config.tls.key_file) == 0o600
        kiosk = Kiosk(load_config(config.data_dir), peer)
        kiosk.start()
        try:
            peer.round_trip(kiosk.device_id)
        finally:
            kiosk.stop()
    finally:
        peer.close()
        server.close()
        broker()

    # A code whose CA fingerprint does not match the CA the server sends is refused.
    impostor = FakeServer(
        IdentityPool(pool[1:]),
        tls_port,
        ca=ca,
        broker_scheme="mqtts",
        ca_pem_override=create_school_ca("Evil", now=now).cert_pem().decode(),
    )
    try:
        with pytest.raises(EnrolmentRefusedError, match="does not match the fingerprint"):
            enrol(impostor.payload(), platform="simulated", data_dir=tmp_path / "k2")
        assert not (tmp_path / "k2").exists()
    finally:
        impostor.close()
