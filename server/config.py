"""Settings from TROLLEY_* environment variables, validated once at start-up."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from cryptography.fernet import Fernet
from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "TROLLEY_"

# Set only by code (overrides and tests): the environment never set them, and a stray variable
# should not start to.
_CODE_ONLY = frozenset(
    {
        "mqtt_server_user",
        "max_upload_bytes",
        "login_max_failures",
        "login_max_failures_per_address",
        "login_window_minutes",
        "extra",
    }
)


class ConfigError(Exception):
    """A setting is missing or wrong; the message says which and how to fix it."""


def _setting(field: str | None) -> str:
    """A setting's name in messages: its variable, or its override name when only code sets it."""
    name = field or ""
    return name if name in _CODE_ONLY else f"{ENV_PREFIX}{name.upper()}"


def _flag(value: Any, info: ValidationInfo) -> Any:
    """true/false, yes/no, on/off or 1/0 in any case; anything else names the setting."""
    if not isinstance(value, str):
        return value
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{_setting(info.field_name)}: expected true or false, got {value!r}")


Flag = Annotated[bool, BeforeValidator(_flag)]


def _relaxed(info: ValidationInfo) -> bool:
    """Demo and test runs may make up what production must be given."""
    return bool(info.data.get("demo") or info.data.get("testing"))


def _instance_dir(info: ValidationInfo) -> Path:
    """The instance folder, validated before the settings whose defaults live in it."""
    folder = info.data.get("instance_dir")
    if folder is None:
        # Its own error comes first; this one only stops files being made elsewhere.
        raise ValueError(f"{ENV_PREFIX}INSTANCE_DIR is not a usable folder")
    return Path(folder)


# Secrets kept in the instance folder: made there by demo and test runs, written by a restore.
SECRET_KEY_FILE = "secret_key"
DATA_KEY_FILE = "data.key"
# What `trolley demo` chose, so later commands in the same folder use the same settings.
DEMO_SETTINGS_FILE = "demo.env"


def _kept(info: ValidationInfo, name: str) -> Path:
    return _instance_dir(info) / name


def _keep_secret(path: Path, make: Callable[[], str]) -> str:
    """Read a generated secret from the instance folder, creating it (0600) the first time."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    write_private(path, value + "\n")
    return value


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600), replacing any earlier one whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    partial.replace(path)


class Locations(BaseSettings):
    """Where the database and the instance folder are: all a restore needs before any key."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True)

    # First: the defaults of the settings after them depend on these.
    demo: Flag = False
    testing: Flag = False
    instance_dir: Path = Field(default=Path("instance"), validate_default=True)
    # None means not given: the validators make the default, or refuse to in production.
    database_url: str = Field(default=None, validate_default=True)
    # A key file the settings name (read by Settings; a restore writes the keys into it).
    data_key_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values passed: `load_settings` reads the environment it is handed."""
        # Tests build Settings(...) directly and must not pick up the machine's variables.
        return (init_settings,)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def broker_dir(self) -> Path:
        return self.instance_dir / "broker"

    @property
    def server_secret_file(self) -> Path:
        """The server's own broker password (the embedded broker's, and Mosquitto's hash of it)."""
        return self.broker_dir / "server.secret"

    @field_validator("instance_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Resolved once, so a later change of working directory cannot move it."""
        return value.resolve()

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url(cls, value: Any, info: ValidationInfo) -> Any:
        """SQLite in the instance folder unless given; only SQLite and PostgreSQL are known."""
        if not value:
            folder = _instance_dir(info)
            folder.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{folder / 'trolley.db'}"
        if not isinstance(value, str):
            return value
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError(
                "TROLLEY_DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL, "
                f"got {value.split(':', 1)[0]!r}"
            )
        if value.startswith("postgresql://"):
            return "postgresql+psycopg://" + value[len("postgresql://") :]
        return value


class Settings(Locations):
    """Everything the server, worker and CLI need to know about their surroundings."""

    secret_key: str = Field(default=None, validate_default=True)
    data_keys: tuple[str, ...] = Field(default=None, validate_default=True)
    base_url: str = "http://127.0.0.1:5000"
    # WebAuthn: the origin browsers see and the site passkeys belong to (default: base_url's).
    passkey_origin: str = Field(default=None, validate_default=True)
    passkey_rp_id: str = Field(default=None, validate_default=True)
    mqtt_url: str | None = None
    mqtt_device_url: str | None = None
    # The CA that signed the TLS broker's certificate, when it is not the school's own CA.
    mqtt_device_ca: Path | None = None
    mqtt_port: int = 1884
    mqtt_server_user: str = "trolley_server"
    # How often the worker looks at the outbox between wake-ups: a command approved on the web
    # (another process) waits at most this long; each look is one indexed read.
    outbox_poll_seconds: float = Field(default=0.05, gt=0, le=5)
    # On PostgreSQL, while the worker hears the outbox's notifications: every transaction that
    # queues commands or changes a desired state wakes it, so it looks only this often (for
    # anything queued without saying so). Looking 20 times a second took 3% of a core per worker.
    outbox_poll_listening_seconds: float = Field(default=1.0, gt=0, le=60)
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "trolley@localhost"
    smtp_starttls: Flag = False
    secure_cookies: Flag = Field(default=None, validate_default=True)
    behind_proxy: Flag = False
    max_upload_bytes: int = 16 * 1024 * 1024
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window_minutes: int = 15
    # One address standing in for all of Google's (a local stand-in for demos and tests).
    google_api_root: str | None = None
    # Apple's push service (APNs) that wakes iPads; another https address only for a stand-in.
    apns_url: str = "https://api.push.apple.com"
    # The CA that signed the push service's TLS certificate, when it is not a public one.
    apns_ca: Path | None = None
    extra: Mapping[str, Any] = Field(default_factory=dict)

    @property
    def embedded_broker(self) -> bool:
        """No external broker named: Trolley runs its own, with files in the instance folder."""
        return self.mqtt_url is None

    @property
    def device_broker_url(self) -> str:
        """The broker address devices are given at enrolment (never with the server's password)."""
        if self.mqtt_device_url:
            return self.mqtt_device_url
        if self.mqtt_url:
            from urllib.parse import urlsplit

            parts = urlsplit(self.mqtt_url)
            return f"{parts.scheme}://{parts.hostname}:{parts.port or 1883}"
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @field_validator("secret_key", mode="before")
    @classmethod
    def _secret_key(cls, value: Any, info: ValidationInfo) -> Any:
        """Required in production (or kept in the instance folder); a demo run makes one."""
        kept = _kept(info, SECRET_KEY_FILE)
        if not value:
            # A key the demo made, or a restore wrote, counts as set.
            if not _relaxed(info) and not kept.exists():
                raise ValueError(
                    "TROLLEY_SECRET_KEY is not set: set it to a long random string "
                    '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
                )
            value = _keep_secret(kept, lambda: secrets.token_urlsafe(48))
        if isinstance(value, str) and len(value) < 32:
            raise ValueError("TROLLEY_SECRET_KEY must be at least 32 characters long")
        return value

    @field_validator("data_keys", mode="before")
    @classmethod
    def _data_keys(cls, value: Any, info: ValidationInfo) -> Any:
        """Keys that encrypt secrets at rest, newest first; kept outside the database."""
        if isinstance(value, str):
            value = [key.strip() for key in value.split(",") if key.strip()]
        key_file = info.data.get("data_key_file")
        if value is None and key_file is not None:
            if not key_file.exists():
                raise ValueError(
                    f"TROLLEY_DATA_KEY_FILE points at {key_file}, which does not exist"
                )
            value = [line.strip() for line in key_file.read_text().splitlines() if line.strip()]
        kept = _kept(info, DATA_KEY_FILE)
        if value is None:
            if not _relaxed(info) and not kept.exists():
                raise ValueError(
                    "TROLLEY_DATA_KEYS (or TROLLEY_DATA_KEY_FILE) is not set: it encrypts PINs "
                    "and second-factor seeds at rest. Make one with `trolley keys new`."
                )
            made = _keep_secret(kept, lambda: Fernet.generate_key().decode())
            # A restored file keeps every key, newest first, one a line.
            value = made.split()
        keys = tuple(str(key) for key in value)
        for key in keys:
            try:
                Fernet(key.encode())
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    "a data key is not a valid key (32 url-safe base64 bytes); "
                    "make one with `trolley keys new`"
                ) from exc
        return keys

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        """Paths are appended with their own leading slash."""
        return value.rstrip("/")

    @field_validator("passkey_origin", mode="before")
    @classmethod
    def _passkey_origin(cls, value: Any, info: ValidationInfo) -> Any:
        """Scheme, host and port only (browsers offer passkeys over HTTPS or on this machine)."""
        from urllib.parse import urlsplit

        name = "TROLLEY_PASSKEY_ORIGIN" if value else "TROLLEY_BASE_URL"
        text = str(value or info.data.get("base_url") or "")
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{name} must be an address like https://trolley.school.example")
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("passkey_rp_id", mode="before")
    @classmethod
    def _passkey_rp_id(cls, value: Any, info: ValidationInfo) -> Any:
        """The origin's host or a parent domain of it, as WebAuthn requires."""
        from urllib.parse import urlsplit

        origin = info.data.get("passkey_origin")
        if origin is None:  # the origin's own message already explains
            return value or ""
        host = urlsplit(origin).hostname or ""
        rp_id = str(value or host).lower()
        if rp_id != host and not host.endswith("." + rp_id):
            raise ValueError(
                f"TROLLEY_PASSKEY_RP_ID must be {host} or a domain it belongs to, not {rp_id}"
            )
        return rp_id

    @field_validator("apns_url")
    @classmethod
    def _apns_url(cls, value: str) -> str:
        """An https origin: APNs speaks HTTP/2 over TLS only."""
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(
                "TROLLEY_APNS_URL must be an https address with no path, such as "
                "https://api.push.apple.com"
            )
        return value.rstrip("/")

    @field_validator("mqtt_device_ca", "apns_ca", mode="before")
    @classmethod
    def _certificate_file(cls, value: Any, info: ValidationInfo) -> Any:
        """A readable PEM certificate, checked at start-up rather than at the first enrolment."""
        if not value:
            return None
        name = f"TROLLEY_{(info.field_name or '').upper()}"
        path = Path(value).expanduser().resolve()
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from exc
        from cryptography import x509

        try:
            x509.load_pem_x509_certificate(text)
        except ValueError as exc:
            raise ValueError(f"{name}: {path} is not a PEM certificate") from exc
        return path

    @field_validator("mqtt_port", mode="before")
    @classmethod
    def _mqtt_port(cls, value: Any) -> Any:
        """A TCP port for the embedded broker."""
        text = str(value)
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise ValueError("TROLLEY_MQTT_PORT must be a port number between 1 and 65535")
        return int(text)

    @field_validator("smtp_port", mode="before")
    @classmethod
    def _smtp_port(cls, value: Any) -> Any:
        """Any whole number, as the mail server's own port may be unusual."""
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError("TROLLEY_SMTP_PORT must be a number") from None

    @field_validator("secure_cookies", mode="before")
    @classmethod
    def _secure_by_default(cls, value: Any, info: ValidationInfo) -> Any:
        """Secure cookies unless said otherwise, except in demo and test runs (plain HTTP)."""
        return not _relaxed(info) if value is None else value


class _Environment(EnvSettingsSource):
    """TROLLEY_* variables from a given mapping: the process's, or one a test passes."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self.environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        """Names as the standard source keys them; empty values count as unset."""
        return {
            name if self.case_sensitive else name.lower(): value
            for name, value in self.environ.items()
            if value or not self.env_ignore_empty
        }

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Nothing for the settings only code sets."""
        if field_name in _CODE_ONLY:
            return None, field_name, False
        return super().get_field_value(field, field_name)

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        """The text as it is: TROLLEY_DATA_KEYS is comma-separated, not JSON."""
        return value


# How overrides were always read: a false one (None for these two) leaves it to the environment.
_UNSET_WHEN_FALSE = frozenset(
    {"demo", "testing", "instance_dir", "database_url", "secret_key", "smtp_port"}
)
_UNSET_WHEN_NONE = frozenset({"data_keys", "secure_cookies"})


def _given(name: str, value: Any) -> bool:
    """Whether an override sets its setting."""
    if name in _UNSET_WHEN_FALSE:
        return bool(value)
    return value is not None or name not in _UNSET_WHEN_NONE


def _message(error: ErrorDetails) -> str:
    """One line naming the setting: a validator's own sentence, or pydantic's after the name."""
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    field = str(error["loc"][0]) if error["loc"] else None
    return f"{_setting(field)}: {error['msg']}"


_Loaded = TypeVar("_Loaded", bound=Locations)


def _load(
    kind: type[_Loaded], env: Mapping[str, str] | None, overrides: Mapping[str, Any] | None
) -> _Loaded:
    environ = os.environ if env is None else env
    known = set(kind.model_fields) - {"extra"}
    overrides = dict(overrides or {})
    given = {k: v for k, v in overrides.items() if k in known and _given(k, v)}
    values: dict[str, Any] = {**_Environment(kind, environ)(), **given}
    if "extra" in kind.model_fields:
        values["extra"] = {k: v for k, v in overrides.items() if k not in known}
    try:
        return kind(**values)
    except ValidationError as exc:
        raise ConfigError(_message(exc.errors()[0])) from exc


def load_settings(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build Settings from the environment; raise ConfigError with one clear message."""
    return _load(Settings, env, overrides)


def load_locations(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Locations:
    """Only where the database and instance folder are: a new machine may have no keys yet."""
    return _load(Locations, env, overrides)


def with_demo_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment, over what `trolley demo` chose when it ran in this instance folder.

    Only when no database is named: a command pointed at another database is not the demo's.
    """
    if environ.get(f"{ENV_PREFIX}DATABASE_URL"):
        return dict(environ)
    folder = Path(environ.get(f"{ENV_PREFIX}INSTANCE_DIR") or "instance")
    chosen = folder / DEMO_SETTINGS_FILE
    if not chosen.is_file():
        return dict(environ)
    from dotenv import dotenv_values

    kept = {k: v for k, v in dotenv_values(chosen).items() if k.startswith(ENV_PREFIX) and v}
    return {**kept, **environ}


def write_demo_settings(instance_dir: Path, values: Mapping[str, str]) -> Path:
    """Keep what the demo chose, as `KEY=value` lines a shell can also read."""
    path = instance_dir / DEMO_SETTINGS_FILE
    lines = [f"{ENV_PREFIX}DEMO=1", *(f"{ENV_PREFIX}{k.upper()}={v}" for k, v in values.items())]
    write_private(path, "\n".join(lines) + "\n")
    return path


def replace(settings: Settings, /, **changes: Any) -> Settings:
    """A copy with some settings changed, as given (tests point one at their own servers)."""
    unknown = sorted(set(changes) - set(Settings.model_fields))
    if unknown:
        raise TypeError(f"not a setting: {', '.join(unknown)}")
    return settings.model_copy(update=changes)
