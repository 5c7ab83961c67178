"""The topic tree and device id rules."""

from __future__ import annotations

import pytest

from mqtt import topics
from mqtt.errors import TopicError


def test_device_topics() -> None:
    assert topics.cmd_topic("ipad-0042") == "trolley/v1/dev/ipad-0042/cmd"
    assert topics.desired_topic("ipad-0042") == "trolley/v1/dev/ipad-0042/desired"
    assert topics.ack_topic("ipad-0042") == "trolley/v1/dev/ipad-0042/ack"
    assert topics.reported_topic("ipad-0042") == "trolley/v1/dev/ipad-0042/reported"
    assert topics.status_topic("ipad-0042") == "trolley/v1/dev/ipad-0042/status"
    assert topics.device_subscriptions("cb1") == [
        "trolley/v1/dev/cb1/cmd",
        "trolley/v1/dev/cb1/desired",
    ]


@pytest.mark.parametrize(
    "device_id",
    ["", "ab", "a+b", "dev/1", "dev#", "Dev-1", "-dev", "dev_1", "dev 1", "d" * 65, None, 42],
)
def test_invalid_device_ids_cannot_reach_a_topic(device_id: object) -> None:
    assert not topics.is_device_id(device_id)
    with pytest.raises(TopicError):
        topics.cmd_topic(device_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("device_id", ["abc", "ipad-0042", "0-0", "d" * 64])
def test_valid_device_ids(device_id: str) -> None:
    assert topics.validate_device_id(device_id) == device_id


def test_parse_device_topic() -> None:
    assert topics.parse_device_topic("trolley/v1/dev/cb-7/ack") == ("cb-7", topics.TopicKind.ACK)
    for kind in topics.TopicKind:
        assert topics.parse_device_topic(topics.device_topic("cb-7", kind)) == ("cb-7", kind)


@pytest.mark.parametrize(
    "topic",
    [
        "trolley/v1/dev/cb-7",
        "trolley/v1/dev/cb-7/ack/extra",
        "trolley/v2/dev/cb-7/ack",
        "trolley/v1/grp/cb-7/ack",
        "trolley/v1/dev/+/ack",
        "trolley/v1/dev/CB/ack",
        "trolley/v1/dev/cb-7/unknown",
        "$share/trolley/trolley/v1/dev/cb-7/ack",
        "",
    ],
)
def test_parse_device_topic_refuses_everything_else(topic: str) -> None:
    with pytest.raises(TopicError):
        topics.parse_device_topic(topic)


def test_server_subscriptions() -> None:
    assert topics.server_subscriptions() == [
        "trolley/v1/dev/+/ack",
        "trolley/v1/dev/+/reported",
        "trolley/v1/dev/+/status",
    ]
    assert topics.server_subscriptions(shared=True) == [
        "$share/trolley/trolley/v1/dev/+/ack",
        "$share/trolley/trolley/v1/dev/+/reported",
        "$share/trolley/trolley/v1/dev/+/status",
    ]
    assert topics.server_subscriptions(shared=True, group="w")[0].startswith("$share/w/")
    with pytest.raises(TopicError):
        topics.server_subscriptions(shared=True, group="a/b")
