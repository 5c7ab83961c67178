"""Property-based fuzzing of the parsers that take outside input: envelopes and profiles."""

from __future__ import annotations

import json
import string

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_profiles import load_profile
from device_profiles.errors import ProfileError
from mqtt.envelope import key_id, open_envelope, sign
from mqtt.errors import EnvelopeError

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KID = key_id(KEY.public_key())
KEYS = {KID: KEY.public_key()}
BODY = {
    "v": 1,
    "kid": KID,
    "cmd_id": "3f2b4c6e-0d1a-4e5f-8a9b-0c1d2e3f4a5b",
    "device_id": "dev-fuzz",
    "seq": 1,
    "type": "wipe_photos",
    "args": {},
    "iat": 1_700_000_000,
    "exp": 1_800_000_000,
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2048))
def test_envelope_decoder_refuses_arbitrary_bytes_cleanly(raw: bytes) -> None:
    """Bytes from the wire either verify or raise an EnvelopeError; nothing else escapes."""
    try:
        open_envelope(raw, KEYS, device_id="dev-fuzz", now=1_750_000_000)
    except EnvelopeError:
        pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=8), st.text(max_size=100))
def test_envelope_decoder_refuses_arbitrary_json_cleanly(body: dict[str, object], sig: str) -> None:
    raw = json.dumps({"body": body, "sig": sig}).encode()
    try:
        open_envelope(raw, KEYS, device_id="dev-fuzz", now=1_750_000_000)
    except EnvelopeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_to_a_signed_envelope_is_caught(position: int, value: int) -> None:
    """A forged or altered command never verifies (or parses to something else)."""
    raw = bytearray(sign(BODY, KEY))
    index = position % len(raw)
    if raw[index] == value:
        return
    raw[index] = value
    try:
        body = open_envelope(bytes(raw), KEYS, device_id="dev-fuzz", now=1_750_000_000)
    except EnvelopeError:
        return
    assert body == BODY  # only a change outside the signed content (e.g. whitespace) may pass


yaml_text = st.text(alphabet=string.printable, max_size=400)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(yaml_text)
def test_profile_loader_refuses_arbitrary_text_cleanly(text: str) -> None:
    """Any text is either a valid profile or a precise ProfileError; nothing else escapes."""
    try:
        load_profile(text, "fuzz.yaml")
    except ProfileError:
        pass


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "format",
                "name",
                "device",
                "apps",
                "web_filter",
                "passcode",
                "kiosk",
                "browser",
                "id",
                "description",
                "extra",
            ]
        ),
        json_values,
        max_size=6,
    )
)
def test_profile_loader_refuses_arbitrary_structures_cleanly(document: dict[str, object]) -> None:
    try:
        load_profile(json.dumps(document), "fuzz.yaml")
    except ProfileError:
        pass
