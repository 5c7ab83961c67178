"""Enrolment payloads and label URLs: round trips, and a clear error for every malformed input."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioning.errors import LabelCodeError, PayloadError, ProvisioningError
from provisioning.payload import (
    ASSET_TAG_PATTERN,
    EnrolmentPayload,
    is_valid_asset_tag,
    label_url,
    parse_label_url,
    parse_place_url,
    place_label_url,
)

TOKEN = "Qm9ndXMtdG9rZW4tZm9yLXRlc3RzLW9ubHktMTIzNDU"
FINGERPRINT = "ab" * 32
BASE = "https://trolley.oakfield.example"


def _payload(**changes: Any) -> EnrolmentPayload:
    """A valid payload, with some fields changed."""
    fields: dict[str, Any] = {
        "server_url": BASE,
        "token": TOKEN,
        "school_slug": "oakfield",
        "asset_tag": "IPAD-042",
        "ca_fingerprint": FINGERPRINT,
    }
    fields.update(changes)
    return EnrolmentPayload(**fields)


def _code(data: object, *, prefix: str = "trolley-enrol:1:") -> str:
    """An enrolment code wrapping arbitrary JSON, to build malformed codes."""
    raw = json.dumps(data).encode()
    return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")


_REMOVE = object()


def _fields(**changes: Any) -> dict[str, Any]:
    """The JSON object of a valid payload, with some keys changed (`_REMOVE` removes one)."""
    data: dict[str, Any] = json.loads(_payload().to_json())
    for key, value in changes.items():
        if value is _REMOVE:
            del data[key]
        else:
            data[key] = value
    return data


# --- enrolment payloads ----------------------------------------------------------------------


def test_round_trip() -> None:
    payload = _payload()
    text = payload.encode()
    assert text.startswith("trolley-enrol:1:")
    assert EnrolmentPayload.decode(text) == payload


def test_round_trip_without_a_ca_fingerprint() -> None:
    payload = _payload(ca_fingerprint=None)
    assert EnrolmentPayload.decode(payload.encode()) == payload
    assert '"ca_fingerprint":null' in payload.to_json()


def test_encoding_is_canonical_json_in_unpadded_base64url() -> None:
    text = _payload().encode()
    body = text.removeprefix("trolley-enrol:1:")
    assert "=" not in body and "+" not in body and "/" not in body
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    assert raw == (
        '{"asset_tag":"IPAD-042","ca_fingerprint":"' + FINGERPRINT + '",'
        '"school_slug":"oakfield","server_url":"' + BASE + '","token":"' + TOKEN + '"}'
    )
    assert _payload().encode() == text  # stable: the same payload, the same QR code


def test_the_payload_holds_nothing_but_its_five_fields() -> None:
    data = json.loads(_payload().to_json())
    assert set(data) == {"server_url", "token", "school_slug", "asset_tag", "ca_fingerprint"}


def test_surrounding_whitespace_from_a_paste_is_ignored() -> None:
    assert EnrolmentPayload.decode("  " + _payload().encode() + "\r\n") == _payload()


def test_decoding_tolerates_base64_padding_being_absent_or_present() -> None:
    body = base64.urlsafe_b64encode(_payload().to_json().encode()).decode()
    assert body.endswith("=")  # this payload's length needs padding, so both forms are tried
    assert EnrolmentPayload.decode("trolley-enrol:1:" + body) == _payload()
    assert EnrolmentPayload.decode("trolley-enrol:1:" + body.rstrip("=")) == _payload()


MALFORMED: list[tuple[str, str]] = [
    ("", "empty"),
    ("   \n", "empty"),
    ("x" * 3000, "longer than"),
    ("https://trolley.example/enrol", "not a Trolley enrolment code"),
    ("TROLLEY-ENROL:1:" + _payload().encode()[16:], "not a Trolley enrolment code"),
    ("trolley-enrol", "incomplete"),
    ("trolley-enrol:1", "incomplete"),
    ("trolley-enrol:1:", "no data"),
    (_payload().encode().replace(":1:", ":2:"), "unsupported enrolment code version"),
    (_payload().encode().replace(":1:", ":v1:"), "unsupported enrolment code version"),
    (_payload().encode().replace(":1:", "::"), "unsupported enrolment code version"),
    ("trolley-enrol:1:abc$def", "base64url"),
    ("trolley-enrol:1:abc+def/", "base64url"),
    ("trolley-enrol:1:abcde", "base64url"),
    ("trolley-enrol:1:e30===", "base64url"),
    ("trolley-enrol:1:e3=0", "base64url"),
    ("trolley-enrol:1:" + base64.urlsafe_b64encode(b"\xff\xfe{}").decode(), "UTF-8"),
    ("trolley-enrol:1:" + base64.urlsafe_b64encode(b"{not json").decode(), "not valid JSON"),
    (
        "trolley-enrol:1:"
        + base64.urlsafe_b64encode(b'{"token":"a","token":"b"}').decode().rstrip("="),
        "not valid JSON",
    ),
    (_code([1, 2, 3]), "JSON object"),
    (_code("a string"), "JSON object"),
    (_code(_fields(token=_REMOVE)), "missing field(s): token"),
    (_code(_fields(ca_fingerprint=_REMOVE)), "missing field(s): ca_fingerprint"),
    (_code(_fields(pupil_name="Alice")), "unknown field(s): pupil_name"),
    (_code(_fields(**{"<script>": 1})), "unknown field(s): ?"),
    (_code(_fields(token=12345)), "token must be a string"),
    (_code(_fields(asset_tag=None)), "asset_tag must be a string"),
    (_code(_fields(server_url="ftp://trolley.example")), "http:// or https://"),
    (_code(_fields(server_url="javascript:alert(1)")), "http:// or https://"),
    (_code(_fields(server_url="trolley.example")), "http:// or https://"),
    (_code(_fields(server_url="https://")), "http:// or https://"),
    (_code(_fields(server_url="https://user:pw@trolley.example")), "password"),
    (_code(_fields(server_url="https://trolley.example:99999")), "http:// or https://"),
    (_code(_fields(server_url="https://tro lley.example")), "no spaces"),
    (_code(_fields(server_url="https://trolley.example/?next=x")), "query"),
    (_code(_fields(server_url="https://trolley.example/#x")), "query or fragment"),
    (_code(_fields(token="")), "token must not be empty"),
    (_code(_fields(token="short")), "characters long"),
    (_code(_fields(token="a" * 300)), "characters long"),
    (_code(_fields(token="a" * 30 + "/+=")), "URL-safe"),
    (_code(_fields(school_slug="")), "school slug"),
    (_code(_fields(school_slug="Oak Field")), "school slug"),
    (_code(_fields(asset_tag="")), "asset tag"),
    (_code(_fields(asset_tag="../etc")), "asset tag"),
    (_code(_fields(asset_tag="A" * 33)), "asset tag"),
    (_code(_fields(ca_fingerprint="AB" * 32)), "CA fingerprint"),
    (_code(_fields(ca_fingerprint="ab" * 31)), "CA fingerprint"),
    (_code(_fields(ca_fingerprint=42)), "ca_fingerprint must be a string"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_codes_raise_a_clear_payload_error(text: str, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        EnrolmentPayload.decode(text)
    assert message in str(caught.value)
    assert isinstance(caught.value, ProvisioningError)
    # The message must never echo a live token.
    assert TOKEN not in str(caught.value)


def test_decoding_non_text_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="text"):
        EnrolmentPayload.decode(b"trolley-enrol:1:e30")  # type: ignore[arg-type]


def test_a_bad_payload_cannot_be_built_either() -> None:
    with pytest.raises(PayloadError, match="token must not be empty"):
        _payload(token="")
    with pytest.raises(PayloadError, match="http"):
        _payload(server_url="javascript:alert(1)")


# --- label URLs ------------------------------------------------------------------------------


def test_label_url_and_parse_round_trip() -> None:
    url = label_url(BASE, "IPAD-042")
    assert url == BASE + "/d/IPAD-042"
    assert parse_label_url(url, BASE) == "IPAD-042"
    assert label_url(BASE + "/", "IPAD-042") == url


@given(st.from_regex(ASSET_TAG_PATTERN, fullmatch=True))
def test_every_valid_asset_tag_survives_a_label_round_trip(tag: str) -> None:
    assert parse_label_url(label_url(BASE, tag), BASE) == tag
    assert parse_label_url(tag, BASE) == tag


@pytest.mark.parametrize(
    ("text", "base", "tag"),
    [
        ("IPAD-042", BASE, "IPAD-042"),  # a scanner reading a plain barcode
        ("IPAD-042\r\n", BASE, "IPAD-042"),  # a scanner's Enter key
        ("\tipad_7.b", BASE, "ipad_7.b"),
        (BASE + "/d/IPAD-042\n", BASE, "IPAD-042"),
        ("HTTPS://TROLLEY.OAKFIELD.EXAMPLE/d/IPAD-042", BASE, "IPAD-042"),
        ("http://trolley.oakfield.example/d/IPAD-042", BASE, "IPAD-042"),  # printed before TLS
        ("https://trolley.oakfield.example:443/d/IPAD-042", BASE, "IPAD-042"),
        ("https://school.example/trolley/d/X1", "https://school.example/trolley/", "X1"),
        ("http://127.0.0.1:5000/d/X1", "http://127.0.0.1:5000", "X1"),
        ("http://[::1]:5000/d/X1", "http://[::1]:5000", "X1"),
    ],
)
def test_label_codes_that_are_accepted(text: str, base: str, tag: str) -> None:
    assert parse_label_url(text, base) == tag


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (" \r\n", "empty"),
        ("A" * 600, "longer than"),
        (BASE + "/d/" + "A" * 600, "longer than"),
        ("A" * 33, "neither an asset tag nor a label URL"),
        ("IPAD 042", "spaces"),
        ("IPAD\x00042", "control characters"),
        ("../../etc/passwd", "neither an asset tag nor a label URL"),
        ("..", "neither"),
        ("javascript:alert(document.cookie)", "neither an asset tag nor a label URL"),
        ("javascript://trolley.oakfield.example/d/X%0Aalert(1)", "not an http(s) label URL"),
        ("data:text/html,<script>alert(1)</script>", "neither"),
        ("file:///etc/passwd", "not an http(s) label URL"),
        ("ftp://trolley.oakfield.example/d/IPAD-042", "not an http(s) label URL"),
        ("https://evil.example/d/IPAD-042", "another server"),
        ("https://trolley.oakfield.example.evil.example/d/IPAD-042", "another server"),
        ("https://trolley.oakfield.example@evil.example/d/IPAD-042", "not an http(s) label URL"),
        ("https://trolley.oakfield.example:8443/d/IPAD-042", "another server"),
        ("https://trolley.oakfield.example:0/d/IPAD-042", "not an http(s) label URL"),
        ("https://trolley.oakfield.example:x/d/IPAD-042", "not an http(s) label URL"),
        ("https:///d/IPAD-042", "not an http(s) label URL"),
        (BASE + "/d/../admin", "valid asset tag"),
        (BASE + "/d/..", "valid asset tag"),
        (BASE + "/d/%2e%2e/admin", "escaped characters"),
        (BASE + "/d/IPAD%2F042", "escaped characters"),
        (BASE + "/d/IPAD\\..\\x", "escaped characters"),
        (BASE + "/x/../d/IPAD-042", "not a device label URL"),
        (BASE + "/D/IPAD-042", "not a device label URL"),
        (BASE + "/admin", "not a device label URL"),
        (BASE + "/d/", "valid asset tag"),
        (BASE + "/d/IPAD-042/", "valid asset tag"),
        (BASE + "/d/IPAD-042/edit", "valid asset tag"),
        (BASE + "/d/IPAD-042?next=/admin", "no query or fragment"),
        (BASE + "/d/IPAD-042#x", "no query or fragment"),
        (BASE + "/d/IPAD-042?", "no query or fragment"),
        (BASE + "/d/" + "A" * 33, "valid asset tag"),
        ("trolley-enrol:1:e30", "neither an asset tag nor a label URL"),
    ],
)
def test_malformed_label_codes_raise_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(LabelCodeError) as caught:
        parse_label_url(text, BASE)
    assert message in str(caught.value)


def test_a_label_code_under_a_base_path_must_keep_the_path() -> None:
    with pytest.raises(LabelCodeError, match="not a device label URL"):
        parse_label_url("https://school.example/d/X1", "https://school.example/trolley")


@pytest.mark.parametrize("base", ["", "trolley.example", "javascript:x", "https://x/?q=1"])
def test_a_malformed_base_url_is_refused(base: str) -> None:
    with pytest.raises(LabelCodeError, match="base URL"):
        parse_label_url("IPAD-042", base)
    with pytest.raises(LabelCodeError, match="base URL"):
        label_url(base, "IPAD-042")


@pytest.mark.parametrize("tag", ["", ".", "..", "-x", "_x", "a/b", "a b", "é", "A" * 33])
def test_invalid_asset_tags(tag: str) -> None:
    assert not is_valid_asset_tag(tag)
    with pytest.raises(LabelCodeError, match="asset tag"):
        label_url(BASE, tag)


@pytest.mark.parametrize("tag", ["A", "ipad-042", "CB_2024.17", "9", "A" * 32])
def test_valid_asset_tags(tag: str) -> None:
    assert is_valid_asset_tag(tag)


def test_a_place_label_round_trips_and_is_not_a_device_label() -> None:
    """A trolley's label (`/l/<id>`) names the place; read as a device it is refused."""
    url = place_label_url(BASE, 10)
    assert url == BASE + "/l/10"
    assert parse_place_url(url, BASE) == 10
    assert parse_place_url(" http://TROLLEY.oakfield.example/l/10\t", BASE) == 10
    assert parse_place_url("https://school.example/trolley/l/7", "https://school.example/trolley")
    with pytest.raises(LabelCodeError, match="not a device label URL"):
        parse_label_url(url, BASE)


@pytest.mark.parametrize(
    "text",
    [
        "10",
        "Year-6-trolley",
        BASE + "/d/IPAD-042",
        BASE + "/l/",
        BASE + "/l/0",
        BASE + "/l/010",
        BASE + "/l/10/",
        BASE + "/l/10?x=1",
        BASE + "/l/1%30",
        BASE + "/l/" + "9" * 11,
        BASE + "/l/\u0661",
        "https://evil.example/l/10",
        "https://school.example/l/7",
    ],
)
def test_anything_else_is_not_a_place_label(text: str) -> None:
    assert parse_place_url(text, BASE) is None


@pytest.mark.parametrize("location_id", [0, -1, True])
def test_a_place_label_needs_a_real_id(location_id: int) -> None:
    with pytest.raises(LabelCodeError, match="whole number"):
        place_label_url(BASE, location_id)
