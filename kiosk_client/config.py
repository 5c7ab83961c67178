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

`config.toml`::

    format = "trolley-kiosk-config/1"
    device_id = "dev-3f2a..."          # also the MQTT username and client id
    asset_tag = "OAK-0042"
    school = "Oakfield Primary"
    platform = "simulated"             # or "linux"
    server_url = "https://trolley.oakfield.sch.uk"
    broker_url = "mqtts://trolley.oakfield.sch.uk:8883"
    username = "dev-3f2a..."
    report_interval = 900              # seconds between inventory reports (0: only on connect)
    keepalive = 30
    fsync = true                       # make state writes durable

    [tls]                              # only for mqtts://
    ca_file = "tls/ca.pem"             # relative paths are relative to the data directory
    cert_file = "tls/client.pem"
    key_file = "tls/client.key"

    [http]
    ca_file = ""                       # CA bundle for the server's HTTPS (empty: system CAs)
    timeout = 10.0

    [simulated]
    root = "device"
    operation_delay = 0.0              # seconds each device operation takes (demos)

    [linux]
    browser_command = ["chromium", "--kiosk", "--no-first-run"]   # the URL is appended
    start_url = "about:blank"
    policy_file = "/etc/chromium/policies/managed/trolley.json"
    photo_dirs = ["~/Pictures"]
    screens_dir = "screens"
    apps_dir = "/usr/share/applications"
    storage_path = "/"
    restart_delay = 2.0
    max_restart_delay = 60.0

Environment overrides (secrets should come from here or from `secrets.toml`, never the config):
`TROLLEY_KIOSK_BROKER_PASSWORD`, `TROLLEY_KIOSK_BROKER_URL`, `TROLLEY_KIOSK_SERVER_URL`.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from kiosk_client.errors import ConfigError, NotEnrolledError
from kiosk_client.files import atomic_write, atomic_write_json, read_json
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

logger = logging.getLogger(__name__)

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


class _Reader:
    """Typed access to a TOML table that collects every problem instead of stopping at one."""

    def __init__(self, table: Mapping[str, Any], prefix: str, errors: list[str]) -> None:
        """Read `table`, naming keys with `prefix` and collecting problems in `errors`."""
        self.table = table
        self.prefix = prefix
        self.errors = errors

    def _name(self, key: str) -> str:
        """The dotted name of a key, for messages."""
        return f"{self.prefix}{key}"

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        """A string setting."""
        value = self.table.get(key, default)
        if value is None:
            if required:
                self.errors.append(f"{self._name(key)}: missing")
            return ""
        if not isinstance(value, str):
            self.errors.append(f"{self._name(key)}: must be a string")
            return ""
        return value

    def number(self, key: str, default: float, *, minimum: float, maximum: float) -> float:
        """A number setting within bounds."""
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.errors.append(f"{self._name(key)}: must be a number")
            return default
        if not minimum <= value <= maximum:
            self.errors.append(f"{self._name(key)}: must be between {minimum} and {maximum}")
            return default
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        """A whole-number setting within bounds."""
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.errors.append(f"{self._name(key)}: must be a whole number")
            return default
        if not minimum <= value <= maximum:
            self.errors.append(f"{self._name(key)}: must be between {minimum} and {maximum}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        """A true/false setting."""
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            self.errors.append(f"{self._name(key)}: must be true or false")
            return default
        return value

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """A list of non-empty strings."""
        value = self.table.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.errors.append(f"{self._name(key)}: must be a list of non-empty strings")
            return default
        return tuple(value)

    def path(self, key: str, base: Path, default: str | None = None) -> Path | None:
        """A path setting, resolved against the data directory (None if empty)."""
        text = self.text(key, default)
        if not text:
            return None
        return _resolve(base, text)

    def table_at(self, key: str) -> _Reader | None:
        """A sub-table, or None when absent."""
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.errors.append(f"{self._name(key)}: must be a table")
            return None
        return _Reader(value, f"{self._name(key)}.", self.errors)

    def unknown(self, known: set[str]) -> None:
        """Report keys this version does not know (usually typos)."""
        for key in sorted(set(self.table) - known):
            self.errors.append(f"{self._name(key)}: unknown setting")


def _resolve(base: Path, text: str) -> Path:
    """An absolute path: `~` expanded, relative paths taken from the data directory."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict, or `ConfigError` naming the file and the problem."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from exc


_TOP_KEYS = {
    "format",
    "device_id",
    "asset_tag",
    "school",
    "platform",
    "server_url",
    "broker_url",
    "username",
    "report_interval",
    "keepalive",
    "fsync",
    "tls",
    "http",
    "simulated",
    "linux",
}


def load_config(
    data_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> KioskConfig:
    """Read and validate the data directory's configuration, applying environment overrides.

    Raises `NotEnrolledError` when there is no `config.toml`, and `ConfigError` listing every
    problem otherwise.
    """
    env = os.environ if environ is None else environ
    base = Path(data_dir).expanduser().absolute()
    config_path = base / CONFIG_NAME
    try:
        raw = _read_toml(config_path, "configuration")
    except FileNotFoundError:
        raise NotEnrolledError(
            f"{base} holds no {CONFIG_NAME}: enrol first with `trolley-kiosk enrol`"
        ) from None
    errors: list[str] = []
    top = _Reader(raw, "", errors)
    top.unknown(_TOP_KEYS)
    fmt = top.text("format", required=True)
    if fmt and fmt != CONFIG_FORMAT:
        errors.append(f"format: expected {CONFIG_FORMAT!r}, found {fmt!r}")

    device_id = top.text("device_id", required=True)
    if device_id and not is_device_id(device_id):
        errors.append("device_id: not a valid device id")
    username = top.text("username", device_id)
    platform_text = top.text("platform", required=True)
    platform: Platform = Platform.SIMULATED
    if platform_text:
        try:
            platform = Platform(platform_text)
        except ValueError:
            errors.append(f"platform: must be one of {', '.join(p.value for p in Platform)}")

    server_url = env.get(ENV_SERVER_URL) or top.text("server_url", required=True)
    if server_url and not is_http_url(server_url):
        errors.append("server_url: must be an http:// or https:// address")
    broker_url = env.get(ENV_BROKER_URL) or top.text("broker_url", required=True)
    parsed_broker: BrokerURL | None = None
    if broker_url:
        try:
            parsed_broker = BrokerURL.parse(broker_url)
        except BrokerURLError as exc:
            errors.append(f"broker_url: {exc}")
        else:
            if parsed_broker.username or parsed_broker.password:
                errors.append("broker_url: must not carry credentials (they live in secrets)")

    password = env.get(ENV_BROKER_PASSWORD) or _read_password(base, errors)

    tls: TLSFiles | None = None
    tls_table = top.table_at("tls")
    if tls_table is not None:
        tls_table.unknown({"ca_file", "cert_file", "key_file", "check_hostname"})
        tls = TLSFiles(
            ca_file=tls_table.path("ca_file", base),
            cert_file=tls_table.path("cert_file", base),
            key_file=tls_table.path("key_file", base),
            check_hostname=tls_table.boolean("check_hostname", True),
        )
        if (tls.cert_file is None) != (tls.key_file is None):
            errors.append("tls: cert_file and key_file go together")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(tls, name)
            if path is not None and not path.is_file():
                errors.append(f"tls.{name}: {path} does not exist")
    if parsed_broker is not None and not parsed_broker.tls and tls is not None:
        errors.append("tls: given, but broker_url is plain mqtt://")

    http_ca_file: Path | None = None
    http_timeout = DEFAULT_HTTP_TIMEOUT
    http_table = top.table_at("http")
    if http_table is not None:
        http_table.unknown({"ca_file", "timeout"})
        http_ca_file = http_table.path("ca_file", base)
        http_timeout = http_table.number(
            "timeout", DEFAULT_HTTP_TIMEOUT, minimum=0.1, maximum=300.0
        )

    simulated: SimulatedSettings | None = None
    linux: LinuxSettings | None = None
    sim_table = top.table_at("simulated")
    if platform is Platform.SIMULATED:
        sim_table = sim_table or _Reader({}, "simulated.", errors)
        sim_table.unknown({"root", "operation_delay"})
        simulated = SimulatedSettings(
            root=sim_table.path("root", base, "device") or base / "device",
            operation_delay=sim_table.number("operation_delay", 0.0, minimum=0.0, maximum=600.0),
        )
    linux_table = top.table_at("linux")
    if platform is Platform.LINUX:
        linux = _linux_settings(linux_table or _Reader({}, "linux.", errors), base, errors)

    config = KioskConfig(
        data_dir=base,
        device_id=device_id,
        asset_tag=top.text("asset_tag"),
        school=top.text("school"),
        platform=platform,
        server_url=server_url,
        broker_url=broker_url,
        username=username,
        password=password,
        report_interval=top.integer(
            "report_interval", DEFAULT_REPORT_INTERVAL, minimum=0, maximum=7 * 24 * 3600
        ),
        keepalive=top.integer("keepalive", DEFAULT_KEEPALIVE, minimum=5, maximum=3600),
        fsync=top.boolean("fsync", True),
        tls=tls,
        http_ca_file=http_ca_file,
        http_timeout=http_timeout,
        simulated=simulated,
        linux=linux,
    )
    if username and username != device_id:
        errors.append("username: must equal device_id (the broker pins one to the other)")
    if errors:
        raise ConfigError(f"{config_path} is invalid:\n  " + "\n  ".join(errors))
    return config


def _linux_settings(table: _Reader, base: Path, errors: list[str]) -> LinuxSettings:
    """The `[linux]` table."""
    defaults = LinuxSettings()
    table.unknown(
        {
            "browser_command",
            "start_url",
            "policy_file",
            "photo_dirs",
            "screens_dir",
            "apps_dir",
            "storage_path",
            "restart_delay",
            "max_restart_delay",
        }
    )
    command = table.strings("browser_command", defaults.browser_command)
    if not command:
        errors.append("linux.browser_command: must name a program")
    photo_dirs = table.strings("photo_dirs", DEFAULT_PHOTO_DIRS)
    restart_delay = table.number("restart_delay", 2.0, minimum=0.0, maximum=600.0)
    max_restart_delay = table.number("max_restart_delay", 60.0, minimum=0.0, maximum=3600.0)
    if max_restart_delay < restart_delay:
        errors.append("linux.max_restart_delay: must not be below restart_delay")
    return LinuxSettings(
        browser_command=command,
        start_url=table.text("start_url", defaults.start_url) or defaults.start_url,
        policy_file=table.path("policy_file", base, DEFAULT_POLICY_FILE) or defaults.policy_file,
        photo_dirs=tuple(_resolve(base, p) for p in photo_dirs),
        screens_dir=table.path("screens_dir", base, "screens") or base / "screens",
        apps_dir=table.path("apps_dir", base, str(defaults.apps_dir)),
        storage_path=table.path("storage_path", base, "/") or Path("/"),
        restart_delay=restart_delay,
        max_restart_delay=max_restart_delay,
    )


def _read_password(base: Path, errors: list[str]) -> str:
    """The broker password from `secrets.toml`."""
    path = base / SECRETS_NAME
    try:
        secrets = _read_toml(path, "secrets file")
    except FileNotFoundError:
        errors.append(f"broker password: no {SECRETS_NAME} and no ${ENV_BROKER_PASSWORD}")
        return ""
    except ConfigError as exc:
        errors.append(str(exc))
        return ""
    value = secrets.get("broker_password")
    if not isinstance(value, str) or not value:
        errors.append(f"{SECRETS_NAME}: broker_password must be a non-empty string")
        return ""
    return value


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
