"""Every key a restored server needs, gathered into a backup and put back where settings read it.

In the database, sealed under the data keys: the server's signing key, each school's CA and
profile-signing identity, escrowed PINs, second-factor seeds, device broker-password hashes.
Outside it, so gathered here: the data keys, the session key, the server's own broker password
and the CA a TLS broker's devices trust. Mosquitto's files are made again by `mqtt-config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from server.config import (
    DATA_KEY_FILE,
    ENV_PREFIX,
    SECRET_KEY_FILE,
    Locations,
    Settings,
    write_private,
)
from server.errors import ValidationFailed

KEYS_FOLDER = "keys"
DATA_KEYS = "data.keys"
SECRET_KEY = "secret_key"
SERVER_SECRET = "broker-server.secret"
DEVICE_CA = "mqtt-device-ca.pem"


def gather(settings: Settings, folder: Path) -> dict[str, object]:
    """Copy the keys kept outside the database into `folder`; say what was taken."""
    folder.mkdir(mode=0o700)
    write_private(folder / DATA_KEYS, "\n".join(settings.data_keys) + "\n")
    write_private(folder / SECRET_KEY, settings.secret_key + "\n")
    taken: dict[str, object] = {"data_keys": len(settings.data_keys), "secret_key": True}
    if settings.server_secret_file.exists():
        write_private(folder / SERVER_SECRET, settings.server_secret_file.read_text())
    taken["server_secret"] = settings.server_secret_file.exists()
    if settings.mqtt_device_ca is not None:
        write_private(folder / DEVICE_CA, settings.mqtt_device_ca.read_text())
    taken["mqtt_device_ca"] = str(settings.mqtt_device_ca) if settings.mqtt_device_ca else None
    return taken


def data_keys(folder: Path) -> tuple[str, ...]:
    """The data keys a backup holds, newest first."""
    return tuple((folder / DATA_KEYS).read_text().split())


@dataclass
class Placement:
    """Where each restored key goes, worked out (and refused) before anything is written."""

    files: dict[Path, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def place(folder: Path, locations: Locations, environ: Mapping[str, str]) -> Placement:
    """Decide where the backup's keys go on this machine; refuse a setting that contradicts them."""
    plan = Placement()
    keys = data_keys(folder)
    named = [k.strip() for k in environ.get(f"{ENV_PREFIX}DATA_KEYS", "").split(",") if k.strip()]
    if named:
        if not set(keys) <= set(named):
            raise ValidationFailed(
                f"{ENV_PREFIX}DATA_KEYS is set on this machine without the backup's data keys, "
                "so restored PINs and server keys would not open. Remove it from the settings "
                "(the restore puts the keys in the instance folder) and run the restore again. "
                "Nothing was changed."
            )
        plan.notes.append(f"The data keys are already in {ENV_PREFIX}DATA_KEYS.")
    else:
        target = locations.data_key_file or locations.instance_dir / DATA_KEY_FILE
        present = target.read_text().split() if target.is_file() else []
        # The backup's keys first; a key this machine had stays after them, unused but kept.
        merged = [*keys, *(k for k in present if k not in keys)]
        plan.files[target] = "\n".join(merged) + "\n"
        plan.notes.append(f"Data keys ({len(keys)}) written to {target}.")
    if environ.get(f"{ENV_PREFIX}SECRET_KEY"):
        plan.notes.append(
            f"{ENV_PREFIX}SECRET_KEY is set here, so it is kept: people log in again."
        )
    else:
        target = locations.instance_dir / SECRET_KEY_FILE
        plan.files[target] = (folder / SECRET_KEY).read_text()
        plan.notes.append(f"Session key written to {target}.")
    if (folder / SERVER_SECRET).exists():
        secret = (folder / SERVER_SECRET).read_text()
        plan.files[locations.server_secret_file] = secret
        plan.notes.append(
            f"The server's broker password written to {locations.server_secret_file}."
        )
        given = urlsplit(environ.get(f"{ENV_PREFIX}MQTT_URL", "")).password
        if given is not None and unquote(given) != secret.strip():
            plan.notes.append(
                f"{ENV_PREFIX}MQTT_URL carries another password: put the one in "
                f"{locations.server_secret_file} in it, then run `trolley mqtt-config`."
            )
    if (folder / DEVICE_CA).exists():
        target = locations.broker_dir / DEVICE_CA
        plan.files[target] = (folder / DEVICE_CA).read_text()
        plan.notes.append(
            f"The CA devices trust for the TLS broker written to {target}: point "
            f"{ENV_PREFIX}MQTT_DEVICE_CA at it (or put it where that setting points)."
        )
    return plan


def put(plan: Placement) -> None:
    """Write the restored keys, each readable by its owner only."""
    for path, text in plan.files.items():
        write_private(path, text)
