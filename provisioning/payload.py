"""Enrolment payloads (shown as a QR code to a kiosk) and asset-label URLs (scanned by staff)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Any
from urllib.parse import SplitResult, urlsplit

from provisioning.errors import LabelCodeError, PayloadError

__all__ = [
    "ASSET_TAG_PATTERN",
    "LABEL_PATH",
    "MAX_LABEL_CODE_CHARS",
    "MAX_PAYLOAD_CHARS",
    "PAYLOAD_PREFIX",
    "PAYLOAD_VERSION",
    "PLACE_PATH",
    "EnrolmentPayload",
    "is_http_url",
    "is_valid_asset_tag",
    "label_url",
    "parse_label_url",
    "parse_place_url",
    "place_label_url",
]

PAYLOAD_PREFIX = "trolley-enrol"
PAYLOAD_VERSION = 1
# Far above a real payload (about 300 characters) and far below anything that costs to parse.
MAX_PAYLOAD_CHARS = 2048
MAX_LABEL_CODE_CHARS = 512
MAX_URL_CHARS = 512
LABEL_PATH = "/d/"
PLACE_PATH = "/l/"

# Starting with a letter or digit rules out "." and ".." (path traversal) and "-x" (option-like).
ASSET_TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
SCHOOL_SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
MIN_TOKEN_CHARS = 22  # 22 base64url characters carry 132 bits
MAX_TOKEN_CHARS = 256
FINGERPRINT_PATTERN = re.compile(r"[0-9a-f]{64}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_valid_asset_tag(text: str) -> bool:
    """Whether `text` is an asset tag: 1-32 of A-Z a-z 0-9 . _ -, starting alphanumeric."""
    return isinstance(text, str) and ASSET_TAG_PATTERN.fullmatch(text) is not None


def is_http_url(text: str) -> bool:
    """Whether `text` is an absolute http(s) URL with a host and no credentials or spaces."""
    return isinstance(text, str) and _split_http_url(text) is not None


def _has_space_or_control(text: str) -> bool:
    """Whether `text` holds whitespace or control characters (never valid in our codes)."""
    return any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text)


def _split_http_url(url: str) -> SplitResult | None:
    """Split an absolute http(s) URL with a host, no credentials and a valid port, or None."""
    if not url or len(url) > MAX_URL_CHARS or _has_space_or_control(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None or port == 0:
        return None
    return parts


def _check_server_url(url: str) -> None:
    """Refuse anything but a plain http(s) base URL."""
    parts = _split_http_url(url)
    if parts is None:
        raise PayloadError(
            "server URL must be an http:// or https:// address with a host name, "
            "no spaces and no user name or password"
        )
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise PayloadError("server URL must not have a query or fragment")


@dataclass(frozen=True)
class EnrolmentPayload:
    """What a kiosk needs to enrol: where the server is, a one-time token, and what to trust."""

    server_url: str
    token: str
    school_slug: str
    asset_tag: str
    ca_fingerprint: str | None = None

    def __post_init__(self) -> None:
        """Validate every field, so a bad payload can be neither built nor decoded."""
        for name in ("server_url", "token", "school_slug", "asset_tag"):
            if not isinstance(getattr(self, name), str):
                raise PayloadError(f"{name} must be a string")
        _check_server_url(self.server_url)
        if not self.token:
            raise PayloadError("token must not be empty")
        if not TOKEN_PATTERN.fullmatch(self.token):
            raise PayloadError("token must be URL-safe base64 (letters, digits, '-', '_')")
        if not MIN_TOKEN_CHARS <= len(self.token) <= MAX_TOKEN_CHARS:
            raise PayloadError(f"token must be {MIN_TOKEN_CHARS}-{MAX_TOKEN_CHARS} characters long")
        if not SCHOOL_SLUG_PATTERN.fullmatch(self.school_slug):
            raise PayloadError(
                "school slug must be 1-64 lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        if not is_valid_asset_tag(self.asset_tag):
            raise PayloadError(
                "asset tag must be 1-32 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if self.ca_fingerprint is not None and not (
            isinstance(self.ca_fingerprint, str)
            and FINGERPRINT_PATTERN.fullmatch(self.ca_fingerprint)
        ):
            raise PayloadError("CA fingerprint must be 64 lowercase hex digits (SHA-256)")

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, ASCII only."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    def encode(self) -> str:
        """The compact text a QR code carries: `trolley-enrol:1:<base64url(canonical JSON)>`."""
        body = base64.urlsafe_b64encode(self.to_json().encode("ascii")).rstrip(b"=")
        return f"{PAYLOAD_PREFIX}:{PAYLOAD_VERSION}:{body.decode('ascii')}"

    @classmethod
    def decode(cls, text: str) -> EnrolmentPayload:
        """Parse a scanned or pasted enrolment code, raising `PayloadError` on any flaw."""
        # Messages never quote the input: it may hold a live enrolment token.
        if not isinstance(text, str):
            raise PayloadError("enrolment code must be text")
        text = text.strip()
        if not text:
            raise PayloadError("enrolment code is empty")
        if len(text) > MAX_PAYLOAD_CHARS:
            raise PayloadError(f"enrolment code is longer than {MAX_PAYLOAD_CHARS} characters")
        parts = text.split(":", 2)
        if parts[0] != PAYLOAD_PREFIX:
            raise PayloadError(f"not a Trolley enrolment code (expected '{PAYLOAD_PREFIX}:')")
        if len(parts) != 3:
            raise PayloadError("enrolment code is incomplete (expected prefix:version:data)")
        version, body = parts[1], parts[2]
        if version != str(PAYLOAD_VERSION):
            raise PayloadError(
                f"unsupported enrolment code version (this kiosk reads version {PAYLOAD_VERSION})"
            )
        data = _decode_body(body)
        _check_fields(data)
        return cls(**data)


def _decode_body(body: str) -> dict[str, Any]:
    """The JSON object inside an enrolment code."""
    if not body:
        raise PayloadError("enrolment code has no data after the version")
    # We write no padding, but other encoders may; up to two '=' are harmless.
    unpadded = body.rstrip("=")
    if len(body) - len(unpadded) > 2:
        raise PayloadError("enrolment code data is not valid base64url")
    body = unpadded
    if not _BASE64URL.fullmatch(body) or len(body) % 4 == 1:
        raise PayloadError("enrolment code data is not valid base64url")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise PayloadError("enrolment code data is not valid base64url") from exc
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError as exc:
        raise PayloadError("enrolment code data is not UTF-8 text") from exc
    except ValueError as exc:  # json.JSONDecodeError, and duplicate keys
        raise PayloadError(f"enrolment code data is not valid JSON ({exc.args[0]})") from exc
    if not isinstance(data, dict):
        raise PayloadError("enrolment code data must be a JSON object")
    return data


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object hook refusing repeated keys, which parsers disagree about."""
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _check_fields(data: dict[str, Any]) -> None:
    """Require exactly the payload's fields, with the right JSON types."""
    expected = {field.name for field in fields(EnrolmentPayload)}
    missing = sorted(expected - data.keys())
    extra = sorted(data.keys() - expected)
    if missing:
        raise PayloadError(f"enrolment code is missing field(s): {', '.join(missing)}")
    if extra:
        # Names are ours or attacker-chosen; only print them if they look like field names.
        shown = [name if re.fullmatch(r"[a-z_]{1,32}", name) else "?" for name in extra]
        raise PayloadError(f"enrolment code has unknown field(s): {', '.join(shown)}")
    for name in sorted(expected):
        value = data[name]
        if name == "ca_fingerprint" and value is None:
            continue
        if not isinstance(value, str):
            raise PayloadError(f"enrolment code field {name} must be a string")


def _authority(parts: SplitResult) -> tuple[str, int | None]:
    """Host and non-default port; the scheme is left out on purpose (see `parse_label_url`)."""
    port = parts.port
    if port == _DEFAULT_PORTS.get(parts.scheme):
        port = None
    return (parts.hostname or "").lower(), port


def _base_parts(base_url: str) -> SplitResult:
    """The parts of the server's base URL, refusing a malformed one."""
    parts = _split_http_url(base_url)
    if parts is None or parts.query or parts.fragment:
        raise LabelCodeError("the server base URL is not a plain http(s) URL")
    return parts


def label_url(base_url: str, asset_tag: str) -> str:
    """The URL printed as a device label's QR code: `<base URL>/d/<asset tag>`."""
    _base_parts(base_url)
    if not is_valid_asset_tag(asset_tag):
        raise LabelCodeError(
            "asset tag must be 1-32 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return base_url.rstrip("/") + LABEL_PATH + asset_tag


def _scanned_code(text: str) -> str:
    """A scanned code without the Enter or Tab a keyboard-wedge scanner adds, checked."""
    if not isinstance(text, str):
        raise LabelCodeError("the scanned code must be text")
    code = text.strip()
    if not code:
        raise LabelCodeError("the scanned code is empty")
    if len(code) > MAX_LABEL_CODE_CHARS:
        raise LabelCodeError(f"the scanned code is longer than {MAX_LABEL_CODE_CHARS} characters")
    if _has_space_or_control(code):
        raise LabelCodeError("the scanned code contains spaces or control characters")
    return code


def _label_path(code: str, base: SplitResult) -> str:
    """The path of a scanned label URL below the server's own path (e.g. '/d/OAK-1')."""
    parts = _split_http_url(code)
    if parts is None:
        raise LabelCodeError("the scanned code is not an http(s) label URL")
    # http and https both match: labels outlive a school's move to TLS, and we only read the path.
    if _authority(parts) != _authority(base):
        raise LabelCodeError("the label belongs to another server")
    if "?" in code or "#" in code:
        raise LabelCodeError("a label URL has no query or fragment")
    if "%" in parts.path or "\\" in parts.path:
        # Tags never need escaping, so an escape can only be an attempt to smuggle '/' or '..'.
        raise LabelCodeError("a label URL contains escaped characters")
    root = base.path.rstrip("/")
    if not parts.path.startswith(root + "/"):
        raise LabelCodeError(f"not a device label URL (expected '{root}{LABEL_PATH}<asset tag>')")
    return parts.path[len(root) :]


def parse_label_url(text: str, base_url: str) -> str:
    """The asset tag in a scanned label: a `<base URL>/d/<tag>` URL or a bare tag."""
    base = _base_parts(base_url)
    code = _scanned_code(text)
    if is_valid_asset_tag(code):
        return code
    if "://" not in code:
        raise LabelCodeError("the scanned code is neither an asset tag nor a label URL")
    path = _label_path(code, base)
    if not path.startswith(LABEL_PATH):
        prefix = base.path.rstrip("/") + LABEL_PATH
        raise LabelCodeError(f"not a device label URL (expected '{prefix}<asset tag>')")
    tag = path[len(LABEL_PATH) :]
    if not is_valid_asset_tag(tag):
        raise LabelCodeError("the label URL does not end in a valid asset tag")
    return tag


def place_label_url(base_url: str, location_id: int) -> str:
    """The URL printed as a place's label (a trolley, safe or room): `<base URL>/l/<id>`."""
    _base_parts(base_url)
    if isinstance(location_id, bool) or not isinstance(location_id, int) or location_id < 1:
        raise LabelCodeError("a place's id is a whole number from 1")
    return f"{base_url.rstrip('/')}{PLACE_PATH}{location_id}"


def parse_place_url(text: str, base_url: str) -> int | None:
    """The place id in a scanned place label of this server, or None for any other code."""
    base = _base_parts(base_url)
    try:
        code = _scanned_code(text)
        path = _label_path(code, base) if "://" in code else ""
    except LabelCodeError:
        return None
    number = path[len(PLACE_PATH) :] if path.startswith(PLACE_PATH) else ""
    # At most ten digits: ids are 32-bit, and a longer run is not one of our labels.
    if not (number.isascii() and number.isdigit() and len(number) <= 10 and number[0] != "0"):
        return None
    return int(number)
