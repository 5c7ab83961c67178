"""Settings from TROLLEY_* environment variables, validated once at start-up."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet


class ConfigError(Exception):
    """A setting is missing or wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    """Everything the server, worker and CLI need to know about their surroundings."""

    database_url: str
    secret_key: str
    data_keys: tuple[str, ...]
    instance_dir: Path
    base_url: str = "http://127.0.0.1:5000"
    mqtt_url: str | None = None
    mqtt_device_url: str | None = None
    # The CA that signed the TLS broker's certificate, when it is not the school's own CA.
    mqtt_device_ca: Path | None = None
    mqtt_port: int = 1884
    mqtt_server_user: str = "trolley_server"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "trolley@localhost"
    smtp_starttls: bool = False
    demo: bool = False
    testing: bool = False
    secure_cookies: bool = True
    behind_proxy: bool = False
    max_upload_bytes: int = 16 * 1024 * 1024
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window_minutes: int = 15
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded_broker(self) -> bool:
        """No external broker named: Trolley runs its own, with files in the instance folder."""
        return self.mqtt_url is None

    @property
    def broker_dir(self) -> Path:
        return self.instance_dir / "broker"

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


def _flag(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"expected true or false, got {value!r}")


def _keep_secret(path: Path, make: Any) -> str:
    """Read a generated secret from the instance folder, creating it (0600) the first time."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value: str = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def load_settings(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build Settings from the environment; raise ConfigError with one clear message."""
    env = os.environ if env is None else env
    overrides = dict(overrides or {})
    demo = bool(overrides.pop("demo", None)) or _flag(env.get("TROLLEY_DEMO"))
    testing = bool(overrides.pop("testing", None)) or _flag(env.get("TROLLEY_TESTING"))
    instance_dir = Path(
        overrides.pop("instance_dir", None) or env.get("TROLLEY_INSTANCE_DIR") or "instance"
    ).resolve()
    relaxed = demo or testing

    database_url = overrides.pop("database_url", None) or env.get("TROLLEY_DATABASE_URL")
    if not database_url:
        database_url = f"sqlite:///{instance_dir / 'trolley.db'}"
        instance_dir.mkdir(parents=True, exist_ok=True)
    if not database_url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        raise ConfigError(
            "TROLLEY_DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL, "
            f"got {database_url.split(':', 1)[0]!r}"
        )
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]

    secret_key = overrides.pop("secret_key", None) or env.get("TROLLEY_SECRET_KEY")
    if not secret_key:
        if not relaxed:
            raise ConfigError(
                "TROLLEY_SECRET_KEY is not set: set it to a long random string "
                '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        secret_key = _keep_secret(instance_dir / "secret_key", lambda: secrets.token_urlsafe(48))
    if len(secret_key) < 32:
        raise ConfigError("TROLLEY_SECRET_KEY must be at least 32 characters long")

    data_keys = _data_keys(env, overrides, instance_dir, relaxed)

    try:
        smtp_port = int(overrides.pop("smtp_port", None) or env.get("TROLLEY_SMTP_PORT") or 25)
    except ValueError as exc:
        raise ConfigError("TROLLEY_SMTP_PORT must be a number") from exc
    try:
        secure_default = not relaxed
        secure_cookies = overrides.pop("secure_cookies", None)
        if secure_cookies is None:
            secure_cookies = _flag(env.get("TROLLEY_SECURE_COOKIES"), secure_default)
        smtp_starttls = _flag(env.get("TROLLEY_SMTP_STARTTLS"))
    except ConfigError as exc:
        raise ConfigError(f"TROLLEY_SECURE_COOKIES / TROLLEY_SMTP_STARTTLS: {exc}") from exc

    settings = Settings(
        database_url=database_url,
        secret_key=secret_key,
        data_keys=data_keys,
        instance_dir=instance_dir,
        base_url=(env.get("TROLLEY_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
        mqtt_url=env.get("TROLLEY_MQTT_URL") or None,
        mqtt_device_url=env.get("TROLLEY_MQTT_DEVICE_URL") or None,
        mqtt_device_ca=_certificate_file(env.get("TROLLEY_MQTT_DEVICE_CA")),
        mqtt_port=_port(env.get("TROLLEY_MQTT_PORT"), 1884, "TROLLEY_MQTT_PORT"),
        smtp_host=env.get("TROLLEY_SMTP_HOST") or None,
        smtp_port=smtp_port,
        smtp_user=env.get("TROLLEY_SMTP_USER") or None,
        smtp_password=env.get("TROLLEY_SMTP_PASSWORD") or None,
        smtp_from=env.get("TROLLEY_SMTP_FROM") or "trolley@localhost",
        smtp_starttls=smtp_starttls,
        behind_proxy=_flag(env.get("TROLLEY_BEHIND_PROXY")),
        demo=demo,
        testing=testing,
        secure_cookies=bool(secure_cookies),
    )
    known = {f for f in Settings.__dataclass_fields__ if f != "extra"}
    direct = {k: v for k, v in overrides.items() if k in known}
    extra = {k: v for k, v in overrides.items() if k not in known}
    return replace(settings, **direct, extra=extra)


def _certificate_file(value: str | None) -> Path | None:
    """TROLLEY_MQTT_DEVICE_CA: a readable PEM certificate, checked at start-up, not at enrolment."""
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"TROLLEY_MQTT_DEVICE_CA: cannot read {path}: {exc.strerror}") from exc
    from cryptography import x509

    try:
        x509.load_pem_x509_certificate(text)
    except ValueError as exc:
        raise ConfigError(f"TROLLEY_MQTT_DEVICE_CA: {path} is not a PEM certificate") from exc
    return path


def _port(value: str | None, default: int, name: str) -> int:
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"{name} must be a port number between 1 and 65535")
    return int(value)


def _data_keys(
    env: Mapping[str, str], overrides: dict[str, Any], instance_dir: Path, relaxed: bool
) -> tuple[str, ...]:
    """Keys that encrypt secrets at rest, newest first; kept outside the database."""
    raw = overrides.pop("data_keys", None)
    if raw is None and env.get("TROLLEY_DATA_KEYS"):
        raw = [k.strip() for k in env["TROLLEY_DATA_KEYS"].split(",") if k.strip()]
    if raw is None and env.get("TROLLEY_DATA_KEY_FILE"):
        path = Path(env["TROLLEY_DATA_KEY_FILE"])
        if not path.exists():
            raise ConfigError(f"TROLLEY_DATA_KEY_FILE points at {path}, which does not exist")
        raw = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if raw is None:
        if not relaxed:
            raise ConfigError(
                "TROLLEY_DATA_KEYS (or TROLLEY_DATA_KEY_FILE) is not set: it encrypts PINs and "
                "second-factor seeds at rest. Make one with `trolley keys new`."
            )
        raw = [_keep_secret(instance_dir / "data.key", lambda: Fernet.generate_key().decode())]
    keys = tuple(str(k) for k in raw)
    for key in keys:
        try:
            Fernet(key.encode())
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "a data key is not a valid key (32 url-safe base64 bytes); "
                "make one with `trolley keys new`"
            ) from exc
    return keys
