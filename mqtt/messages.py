"""Typed message bodies: what goes inside a signed envelope on each topic.

Each kind is a frozen dataclass that validates itself on construction; `to_body()` gives the
dict to `envelope.sign` and `from_body()` builds the object from an opened envelope, refusing
unknown fields (the exact key set also stops a body signed for one topic being replayed on
another). All times are integer epoch seconds.

| topic      | class     | signed by  |
|------------|-----------|------------|
| `cmd`      | `Command` | server key |
| `desired`  | `Desired` | server key |
| `ack`      | `Ack`     | device key |
| `reported` | `Report`  | device key |

A kiosk applies a `Desired` only if its `version` is newer than the one it applied, so an old
retained or replayed document cannot roll a device back.

A `Report` may say, for every setting of the profile document `settings_sha256`, whether the
device `enforced` it, cannot (`not_supported`, with why) or tried and `failed` (with the error),
with the evidence it read back; and whether unlocking needs a passcode and its storage is
encrypted (absent: not known); and the network it is on (`network`: the Wi-Fi name and the
gateway's address), so the server can tell a device seen off-site. Every one of those fields is
optional, so a report from an older kiosk still reads, as "not known".
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import cache
from typing import Any, ClassVar, Self, cast

from mqtt.envelope import (
    MAX_SAFE_INTEGER,
    PROTOCOL_VERSION,
    canonical_json,
    decode_public_key,
    plain_copy,
)
from mqtt.errors import EnvelopeError, MessageError, UnknownCommandError
from mqtt.topics import is_device_id

__all__ = [
    "DEFAULT_COMMAND_TTL",
    "DEFAULT_DESIRED_TTL",
    "DEFAULT_DEVICE_TTL",
    "Ack",
    "AckState",
    "Command",
    "CommandType",
    "Desired",
    "Report",
    "SettingState",
    "build_ack",
    "build_command",
    "build_desired",
    "is_destructive",
    "profile_sha256",
]

DEFAULT_COMMAND_TTL = 24 * 3600
# Desired state is retained for devices that are away for a holiday; the worker re-signs it.
DEFAULT_DESIRED_TTL = 30 * 24 * 3600
# Acks and reports may sit in a kiosk's outbox while it is offline.
DEFAULT_DEVICE_TTL = 7 * 24 * 3600

_MAX_TEXT = 500
_MAX_NAME = 200
_MAX_APPS = 5000
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# A profile setting's key path, as the profile language spells it ("device.camera").
_SETTING_PATH = re.compile(r"[a-z][a-z_]{0,39}(\.[a-z][a-z_]{0,39})?")
_MAX_SETTINGS = 200
_MAX_EVIDENCE_BYTES = 2048
_SECURITY_FIELDS = frozenset({"passcode", "storage_encrypted"})
_NETWORK_FIELDS = frozenset({"ssid", "gateway"})


class CommandType(StrEnum):
    """What a command asks a device to do."""

    PING = "ping"
    REPORT_INVENTORY = "report_inventory"
    WIPE_PHOTOS = "wipe_photos"
    APPLY_PROFILE = "apply_profile"
    LOST_MODE = "lost_mode"
    LOCK = "lock"
    FACTORY_RESET = "factory_reset"
    FREEZE = "freeze"


class SettingState(StrEnum):
    """What a device says about one setting of its profile."""

    ENFORCED = "enforced"
    NOT_SUPPORTED = "not_supported"
    FAILED = "failed"


class AckState(StrEnum):
    """How far a device got with a command."""

    RECEIVED = "received"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"


# Per command type: argument name -> (type, required). Every type may also carry `reason`, a
# short text shown on the device and in the timeline.
_ARG_SPECS: dict[CommandType, dict[str, tuple[type, bool]]] = {
    CommandType.PING: {},
    CommandType.REPORT_INVENTORY: {},
    CommandType.WIPE_PHOTOS: {},
    CommandType.APPLY_PROFILE: {"version": (int, False), "sha256": (str, False)},
    CommandType.LOST_MODE: {
        "enabled": (bool, True),
        "message": (str, False),
        "phone": (str, False),
    },
    CommandType.LOCK: {"message": (str, False)},
    CommandType.FACTORY_RESET: {},
    # The school froze (or unfroze) destructive commands: a frozen device refuses them.
    CommandType.FREEZE: {"enabled": (bool, True)},
}
_COMMON_ARGS: dict[str, tuple[type, bool]] = {"reason": (str, False)}


_DESTRUCTIVE = frozenset({CommandType.WIPE_PHOTOS, CommandType.LOCK, CommandType.FACTORY_RESET})


def is_destructive(command_type: CommandType | str, args: Mapping[str, Any]) -> bool:
    """Whether a command takes a device out of use or destroys data on it (what a freeze stops)."""
    if command_type == CommandType.LOST_MODE:
        return args.get("enabled") is True  # turning lost mode off gives the device back
    return command_type in _DESTRUCTIVE


# --- field checks -------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _int(name: str, value: object, *, minimum: int = 0, maximum: int = MAX_SAFE_INTEGER) -> int:
    """An integer within bounds (by default 0 to 2**53 - 1, what canonical JSON carries)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise MessageError(f"{name} must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise MessageError(f"{name} must be at least {minimum}")
    if value > maximum:
        raise MessageError(f"{name} must be at most {maximum}")
    return value


def _text(name: str, value: object, *, max_len: int = _MAX_TEXT, empty: bool = True) -> str:
    """A string within a length limit."""
    if not isinstance(value, str):
        raise MessageError(f"{name} must be a string, not {type(value).__name__}")
    if not empty and not value:
        raise MessageError(f"{name} must not be empty")
    if len(value) > max_len:
        raise MessageError(f"{name} is longer than {max_len} characters")
    return value


def _sha256(name: str, value: object) -> str:
    """Lower-case hex SHA-256."""
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise MessageError(f"{name} must be 64 lower-case hex digits")
    return value


def _json_object(name: str, value: object) -> dict[str, Any]:
    """A JSON object that canonical JSON can sign (no floats); returned as a plain dict copy."""
    if not isinstance(value, Mapping):
        raise MessageError(f"{name} must be an object")
    try:
        # A deep copy: the frozen message must not share nested dicts with its caller.
        copy: dict[str, Any] = plain_copy(value)
    except EnvelopeError as exc:
        raise MessageError(f"{name}: {exc.detail}") from None
    return copy


def _check_header(obj: Any) -> None:
    """The fields every body carries."""
    _text("kid", obj.kid, max_len=64, empty=False)
    if not is_device_id(obj.device_id):
        raise MessageError(f"device_id {obj.device_id!r} is not a valid device id")
    _int("iat", obj.iat)
    _int("exp", obj.exp)
    if obj.exp <= obj.iat:
        raise MessageError("exp must be after iat")


def _set(obj: object, name: str, value: object) -> None:
    """Normalise a field of a frozen dataclass during validation."""
    object.__setattr__(obj, name, value)


@cache
def _field_names(cls: type) -> frozenset[str]:
    """A message class's field names (asked for every message a worker opens)."""
    return frozenset(f.name for f in fields(cast(Any, cls)))


class _Body:
    """Shared `to_body`/`from_body` for the message dataclasses."""

    _optional: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        """Build from a body dict, refusing unknown, missing or ill-typed fields."""
        if not isinstance(body, Mapping):
            raise MessageError("body must be an object")
        if body.get("v") != PROTOCOL_VERSION or not _is_int(body.get("v")):
            raise MessageError(f"v must be {PROTOCOL_VERSION}")
        names = _field_names(cast(type, cls))
        unknown = sorted(set(body) - names - {"v"})
        if unknown:
            raise MessageError(f"unknown field(s) for {cls.__name__}: {', '.join(unknown)}")
        # null stands for "not sent", so a required field that is null counts as missing.
        values = {name: body[name] for name in names if body.get(name) is not None}
        missing = sorted(names - set(values) - cls._optional)
        if missing:
            raise MessageError(f"missing field(s) for {cls.__name__}: {', '.join(missing)}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise MessageError(f"bad fields for {cls.__name__}: {exc}") from None

    def to_body(self) -> dict[str, Any]:
        """The body dict to sign: `v` plus every field, omitting optional fields left unset."""
        body: dict[str, Any] = {"v": PROTOCOL_VERSION}
        for f in fields(cast(Any, self)):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, StrEnum):
                value = value.value
            body[f.name] = plain_copy(value)
        return body


# --- message kinds ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command(_Body):
    """A signed instruction from the server to one device."""

    kid: str
    cmd_id: str
    device_id: str
    seq: int
    type: CommandType
    args: Mapping[str, Any]
    iat: int
    exp: int

    def __post_init__(self) -> None:
        """Validate, and turn `type` into a `CommandType`."""
        _check_header(self)
        if not isinstance(self.cmd_id, str) or not _is_uuid(self.cmd_id):
            raise MessageError(f"cmd_id {self.cmd_id!r} must be a lower-case UUID string")
        _int("seq", self.seq)
        if not isinstance(self.type, str):
            raise MessageError("type must be a string")
        try:
            command_type = CommandType(self.type)
        except ValueError:
            known = ", ".join(t.value for t in CommandType)
            raise UnknownCommandError(
                f"unknown command type {self.type!r}; known types: {known}"
            ) from None
        _set(self, "type", command_type)
        _set(self, "args", _check_args(command_type, _json_object("args", self.args)))


def _is_uuid(text: str) -> bool:
    """Whether `text` is a UUID in its canonical lower-case hyphenated form."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _check_args(command_type: CommandType, args: dict[str, Any]) -> dict[str, Any]:
    """Check a command's arguments against its type's spec."""
    spec = {**_COMMON_ARGS, **_ARG_SPECS[command_type]}
    unknown = sorted(set(args) - set(spec))
    if unknown:
        allowed = ", ".join(sorted(spec)) or "none"
        raise MessageError(
            f"unknown argument(s) for {command_type.value}: {', '.join(unknown)}; "
            f"allowed: {allowed}"
        )
    for name, (kind, required) in spec.items():
        if name not in args:
            if required:
                raise MessageError(f"{command_type.value} needs argument {name!r}")
            continue
        value = args[name]
        if kind is bool and not isinstance(value, bool):
            raise MessageError(f"argument {name!r} must be true or false")
        if kind is int:
            _int(f"argument {name!r}", value)
        if kind is str:
            _text(f"argument {name!r}", value)
    if "sha256" in args:
        _sha256("argument 'sha256'", args["sha256"])
    return args


@dataclass(frozen=True)
class Ack(_Body):
    """A device's signed answer about one command."""

    kid: str
    device_id: str
    iat: int
    exp: int
    cmd_id: str
    state: AckState
    detail: str = ""
    result: Mapping[str, Any] = field(default_factory=dict)

    _optional: ClassVar[frozenset[str]] = frozenset({"detail", "result"})

    def __post_init__(self) -> None:
        """Validate, and turn `state` into an `AckState`."""
        _check_header(self)
        # Not only UUIDs: a device also acks (as rejected) commands whose id was garbage.
        _text("cmd_id", self.cmd_id, max_len=64, empty=False)
        _set(self, "state", _ack_state(self.state))
        _text("detail", self.detail)
        _set(self, "result", _json_object("result", self.result))


def _ack_state(value: object) -> AckState:
    """An `AckState` from its value, or `MessageError`."""
    if isinstance(value, str):
        try:
            return AckState(value)
        except ValueError:
            pass
    states = ", ".join(s.value for s in AckState)
    raise MessageError(f"state {value!r} must be one of: {states}")


@dataclass(frozen=True)
class Report(_Body):
    """A device's signed inventory and applied state; every inventory field is optional."""

    kid: str
    device_id: str
    iat: int
    exp: int
    os: str | None = None
    os_version: str | None = None
    model: str | None = None
    serial: str | None = None
    agent_version: str | None = None
    storage_total_bytes: int | None = None
    storage_free_bytes: int | None = None
    battery_percent: int | None = None
    charging: bool | None = None
    photo_count: int | None = None
    apps: tuple[str, ...] | None = None
    profile_version: int | None = None
    profile_sha256: str | None = None
    lost_mode: bool | None = None
    locked: bool | None = None
    # Per setting of the document `settings_sha256`: {setting, state, detail, evidence}.
    settings: tuple[Mapping[str, Any], ...] | None = None
    settings_sha256: str | None = None
    # Whether unlocking needs a passcode and the storage is encrypted; absent means not known.
    passcode: bool | None = None
    storage_encrypted: bool | None = None
    # How the device knows each of those two ({"passcode": "...", "storage_encrypted": "..."}).
    security_detail: Mapping[str, str] | None = None
    # The network the device is on: {"ssid": Wi-Fi name, "gateway": address}; absent: not known.
    network: Mapping[str, str] | None = None
    # Fields a newer kiosk sends before this package knows them; stored, never trusted.
    extra: Mapping[str, Any] = field(default_factory=dict)

    _optional: ClassVar[frozenset[str]] = frozenset(
        {
            "os",
            "os_version",
            "model",
            "serial",
            "agent_version",
            "storage_total_bytes",
            "storage_free_bytes",
            "battery_percent",
            "charging",
            "photo_count",
            "apps",
            "profile_version",
            "profile_sha256",
            "lost_mode",
            "locked",
            "settings",
            "settings_sha256",
            "passcode",
            "storage_encrypted",
            "security_detail",
            "network",
            "extra",
        }
    )

    def __post_init__(self) -> None:
        """Validate each field that is present."""
        _check_header(self)
        for name in ("os", "os_version", "model", "serial", "agent_version"):
            if getattr(self, name) is not None:
                _text(name, getattr(self, name), max_len=_MAX_NAME)
        for name in ("storage_total_bytes", "storage_free_bytes", "photo_count", "profile_version"):
            if getattr(self, name) is not None:
                _int(name, getattr(self, name))
        if self.battery_percent is not None:
            _int("battery_percent", self.battery_percent, maximum=100)
        for name in ("charging", "lost_mode", "locked", "passcode", "storage_encrypted"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise MessageError(f"{name} must be true or false")
        if self.profile_sha256 is not None:
            _sha256("profile_sha256", self.profile_sha256)
        if self.settings_sha256 is not None:
            _sha256("settings_sha256", self.settings_sha256)
        if self.settings is not None:
            if self.settings_sha256 is None:
                raise MessageError("settings need settings_sha256: the document they describe")
            _set(self, "settings", _applied_settings(self.settings))
        if self.security_detail is not None:
            _set(self, "security_detail", _security_detail(self.security_detail))
        if self.network is not None:
            _set(self, "network", _network(self.network))
        if self.apps is not None:
            if isinstance(self.apps, str | bytes) or not isinstance(self.apps, list | tuple):
                raise MessageError("apps must be a list of app ids")
            if len(self.apps) > _MAX_APPS:
                raise MessageError(f"apps lists more than {_MAX_APPS} entries")
            for app in self.apps:
                _text("apps[]", app, max_len=_MAX_NAME, empty=False)
            _set(self, "apps", tuple(self.apps))
        _set(self, "extra", _json_object("extra", self.extra))


def _applied_settings(value: object) -> tuple[dict[str, Any], ...]:
    """Each setting once, with a known state, a short detail and small evidence."""
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise MessageError("settings must be a list")
    if len(value) > _MAX_SETTINGS:
        raise MessageError(f"settings lists more than {_MAX_SETTINGS} entries")
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in value:
        entry = _json_object("settings[]", item)
        unknown = sorted(set(entry) - {"setting", "state", "detail", "evidence"})
        if unknown:
            raise MessageError(f"unknown field(s) in settings[]: {', '.join(unknown)}")
        setting = _text("settings[].setting", entry.get("setting"), max_len=80, empty=False)
        if not _SETTING_PATH.fullmatch(setting):
            raise MessageError(f"settings[].setting {setting!r} is not a setting's key path")
        if setting in seen:
            raise MessageError(f"settings lists {setting} twice")
        seen.add(setting)
        state = entry.get("state")
        if state not in {s.value for s in SettingState}:
            states = ", ".join(s.value for s in SettingState)
            raise MessageError(f"settings[].state must be one of: {states}")
        evidence = _json_object("settings[].evidence", entry.get("evidence", {}))
        if len(canonical_json(evidence)) > _MAX_EVIDENCE_BYTES:
            raise MessageError(f"the evidence for {setting} is over {_MAX_EVIDENCE_BYTES} bytes")
        entries.append(
            {
                "setting": setting,
                "state": state,
                "detail": _text("settings[].detail", entry.get("detail", "")),
                "evidence": evidence,
            }
        )
    return tuple(entries)


def _security_detail(value: object) -> dict[str, str]:
    """How the device knows its passcode and encryption state, in a few words each."""
    detail = _json_object("security_detail", value)
    unknown = sorted(set(detail) - _SECURITY_FIELDS)
    if unknown:
        raise MessageError(f"unknown field(s) in security_detail: {', '.join(unknown)}")
    for name, text in detail.items():
        _text(f"security_detail.{name}", text, max_len=_MAX_NAME)
    return detail


def _network(value: object) -> dict[str, str]:
    """The Wi-Fi name (any text, as SSIDs are) and the gateway, which must be an IP address."""
    network = _json_object("network", value)
    unknown = sorted(set(network) - _NETWORK_FIELDS)
    if unknown:
        raise MessageError(f"unknown field(s) in network: {', '.join(unknown)}")
    if "ssid" in network:
        # An SSID is at most 32 bytes (IEEE 802.11); names are shown, never trusted.
        _text("network.ssid", network["ssid"], max_len=32, empty=False)
    if "gateway" in network:
        gateway = _text("network.gateway", network["gateway"], max_len=45, empty=False)
        try:
            ipaddress.ip_address(gateway)
        except ValueError:
            raise MessageError("network.gateway must be an IP address") from None
    return network


@dataclass(frozen=True)
class Desired(_Body):
    """The signed desired state of one device: a profile document, its version and hash.

    `trusted_keys` (kid -> base64url public key) lets the server roll its signing key: the kiosk
    adds them to its pinned keys once this signed document verifies.
    """

    kid: str
    device_id: str
    iat: int
    exp: int
    version: int
    sha256: str
    profile: Mapping[str, Any]
    trusted_keys: Mapping[str, str] = field(default_factory=dict)

    _optional: ClassVar[frozenset[str]] = frozenset({"trusted_keys"})

    def __post_init__(self) -> None:
        """Validate, including that `sha256` really is the profile's hash."""
        _check_header(self)
        _int("version", self.version)
        _sha256("sha256", self.sha256)
        profile = _json_object("profile", self.profile)
        if profile_sha256(profile) != self.sha256:
            raise MessageError("sha256 does not match the profile document")
        _set(self, "profile", profile)
        keys = _json_object("trusted_keys", self.trusted_keys)
        for kid, text in keys.items():
            try:
                decode_public_key(text)
            except EnvelopeError:
                raise MessageError(f"trusted_keys[{kid!r}] is not a public key") from None
        _set(self, "trusted_keys", keys)


# --- builders -----------------------------------------------------------------------------------


def profile_sha256(profile: Mapping[str, Any]) -> str:
    """The hex SHA-256 of a profile document's canonical JSON (what a device reports as applied)."""
    return hashlib.sha256(canonical_json(profile)).hexdigest()


def build_command(
    command_type: CommandType | str,
    *,
    device_id: str,
    kid: str,
    seq: int,
    now: int,
    args: Mapping[str, Any] | None = None,
    ttl: int = DEFAULT_COMMAND_TTL,
    exp: int | None = None,
    cmd_id: str | None = None,
) -> Command:
    """A new command: a fresh uuid4 `cmd_id` unless given, `iat=now`, `exp=exp or now+ttl`."""
    if isinstance(command_type, str) and not isinstance(command_type, CommandType):
        try:
            command_type = CommandType(command_type)
        except ValueError:
            raise UnknownCommandError(f"unknown command type {command_type!r}") from None
    return Command(
        kid=kid,
        cmd_id=cmd_id if cmd_id is not None else str(uuid.uuid4()),
        device_id=device_id,
        seq=seq,
        type=command_type,
        args=dict(args or {}),
        iat=now,
        exp=exp if exp is not None else now + ttl,
    )


def build_ack(
    cmd_id: str,
    state: AckState | str,
    *,
    device_id: str,
    kid: str,
    now: int,
    detail: str = "",
    result: Mapping[str, Any] | None = None,
    ttl: int = DEFAULT_DEVICE_TTL,
) -> Ack:
    """A device's ack for `cmd_id`, valid from `now` for `ttl` seconds."""
    return Ack(
        kid=kid,
        device_id=device_id,
        iat=now,
        exp=now + ttl,
        cmd_id=cmd_id,
        state=_ack_state(state),
        detail=detail,
        result=dict(result or {}),
    )


def build_desired(
    profile: Mapping[str, Any],
    *,
    device_id: str,
    kid: str,
    version: int,
    now: int,
    ttl: int = DEFAULT_DESIRED_TTL,
    trusted_keys: Mapping[str, str] | None = None,
) -> Desired:
    """A desired-state document for one device, with the profile's hash filled in."""
    profile = _json_object("profile", profile)
    return Desired(
        kid=kid,
        device_id=device_id,
        iat=now,
        exp=now + ttl,
        version=version,
        sha256=profile_sha256(profile),
        profile=dict(profile),
        trusted_keys=dict(trusted_keys or {}),
    )
