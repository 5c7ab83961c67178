"""Broker URLs and the paho client factory."""

from __future__ import annotations

import pytest
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion

from mqtt.client import BrokerURL, TLSSettings, make_client, make_client_for_url
from mqtt.errors import BrokerURLError, ClientSetupError


def test_parse_plain_and_tls_urls() -> None:
    url = BrokerURL.parse("mqtt://trolley_server:p%40ss@127.0.0.1:1884")
    assert (url.scheme, url.host, url.port, url.username, url.password, url.tls) == (
        "mqtt",
        "127.0.0.1",
        1884,
        "trolley_server",
        "p@ss",
        False,
    )
    assert "p@ss" not in repr(url) and "p@ss" not in str(url)
    assert str(url) == "mqtt://trolley_server:***@127.0.0.1:1884"
    secure = BrokerURL.parse("MQTTS://broker.school.example")
    assert (secure.scheme, secure.port, secure.tls, secure.username) == ("mqtts", 8883, True, None)
    assert BrokerURL.parse("mqtt://[::1]").host == "::1"
    assert str(BrokerURL.parse("mqtt://[::1]:1")) == "mqtt://[::1]:1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("http://host", "scheme"),
        ("127.0.0.1:1883", "scheme"),
        ("mqtt://", "no host"),
        ("mqtt://host:99999", "port"),
        ("mqtt://host:0", "port"),
        ("mqtt://host:abc", "port"),
        ("mqtt://host/path", "path"),
        ("mqtt://host?x=1", "path"),
        ("mqtt://:secret@host", "no username"),
    ],
)
def test_bad_urls_have_clear_errors(url: str, message: str) -> None:
    with pytest.raises(BrokerURLError, match=message) as caught:
        BrokerURL.parse(url)
    assert "secret" not in str(caught.value)


def test_make_client_configuration() -> None:
    client = make_client(
        "dev-a",
        username="dev-a",
        password="pw",
        will_topic="trolley/v1/dev/dev-a/status",
        will_payload=b"offline",
        min_reconnect_delay=2,
        max_reconnect_delay=30,
        max_inflight=0,
    )
    assert client.protocol == paho.MQTTv311
    assert client._callback_api_version == CallbackAPIVersion.VERSION2
    assert client._client_id == b"dev-a"
    assert client._clean_session is False
    assert client._username == b"dev-a"
    assert client._will and client._will_topic == b"trolley/v1/dev/dev-a/status"
    assert client._will_payload == b"offline" and client._will_qos == 1 and client._will_retain
    assert 2 <= client._reconnect_min_delay <= 3 and client._reconnect_max_delay == 30
    assert client._max_inflight_messages == 0
    assert client._manual_ack is False
    assert make_client("dev-b", manual_ack=True)._manual_ack is True


def test_make_client_refusals() -> None:
    with pytest.raises(ClientSetupError, match="client id"):
        make_client("")
    assert make_client("", clean_session=True)._clean_session is True
    with pytest.raises(ClientSetupError):
        make_client("c", password="pw")
    with pytest.raises(ClientSetupError):
        make_client("c", will_topic="t")
    with pytest.raises(ClientSetupError):
        make_client("c", min_reconnect_delay=5, max_reconnect_delay=1)
    with pytest.raises(ClientSetupError):
        TLSSettings(cert_file="c.pem")
    with pytest.raises(ClientSetupError, match="TLS"):
        make_client_for_url("mqtt://h", "c", tls=TLSSettings())
    with pytest.raises(ClientSetupError, match="TLS files"):
        TLSSettings(ca_file="/nonexistent/ca.pem").context()


def test_make_client_for_url_uses_credentials_and_tls() -> None:
    client = make_client_for_url("mqtts://dev-a:pw@broker.example", "dev-a")
    assert client._username == b"dev-a" and client._password == b"pw"
    assert client._ssl_context is not None
