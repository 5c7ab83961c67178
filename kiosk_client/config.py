"""The kiosk's data directory: typed configuration, secrets, device key and pinned server keys.

Layout of a data directory (written by `trolley-kiosk enrol`)::

    config.toml        settings, no secrets (0644)
    secrets.toml       broker_password (0600)
    device_key.pem     the device's Ed25519 key, PKCS#8 PEM (0600)
    server_keys.json   pinned server signing keys {kid: base64url public key}
    tls/               ca.pem, client.pem, client.key (0600) when the broker uses TLS
    agent-state.json   the command ledger (`kiosk_client.state`)
    desired.json       the last verified desired state (profile document)
    device/            the simulated platform's device (`kiosk_client.adapters.simulated`)

`config.toml` holds the settings declared, with their types, ranges and defaults, by `_ConfigFile`
and its tables below; paths in it are relative to the data directory.

Environment overrides (secrets should come from here or from `secrets.toml`, never the config):
`TROLLEY_KIOSK_BROKER_PASSWORD`, `TROLLEY_KIOSK_BROKER_URL`, `TROLLEY_KIOSK_SERVER_URL`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from msgspec import Meta

from kiosk_client.errors import ConfigError, NotEnrolledError
from kiosk_client.files import atomic_write, atomic_write_json, read_json
from kiosk_client.tables import Table, convert, invalid, read_toml
from mqtt.client import DEFAULT_KEEPALIVE, BrokerURL, TLSSettings
from mqtt.envelope import decode_public_key, encode_public_key, key_id
from mqtt.errors import BrokerURLError, EnvelopeError
from mqtt.topics import is_device_id
from provisioning.errors import KeyFormatError
from provisioning.keys import load_private_key_pem, private_key_to_pem
from provisioning.payload import is_http_url

__all__ = [
    "CONFIG_FORMAT",
    "CONFIG_NAME",
    "DEFAULT_REPORT_INTERVAL",
    "DESIRED_NAME",
    "ENV_BROKER_PASSWORD",
    "ENV_BROKER_URL",
    "ENV_SERVER_URL",
    "KEY_NAME",
    "SECRETS_NAME",
    "SERVER_KEYS_NAME",
    "STATE_NAME",
    "DeviceIdentity",
    "KioskConfig",
    "LinuxSettings",
    "Platform",
    "SimulatedSettings",
    "TLSFiles",
    "enrolment_files",
    "is_enrolled",
    "load_config",
    "load_identity",
    "load_server_keys",
    "save_server_keys",
    "write_config",
    "write_identity",
]

CONFIG_FORMAT = "trolley-kiosk-config/1"
CONFIG_NAME = "config.toml"
SECRETS_NAME = "secrets.toml"
KEY_NAME = "device_key.pem"
SERVER_KEYS_NAME = "server_keys.json"
STATE_NAME = "agent-state.json"
DESIRED_NAME = "desired.json"
TLS_DIR = "tls"

ENV_BROKER_PASSWORD = "TROLLEY_KIOSK_BROKER_PASSWORD"
ENV_BROKER_URL = "TROLLEY_KIOSK_BROKER_URL"
ENV_SERVER_URL = "TROLLEY_KIOSK_SERVER_URL"

DEFAULT_REPORT_INTERVAL = 15 * 60
# The fleet simulator's threads; here so the command line can offer them without importing it.
DEFAULT_IO_THREADS = 2
DEFAULT_WORKERS = 4
DEFAULT_HTTP_TIMEOUT = 10.0
DEFAULT_BROWSER_COMMAND = (
    "chromium",
    "--kiosk",
    "--no-first-run",
    "--noerrdialogs",
    "--disable-session-crashed-bubble",
)
DEFAULT_POLICY_FILE = "/etc/chromium/policies/managed/trolley.json"
DEFAULT_PHOTO_DIRS = ("~/Pictures",)
DEFAULT_RFKILL_DIR = "/sys/class/rfkill"
DEFAULT_CAMERA_DEVICES = ("/dev/video*",)
# The sound cards' capture devices (playback ones end in "p" and stay open).
DEFAULT_MICROPHONE_DEVICES = ("/dev/snd/pcmC*D*c",)
IdleSourceName = Literal["auto", "x11", "logind", "none"]


class Platform(StrEnum):
    """Which platform adapter drives the device."""

    SIMULATED = "simulated"
    LINUX = "linux"


@dataclass(frozen=True)
class TLSFiles:
    """Files for a TLS broker connection: the CA to trust and an optional client certificate."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    check_hostname: bool = True

    def settings(self) -> TLSSettings:
        """The `mqtt.client.TLSSettings` for these files."""
        return TLSSettings(
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            check_hostname=self.check_hostname,
        )


@dataclass(frozen=True)
class SimulatedSettings:
    """The simulated platform: a directory is the device."""

    root: Path
    operation_delay: float = 0.0


@dataclass(frozen=True)
class LinuxSettings:
    """A real Linux kiosk: Chromium in kiosk mode, managed policy, photo folders."""

    browser_command: tuple[str, ...] = DEFAULT_BROWSER_COMMAND
    start_url: str = "about:blank"
    policy_file: Path = Path(DEFAULT_POLICY_FILE)
    photo_dirs: tuple[Path, ...] = tuple(Path(p).expanduser() for p in DEFAULT_PHOTO_DIRS)
    screens_dir: Path = Path("screens")
    apps_dir: Path | None = Path("/usr/share/applications")
    storage_path: Path = Path("/")
    restart_delay: float = 2.0
    max_restart_delay: float = 60.0
    # Where idle time comes from (auto: the X display, else logind; none: auto-lock unsupported).
    idle_source: IdleSourceName = "auto"
    display: str = ""  # the X display to read idle time from; empty: $DISPLAY
    rfkill_dir: Path = Path(DEFAULT_RFKILL_DIR)
    camera_devices: tuple[str, ...] = DEFAULT_CAMERA_DEVICES  # patterns of the camera's files
    microphone_devices: tuple[str, ...] = DEFAULT_MICROPHONE_DEVICES
    sys_dir: Path = Path("/sys")
    mountinfo: Path = Path("/proc/self/mountinfo")
    watch_interval: float = 5.0  # how often idle time, Bluetooth and capture devices are checked


@dataclass(frozen=True)
class KioskConfig:
    """A validated kiosk configuration; paths are absolute."""

    data_dir: Path
    device_id: str
    asset_tag: str
    school: str
    platform: Platform
    server_url: str
    broker_url: str
    username: str
    password: str = field(repr=False)
    report_interval: int = DEFAULT_REPORT_INTERVAL
    keepalive: int = DEFAULT_KEEPALIVE
    fsync: bool = True
    tls: TLSFiles | None = None
    http_ca_file: Path | None = None
    http_timeout: float = DEFAULT_HTTP_TIMEOUT
    simulated: SimulatedSettings | None = None
    linux: LinuxSettings | None = None

    @property
    def key_path(self) -> Path:
        """The device key file."""
        return self.data_dir / KEY_NAME

    @property
    def server_keys_path(self) -> Path:
        """The pinned server keys file."""
        return self.data_dir / SERVER_KEYS_NAME

    @property
    def state_path(self) -> Path:
        """The command ledger file."""
        return self.data_dir / STATE_NAME

    @property
    def desired_path(self) -> Path:
        """The last verified desired state."""
        return self.data_dir / DESIRED_NAME

    def broker(self) -> BrokerURL:
        """The broker URL with this device's credentials."""
        parsed = BrokerURL.parse(self.broker_url)
        return BrokerURL(
            scheme=parsed.scheme,
            host=parsed.host,
            port=parsed.port,
            username=self.username,
            password=self.password,
        )

    def with_overrides(self, **changes: Any) -> KioskConfig:
        """A copy with some fields changed (tests and the simulator use this)."""
        return replace(self, **changes)


# --- reading --------------------------------------------------------------------------------------


_Text = Annotated[str, Meta(min_length=1)]
_Seconds = Annotated[float, Meta(ge=0.0, le=600.0)]


class _TLSTable(Table, kw_only=True, frozen=True):
    """`[tls]`, only for mqtts://: empty paths are absent."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    check_hostname: bool = True


class _HTTPTable(Table, kw_only=True, frozen=True):
    """`[http]`: the server's HTTPS."""

    ca_file: str = ""  # empty: the system's CAs
    timeout: Annotated[float, Meta(ge=0.1, le=300.0)] = DEFAULT_HTTP_TIMEOUT


class _SimulatedTable(Table, kw_only=True, frozen=True):
    """`[simulated]`: a directory is the device."""

    root: str = "device"
    operation_delay: _Seconds = 0.0  # what each device operation takes (demos)


class _LinuxTable(Table, kw_only=True, frozen=True):
    """`[linux]`: empty strings mean the default."""

    browser_command: tuple[_Text, ...] = DEFAULT_BROWSER_COMMAND  # the URL is appended
    start_url: str = "about:blank"
    policy_file: str = DEFAULT_POLICY_FILE
    photo_dirs: tuple[_Text, ...] = DEFAULT_PHOTO_DIRS
    screens_dir: str = "screens"
    apps_dir: str = "/usr/share/applications"
    storage_path: str = "/"
    restart_delay: _Seconds = 2.0
    max_restart_delay: Annotated[float, Meta(ge=0.0, le=3600.0)] = 60.0
    idle_source: IdleSourceName = "auto"
    display: str = ""
    rfkill_dir: str = DEFAULT_RFKILL_DIR
    camera_devices: tuple[_Text, ...] = DEFAULT_CAMERA_DEVICES
    microphone_devices: tuple[_Text, ...] = DEFAULT_MICROPHONE_DEVICES
    sys_dir: str = "/sys"
    mountinfo: str = "/proc/self/mountinfo"
    watch_interval: Annotated[float, Meta(ge=0.01, le=600.0)] = 5.0


class _ConfigFile(Table, kw_only=True, frozen=True):
    """`config.toml` as written; rules across settings and files are checked after conversion."""

    format: str  # CONFIG_FORMAT
    device_id: str  # also the MQTT username and client id
    asset_tag: str = ""
    school: str = ""
    platform: Platform
    server_url: str
    broker_url: str  # mqtt:// or mqtts://, credentials never here
    username: str | None = None  # absent: the device id
    # Seconds between inventory reports (0: only on connect).
    report_interval: Annotated[int, Meta(ge=0, le=7 * 24 * 3600)] = DEFAULT_REPORT_INTERVAL
    keepalive: Annotated[int, Meta(ge=5, le=3600)] = DEFAULT_KEEPALIVE
    fsync: bool = True  # make state writes durable
    tls: _TLSTable | None = None
    http: _HTTPTable = msgspec.field(default_factory=_HTTPTable)
    simulated: _SimulatedTable = msgspec.field(default_factory=_SimulatedTable)
    linux: _LinuxTable = msgspec.field(default_factory=_LinuxTable)


class _Secrets(msgspec.Struct):
    """`secrets.toml`."""

    broker_password: _Text


def _resolve(base: Path, text: str) -> Path:
    """An absolute path: `~` expanded, relative paths taken from the data directory."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _optional_path(base: Path, text: str) -> Path | None:
    """A path setting where empty means none."""
    return _resolve(base, text) if text else None


def load_config(
    data_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> KioskConfig:
    """The data directory's validated configuration with environment overrides applied."""
    env = os.environ if environ is None else environ
    base = Path(data_dir).expanduser().absolute()
    config_path = base / CONFIG_NAME
    try:
        raw = read_toml(config_path, "configuration")
    except FileNotFoundError:
        raise NotEnrolledError(
            f"{base} holds no {CONFIG_NAME}: enrol first with `trolley-kiosk enrol`"
        ) from None
    # An override replaces the file's value before validation, so it is checked the same way.
    for key, name in (("server_url", ENV_SERVER_URL), ("broker_url", ENV_BROKER_URL)):
        if env.get(name):
            raw[key] = env[name]
    errors: list[str] = []
    password = env.get(ENV_BROKER_PASSWORD) or _read_password(base, errors)
    doc = convert(raw, _ConfigFile, errors)
    if doc is None:  # rules across settings wait until every setting is well typed
        raise invalid(config_path, errors)
    config = _build(doc, base, password)
    errors += _identity_problems(doc) + _address_problems(config) + _linux_problems(config.linux)
    if errors:
        raise invalid(config_path, errors)
    return config


def _build(doc: _ConfigFile, base: Path, password: str) -> KioskConfig:
    """The configuration a converted file describes, paths made absolute."""
    tls = None
    if doc.tls is not None:
        tls = TLSFiles(
            ca_file=_optional_path(base, doc.tls.ca_file),
            cert_file=_optional_path(base, doc.tls.cert_file),
            key_file=_optional_path(base, doc.tls.key_file),
            check_hostname=doc.tls.check_hostname,
        )
    simulated = SimulatedSettings(
        root=_resolve(base, doc.simulated.root or "device"),
        operation_delay=doc.simulated.operation_delay,
    )
    return KioskConfig(
        data_dir=base,
        device_id=doc.device_id,
        asset_tag=doc.asset_tag,
        school=doc.school,
        platform=doc.platform,
        server_url=doc.server_url,
        broker_url=doc.broker_url,
        username=doc.device_id if doc.username is None else doc.username,
        password=password,
        report_interval=doc.report_interval,
        keepalive=doc.keepalive,
        fsync=doc.fsync,
        tls=tls,
        http_ca_file=_optional_path(base, doc.http.ca_file),
        http_timeout=doc.http.timeout,
        simulated=simulated if doc.platform is Platform.SIMULATED else None,
        linux=_linux_settings(doc.linux, base) if doc.platform is Platform.LINUX else None,
    )


def _linux_settings(table: _LinuxTable, base: Path) -> LinuxSettings:
    """The `[linux]` table's settings."""
    defaults = LinuxSettings()
    return LinuxSettings(
        browser_command=table.browser_command,
        start_url=table.start_url or defaults.start_url,
        policy_file=_resolve(base, table.policy_file or DEFAULT_POLICY_FILE),
        photo_dirs=tuple(_resolve(base, p) for p in table.photo_dirs),
        screens_dir=_resolve(base, table.screens_dir or "screens"),
        apps_dir=_optional_path(base, table.apps_dir),
        storage_path=_resolve(base, table.storage_path or "/"),
        restart_delay=table.restart_delay,
        max_restart_delay=table.max_restart_delay,
        idle_source=table.idle_source,
        display=table.display,
        rfkill_dir=_resolve(base, table.rfkill_dir or DEFAULT_RFKILL_DIR),
        camera_devices=table.camera_devices,
        microphone_devices=table.microphone_devices,
        sys_dir=_resolve(base, table.sys_dir or "/sys"),
        mountinfo=_resolve(base, table.mountinfo or "/proc/self/mountinfo"),
        watch_interval=table.watch_interval,
    )


def _identity_problems(doc: _ConfigFile) -> list[str]:
    """The format version and the device's names."""
    problems = []
    if doc.format != CONFIG_FORMAT:
        problems.append(f"format: expected {CONFIG_FORMAT!r}, found {doc.format!r}")
    if not is_device_id(doc.device_id):
        problems.append("device_id: not a valid device id")
    if doc.username and doc.username != doc.device_id:
        problems.append("username: must equal device_id (the broker pins one to the other)")
    return problems


def _linux_problems(linux: LinuxSettings | None) -> list[str]:
    """The browser to run and restart delays that only make sense in order."""
    problems = []
    if linux is not None and not linux.browser_command:
        problems.append("linux.browser_command: must name a program")
    if linux is not None and linux.max_restart_delay < linux.restart_delay:
        problems.append("linux.max_restart_delay: must not be below restart_delay")
    return problems


def _address_problems(config: KioskConfig) -> list[str]:
    """The server and broker addresses, and TLS files that must match the broker's scheme."""
    problems = []
    if not is_http_url(config.server_url):
        problems.append("server_url: must be an http:// or https:// address")
    try:
        broker: BrokerURL | None = BrokerURL.parse(config.broker_url)
    except BrokerURLError as exc:
        problems.append(f"broker_url: {exc}")
        broker = None
    if broker is not None and (broker.username or broker.password):
        problems.append("broker_url: must not carry credentials (they live in secrets)")
    tls = config.tls
    if tls is None:
        return problems
    if broker is not None and not broker.tls:
        problems.append("tls: given, but broker_url is plain mqtt://")
    if (tls.cert_file is None) != (tls.key_file is None):
        problems.append("tls: cert_file and key_file go together")
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, name)
        if path is not None and not path.is_file():
            problems.append(f"tls.{name}: {path} does not exist")
    return problems


def _read_password(base: Path, errors: list[str]) -> str:
    """The broker password from `secrets.toml`, or "" with the problem added to `errors`."""
    path = base / SECRETS_NAME
    try:
        return msgspec.convert(read_toml(path, "secrets file"), type=_Secrets).broker_password
    except FileNotFoundError:
        errors.append(f"broker password: no {SECRETS_NAME} and no ${ENV_BROKER_PASSWORD}")
    except ConfigError as exc:
        errors.append(str(exc))
    except msgspec.ValidationError:
        errors.append(f"{SECRETS_NAME}: broker_password must be a non-empty string")
    return ""


# --- writing --------------------------------------------------------------------------------------


def _relative(base: Path, path: Path | None) -> str:
    """A path as written to the config: relative to the data directory when inside it."""
    if path is None:
        return ""
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def config_document(config: KioskConfig) -> dict[str, Any]:
    """The `config.toml` content for a configuration (no secrets)."""
    base = config.data_dir
    doc: dict[str, Any] = {
        "format": CONFIG_FORMAT,
        "device_id": config.device_id,
        "asset_tag": config.asset_tag,
        "school": config.school,
        "platform": config.platform.value,
        "server_url": config.server_url,
        "broker_url": config.broker_url,
        "username": config.username,
        "report_interval": config.report_interval,
        "keepalive": config.keepalive,
        "fsync": config.fsync,
        "http": {
            "ca_file": _relative(base, config.http_ca_file),
            "timeout": config.http_timeout,
        },
    }
    if config.tls is not None:
        tls: dict[str, Any] = {"check_hostname": config.tls.check_hostname}
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(config.tls, name)
            if path is not None:
                tls[name] = _relative(base, path)
        doc["tls"] = tls
    if config.simulated is not None:
        doc["simulated"] = {
            "root": _relative(base, config.simulated.root),
            "operation_delay": config.simulated.operation_delay,
        }
    if config.linux is not None:
        linux = config.linux
        doc["linux"] = {
            "browser_command": list(linux.browser_command),
            "start_url": linux.start_url,
            "policy_file": str(linux.policy_file),
            "photo_dirs": [str(p) for p in linux.photo_dirs],
            "screens_dir": _relative(base, linux.screens_dir),
            "apps_dir": str(linux.apps_dir) if linux.apps_dir is not None else "",
            "storage_path": str(linux.storage_path),
            "restart_delay": linux.restart_delay,
            "max_restart_delay": linux.max_restart_delay,
            "idle_source": linux.idle_source,
            "display": linux.display,
            "rfkill_dir": str(linux.rfkill_dir),
            "camera_devices": list(linux.camera_devices),
            "microphone_devices": list(linux.microphone_devices),
            "sys_dir": str(linux.sys_dir),
            "mountinfo": str(linux.mountinfo),
            "watch_interval": linux.watch_interval,
        }
    return doc


def write_config(config: KioskConfig) -> None:
    """Write `config.toml` (0644) and `secrets.toml` (0600) atomically."""
    import tomli_w  # imported here: only enrolment writes a configuration

    header = b"# Trolley kiosk configuration, written by `trolley-kiosk enrol`.\n"
    header += b"# Secrets live in secrets.toml or $" + ENV_BROKER_PASSWORD.encode() + b".\n"
    body = tomli_w.dumps(config_document(config)).encode("utf-8")
    atomic_write(
        config.data_dir / SECRETS_NAME,
        tomli_w.dumps({"broker_password": config.password}).encode("utf-8"),
        mode=0o600,
        fsync=config.fsync,
    )
    atomic_write(config.data_dir / CONFIG_NAME, header + body, mode=0o644, fsync=config.fsync)


# --- identity and pinned keys ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceIdentity:
    """The device's signing key and its key id (registered with the server at enrolment)."""

    private_key: Ed25519PrivateKey = field(repr=False)
    kid: str

    @classmethod
    def from_key(cls, private_key: Ed25519PrivateKey) -> DeviceIdentity:
        """Wrap a key, computing its id."""
        return cls(private_key=private_key, kid=key_id(private_key.public_key()))

    @property
    def public_key_text(self) -> str:
        """The public key as 43 characters of base64url (the enrolment wire form)."""
        return encode_public_key(self.private_key.public_key())


def write_identity(data_dir: Path, identity: DeviceIdentity, *, fsync: bool = True) -> None:
    """Store the device key (PKCS#8 PEM, 0600)."""
    atomic_write(
        data_dir / KEY_NAME, private_key_to_pem(identity.private_key), mode=0o600, fsync=fsync
    )


def load_identity(config: KioskConfig) -> DeviceIdentity:
    """The device key from the data directory; `ConfigError` if missing or not Ed25519."""
    try:
        data = config.key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the device key {config.key_path}: {exc}") from exc
    try:
        key = load_private_key_pem(data)
    except KeyFormatError as exc:
        raise ConfigError(f"device key {config.key_path} is unusable: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"device key {config.key_path} is not an Ed25519 key")
    return DeviceIdentity.from_key(key)


def parse_server_keys(raw: object, where: str) -> dict[str, Ed25519PublicKey]:
    """kid -> public key from `{kid: base64url}`, each kid checked against its key."""
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: server keys must be a non-empty object")
    keys: dict[str, Ed25519PublicKey] = {}
    for kid, text in raw.items():
        try:
            public_key = decode_public_key(text)
        except EnvelopeError as exc:
            raise ConfigError(f"{where}: key {kid!r} is not an Ed25519 public key") from exc
        if key_id(public_key) != kid:
            # A kid that is not the key's own id would make signatures fail confusingly later.
            raise ConfigError(f"{where}: key id {kid!r} does not match its key")
        keys[kid] = public_key
    return keys


def load_server_keys(config: KioskConfig) -> dict[str, Ed25519PublicKey]:
    """The pinned server keys."""
    path = config.server_keys_path
    try:
        raw = read_json(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read pinned server keys {path}: {exc}") from exc
    return parse_server_keys(raw, str(path))


def save_server_keys(config: KioskConfig, keys: Mapping[str, Ed25519PublicKey]) -> None:
    """Pin server keys (kid -> key)."""
    atomic_write_json(
        config.server_keys_path,
        {kid: encode_public_key(key) for kid, key in sorted(keys.items())},
        mode=0o644,
        fsync=config.fsync,
    )


def enrolment_files(data_dir: Path) -> list[Path]:
    """Every file that makes up an enrolment (deleted by a factory reset)."""
    return [
        data_dir / CONFIG_NAME,
        data_dir / SECRETS_NAME,
        data_dir / KEY_NAME,
        data_dir / SERVER_KEYS_NAME,
        data_dir / STATE_NAME,
        data_dir / DESIRED_NAME,
        data_dir / TLS_DIR / "ca.pem",
        data_dir / TLS_DIR / "client.pem",
        data_dir / TLS_DIR / "client.key",
    ]


def is_enrolled(data_dir: str | os.PathLike[str]) -> bool:
    """Whether the directory holds an enrolment (a config or a device key)."""
    base = Path(data_dir)
    return (base / CONFIG_NAME).exists() or (base / KEY_NAME).exists()
