"""Command line for enrolment and the broker: enrol-payload, mqtt-config, broker."""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from pathlib import Path

import click

from mqtt.broker import EmbeddedBroker
from mqtt.mosquitto import MosquittoTLS, write_mosquitto_config
from provisioning.qr import qr_png, qr_svg

log = logging.getLogger(__name__)


@click.group("devices")
def group() -> None:
    """Devices in the register."""


@group.command("enrol-payload")
@click.argument("asset_tag")
@click.option(
    "--school", "school_slug", default=None, help="School short name (default: the only one)"
)
@click.option(
    "--qr",
    "qr_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the QR code (.png or .svg)",
)
@click.pass_obj
def enrol_payload(
    ctx: object, asset_tag: str, school_slug: str | None, qr_file: Path | None
) -> None:
    """Print a one-time enrolment payload for ASSET_TAG (valid 24 hours)."""
    from server.cli_support import Context, pick_school
    from server.devices.services import get_device
    from server.enrolment.services import issue_enrolment_token
    from server.errors import TrolleyError
    from server.schools.services import when

    assert isinstance(ctx, Context)
    try:
        with ctx.db.begin() as session:
            school = pick_school(session, school_slug)
            device = get_device(session, school.id, asset_tag)
            token, payload = issue_enrolment_token(session, None, device, ctx.settings)
            text = payload.encode()
            until = when(token.expires_at, school)
    except TrolleyError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(text)
    click.echo(f"(valid once, until {until}, school time)", err=True)
    if qr_file is not None:
        if qr_file.suffix.lower() == ".svg":
            qr_file.write_text(qr_svg(text))
        else:
            qr_file.write_bytes(qr_png(text))


@click.command("mqtt-config")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--port", default=1883, show_default=True)
@click.option(
    "--tls-port", type=int, default=None, help="Also listen with TLS (school CA certificates)"
)
@click.option("--school", "school_slug", default=None, help="Whose CA signs the listener")
@click.option(
    "--hostname",
    "hostnames",
    multiple=True,
    help="A name devices use for the TLS listener (repeatable; default: the device broker URL's)",
)
@click.pass_obj
def mqtt_config(
    ctx: object,
    directory: Path,
    port: int,
    tls_port: int | None,
    school_slug: str | None,
    hostnames: tuple[str, ...],
) -> None:
    """Write Mosquitto's password file, ACL and mosquitto.conf (with TLS from the school CA).

    With TLS, `ca.pem` holds every school's CA (each school's devices present certificates it
    issued) and `broker-ca.pem` the one CA that signed the listener, which devices must trust.
    """
    from urllib.parse import urlsplit

    from sqlalchemy import select

    from provisioning.ca import new_server_identity
    from server.cli_support import Context, pick_school
    from server.crypto import SecretBox
    from server.db import utcnow
    from server.enrolment.services import broker_password_hashes, school_authority
    from server.schools.models import School

    assert isinstance(ctx, Context)
    settings = ctx.settings
    tls = None
    with ctx.db.begin() as session:
        hashes = broker_password_hashes(session, settings)
        if tls_port:
            box = SecretBox(settings.data_keys)
            school = pick_school(session, school_slug)
            ca, _signing = school_authority(session, box, school)
            names = set(hostnames) or {urlsplit(settings.device_broker_url).hostname or ""}
            names = {n for n in names | {"localhost", "127.0.0.1"} if n}
            ips = {n for n in names if _is_ip(n)}
            server = new_server_identity(
                ca, hostnames=sorted(names - ips), ips=sorted(ips), now=utcnow()
            )
            schools = session.scalars(select(School).order_by(School.id)).all()
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "ca.pem").write_bytes(
                b"".join(school_authority(session, box, s)[0].cert_pem() for s in schools)
            )
            (directory / "broker-ca.pem").write_bytes(ca.cert_pem())
            (directory / "server.pem").write_bytes(server.cert_pem())
            key = directory / "server.key"
            key.touch(mode=0o600)
            key.write_bytes(server.key_pem())
            tls = MosquittoTLS(
                port=tls_port,
                cafile=directory / "ca.pem",
                certfile=directory / "server.pem",
                keyfile=key,
            )
            if len(schools) > 1 and settings.mqtt_device_ca != (directory / "broker-ca.pem"):
                click.echo(
                    f"The listener serves {len(schools)} schools: set "
                    f"TROLLEY_MQTT_DEVICE_CA={directory.resolve() / 'broker-ca.pem'} for the "
                    "server, so every school's enrolment codes pin the CA that signed it."
                )
    files = write_mosquitto_config(
        directory, port=port, hashes=hashes, server_users=(settings.mqtt_server_user,), tls=tls
    )
    click.echo(f"Wrote {files.conf}, {files.password_file} and {files.acl_file}.")
    click.echo(
        f"Run: mosquitto -c {files.conf}   (send it SIGHUP after enrolling devices to reload)"
    )


def _is_ip(name: str) -> bool:
    """A certificate names addresses apart from host names."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@click.command("broker")
@click.option("--port", type=int, default=None, help="Default: TROLLEY_MQTT_PORT (1884)")
@click.pass_obj
def broker(ctx: object, port: int | None) -> None:
    """Run the embedded MQTT broker (authentication on, per-device topics, persistence)."""
    from server.cli_support import Context
    from server.enrolment.services import write_broker_passwords

    assert isinstance(ctx, Context)
    settings = ctx.settings
    with ctx.db.begin() as session:
        password_file = write_broker_passwords(session, settings, settings.broker_dir / "passwords")
    assert password_file is not None
    running = EmbeddedBroker(
        password_file=password_file,
        data_dir=settings.broker_dir / "data",
        port=port or settings.mqtt_port,
        server_users=(settings.mqtt_server_user,),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    running.start()
    click.echo(f"Embedded broker listening on 127.0.0.1:{running.port}")
    try:
        stop.wait()
    finally:
        running.stop()


commands = [mqtt_config, broker]
