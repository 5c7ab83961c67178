"""The `trolley` command: serve, demo, users, backups and checks, all on the same services."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

import click

from server.channel_roles import Role
from server.cli_support import Context, fail_on_domain_errors, pass_ctx
from server.domains import import_part

log = logging.getLogger(__name__)


class TrolleyGroup(click.Group):
    """The top-level command: domain command groups are loaded on first use (no import cycles)."""

    _loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            _domain_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load()
        return super().get_command(ctx, cmd_name)


@click.group(cls=TrolleyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """Trolley: device management for schools. Settings come from TROLLEY_* variables."""
    logging.basicConfig(
        level=os.environ.get("TROLLEY_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("alembic", "transitions", "amqtt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = ctx.obj or Context()
    ctx.call_on_close(lambda: ctx.obj.close())


# --- database -----------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Run the migrations up to the newest schema."""
    from server.db import migrate

    migrate(ctx.db.engine)
    click.echo("The database schema is up to date.")


def _require_current_schema(ctx: Context) -> None:
    from server.db import head_revisions, schema_revisions

    current, wanted = schema_revisions(ctx.db.engine), head_revisions()
    if current != wanted:
        raise click.ClickException(
            f"the database schema is at {', '.join(sorted(current)) or 'nothing'}, not "
            f"{', '.join(sorted(wanted))}: run `trolley db upgrade` first"
        )


# --- serving ------------------------------------------------------------------------------


def _serve(host: str, port: int, workers: int, env: dict[str, str]) -> None:
    from gunicorn.app.base import BaseApplication

    os.environ.update(env)

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": 4,
                "graceful_timeout": 5,
                "timeout": 60,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
            }.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from server import create_app, settle_process

            app = create_app()
            # The app, its modules and mappers live as long as the process: frozen, they are
            # left out of every full collection, which a request asking for a fleet-wide
            # command (thousands of objects) otherwise set off for a tenth of a second.
            settle_process()
            return app

    Server().run()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@pass_ctx
def serve(ctx: Context, host: str, port: int, workers: int) -> None:
    """Serve the web app with gunicorn (the schema must be current)."""
    ctx.settings  # noqa: B018  (fail fast on configuration before forking)
    _require_current_schema(ctx)
    _serve(host, port, workers, {})


class Children:
    """Processes the demo starts; all stopped when it stops (Ctrl-C reaches them too)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, *args], env=self.env)
        self.running.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.running):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.running):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for_port(port: int, timeout: float = 30.0) -> bool:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--seed-only", is_flag=True, help="Create the demo school and stop.")
@click.option(
    "--no-devices", is_flag=True, help="Do not start the broker, worker and simulated fleet."
)
@click.option(
    "--google-fake",
    "google_port",
    type=int,
    default=None,
    is_flag=False,
    flag_value=5081,
    help="Link the school to a local stand-in for Google on this port (default 5081): its "
    "Chromebooks are reached through Google's APIs.",
)
@click.pass_context
def demo(
    click_ctx: click.Context,
    host: str,
    port: int,
    seed_only: bool,
    no_devices: bool,
    google_port: int | None,
) -> None:
    """The demo school on SQLite: web server, worker, embedded broker and a simulated fleet."""
    from server.config import write_demo_settings
    from server.crypto import SecretBox
    from server.db import migrate
    from server.enrolment.services import server_key, write_broker_passwords
    from server.schools.demo import seed_demo

    ctx = Context({"demo": True})
    click_ctx.obj.close()
    click_ctx.obj = ctx
    click_ctx.call_on_close(ctx.close)
    base_url = os.environ.get("TROLLEY_BASE_URL", f"http://{host}:{port}")
    # Later commands run in this folder find the same settings (no variables to set).
    write_demo_settings(
        ctx.settings.instance_dir, {"base_url": base_url, "mqtt_port": str(ctx.settings.mqtt_port)}
    )
    migrate(ctx.db.engine)
    with ctx.db.begin() as session:
        school, logins = seed_demo(session)
        name = school.name
        server_key(session, SecretBox(ctx.settings.data_keys))
        write_broker_passwords(session, ctx.settings)
    click.echo(f"\n  Trolley demo: {name}\n  Open http://{host}:{port}/ and log in as:\n")
    for login in logins:
        click.echo(f"    {login.role.label:<26} {login.email:<28} password: {login.password}")
    click.echo(
        "\n  Everyone but the teacher and governor also sets up a 6-digit code on first log-in"
        "\n  (scan the QR code with an authenticator app, or type the key it shows).\n"
        "  Press Ctrl-C to stop.\n"
    )
    if seed_only:
        return
    env = {
        **os.environ,
        "TROLLEY_DEMO": "1",
        "TROLLEY_INSTANCE_DIR": str(ctx.settings.instance_dir),
        "TROLLEY_BASE_URL": base_url,
    }
    children = Children(env)
    try:
        if google_port is not None:
            env["TROLLEY_GOOGLE_API_ROOT"] = _google_stand_in(ctx, children, google_port)
        if not no_devices:
            for needed, what in ((port, "web server"), (ctx.settings.mqtt_port, "MQTT broker")):
                if not _port_free(needed):
                    raise click.ClickException(
                        f"port {needed} (the {what}) is already in use: stop whatever uses it, "
                        "or choose another with --port / TROLLEY_MQTT_PORT."
                    )
            broker = children.start("-m", "server", "broker")
            if not _wait_for_port(ctx.settings.mqtt_port, timeout=20) or broker.poll() is not None:
                raise click.ClickException(
                    "the embedded broker did not start; see the messages above"
                )
            children.start("-m", "server", "worker", "--tick", "2")
            children.start("-m", "server", "demo-fleet", "--port", str(port))
            children.start("-m", "server", "demo-ipads", "--port", str(port))
        ctx.close()  # no database connection may cross gunicorn's fork
        _serve(host, port, 2, env)
    finally:
        children.stop()


def _google_stand_in(ctx: Context, children: Children, google_port: int) -> str:
    """Start the stand-in for Google, link the demo school to it, sync and push its profile."""
    from server.chromebooks.demo import link_up, prepare
    from server.schools.demo import DEMO_SLUG

    if not _port_free(google_port):
        raise click.ClickException(f"port {google_port} (the Google stand-in) is already in use.")
    domain = prepare(ctx.db, ctx.settings, DEMO_SLUG)
    children.start(
        "-m", "server", "google-stand-in", "--port", str(google_port), "--domain", str(domain)
    )
    if not _wait_for_port(google_port, timeout=20):
        raise click.ClickException("the Google stand-in did not start; see the messages above")
    root = f"http://127.0.0.1:{google_port}"
    link_up(ctx.db, ctx.settings, DEMO_SLUG, root)
    click.echo(f"  The school is linked to a stand-in for Google at {root}.\n")
    return root


@main.command("demo-fleet", hidden=True)
@click.option("--port", type=int, required=True, help="The demo web server's port")
def demo_fleet(port: int) -> None:
    """Enrol the demo school's devices and become their simulated fleet (started by demo)."""
    from server.schools.demo import demo_fleet_arguments

    ctx = Context({"demo": True})
    if not _wait_for_port(port, timeout=60):
        raise click.ClickException("the demo web server did not start; no fleet")
    arguments = demo_fleet_arguments(ctx.db, ctx.settings)
    ctx.close()
    # Become the simulator, so stopping this process stops the fleet.
    os.execv(sys.executable, [sys.executable, "-m", "kiosk_client", *arguments])  # noqa: S606


@main.command("demo-ipads", hidden=True)
@click.option("--port", type=int, required=True, help="The demo web server's port")
@click.option("--every", type=float, default=3.0, show_default=True, help="Seconds between polls")
def demo_ipads(port: int, every: float) -> None:
    """Enrol the demo's MDM iPads over Apple's protocol and keep them checking in (started by
    demo)."""
    import logging

    from server.ipads.demo import demo_ipads as plan
    from server.ipads.demo import state_dir
    from server.ipads.simulator import run_fleet

    logging.basicConfig(level=logging.WARNING, format="simulated iPads: %(message)s")
    ctx = Context({"demo": True})
    if not _wait_for_port(port, timeout=60):
        raise click.ClickException("the demo web server did not start; no iPads")
    fleet = plan(ctx.db, ctx.settings)
    kept = state_dir(ctx.settings)
    ctx.close()
    try:
        run_fleet(f"http://127.0.0.1:{port}", fleet, kept, every=every)
    except KeyboardInterrupt:
        pass


# --- schools and people -------------------------------------------------------------------


@main.group()
def schools() -> None:
    """Schools (each is separate: nobody sees another school's data)."""


@schools.command("create")
@click.argument("slug")
@click.argument("name")
@pass_ctx
@fail_on_domain_errors
def schools_create(ctx: Context, slug: str, name: str) -> None:
    """Add a school with the short name SLUG."""
    from server.schools.services import create_school

    with ctx.db.begin() as session:
        create_school(session, slug=slug, name=name)
    click.echo(f"Created school {slug}.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise click.ClickException("no password on standard input")
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@main.group()
def users() -> None:
    """People who log in."""


@users.command("create")
@click.argument("email")
@click.option(
    "--role",
    required=True,
    help="teacher, computing_lead, sbm, headteacher, technician, governor or admin",
)
@click.option(
    "--school", "school_slug", default=None, help="School short name (default: the only one)"
)
@click.option("--name", default=None, help="Full name (default: the e-mail)")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input")
@pass_ctx
@fail_on_domain_errors
def users_create(
    ctx: Context,
    email: str,
    role: str,
    school_slug: str | None,
    name: str | None,
    password_stdin: bool,
) -> None:
    """Create a person who can log in."""
    from sqlalchemy import select

    from server.auth.models import Role
    from server.auth.services import create_user, get_school
    from server.schools.models import School

    try:
        role_value = Role(role)
    except ValueError as exc:
        raise click.BadParameter(
            f"choose one of {', '.join(r.value for r in Role)}", param_hint="--role"
        ) from exc
    password = _read_password(password_stdin)
    with ctx.db.begin() as session:
        if school_slug:
            school = get_school(session, school_slug)
        else:
            found = session.scalars(select(School).limit(2)).all()
            if len(found) != 1:
                raise click.ClickException(
                    "say which school with --school SLUG"
                    if found
                    else "there is no school yet: run `trolley schools create SLUG NAME` first"
                )
            school = found[0]
        user = create_user(
            session,
            actor=None,
            school=school,
            email=email,
            name=name or email,
            role=role_value,
            password=password,
        )
        click.echo(f"Created {user.email} ({role_value.label}) in {school.slug}.")


@users.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input")
@pass_ctx
@fail_on_domain_errors
def users_reset_password(ctx: Context, email: str, password_stdin: bool) -> None:
    """Set a new password, sign the person out everywhere, revoke their tokens, clear any
    lock-out."""
    from server.auth.services import reset_password

    password = _read_password(password_stdin)
    with ctx.db.begin() as session:
        reset_password(session, actor=None, email=email, password=password)
    click.echo(f"Password reset for {email}; signed out everywhere, API tokens revoked.")


@users.command("token")
@click.argument("email")
@click.option("--name", default="Command-line token", show_default=True)
@click.option(
    "--scope", type=click.Choice(["read", "read_write"]), default="read_write", show_default=True
)
@click.option("--days", type=int, default=None, help="Days it lasts (default: the school's most)")
@pass_ctx
@fail_on_domain_errors
def users_token(ctx: Context, email: str, name: str, scope: str, days: int | None) -> None:
    """Print a new personal API token for EMAIL (shown once)."""
    from server.auth.models import TokenScope
    from server.auth.services import issue_token, user_by_email

    with ctx.db.begin() as session:
        user = user_by_email(session, email)
        _token, plain = issue_token(session, user, name, scope=TokenScope(scope), days=days)
    click.echo(plain)


# --- keys and activity -------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Keys that encrypt secrets at rest."""


@keys.command("new")
def keys_new() -> None:
    """Print a new data key (put it first in TROLLEY_DATA_KEYS to rotate)."""
    from server.crypto import new_data_key

    click.echo(new_data_key())


@main.group()
def activity() -> None:
    """The activity trail."""


@activity.command("verify")
@pass_ctx
def activity_verify(ctx: Context) -> None:
    """Check the hash chain; exit 1 and name the first tampered entry if it is broken."""
    from server.activity.services import verify_chain

    with ctx.db.begin() as session:
        result = verify_chain(session)
    if result.ok:
        click.echo(f"The activity trail is intact ({result.checked} entries checked).")
        return
    click.echo(
        f"TAMPERED: entry {result.first_bad_seq} (id {result.first_bad_id}): {result.reason}. "
        f"{result.checked} entries before it are intact.",
        err=True,
    )
    sys.exit(1)


@main.command()
@click.option("--tick", default=5.0, show_default=True, help="Seconds between scheduler passes")
@click.option(
    "--client-id",
    default="trolley-worker-1",
    show_default=True,
    help="MQTT client id; give each worker its own",
)
@click.option(
    "--shared",
    is_flag=True,
    help="Share device topics with other workers ($share, Mosquitto/EMQX only)",
)
@click.option("--no-broker", is_flag=True, help="Run scheduled jobs only")
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    help=(
        "Run one side of the device channel, or both, in this process alone. Without it the "
        "worker records what devices answer in a second process it starts and watches "
        "(under --client-id) and publishes in this one. Publishing connects as "
        "<client id>-publish, so give both sides of one worker the same --client-id."
    ),
)
@click.option("--parent", type=int, hidden=True, help="Stop when this process has gone")
@pass_ctx
def worker(
    ctx: Context,
    tick: float,
    client_id: str,
    shared: bool,
    no_broker: bool,
    role: str | None,
    parent: int | None,
) -> None:
    """Publish commands and desired state, record acks and reports, run scheduled jobs."""
    from server.worker import run_forever

    _require_current_schema(ctx)
    run_forever(
        ctx.db,
        ctx.settings,
        tick=tick,
        client_id=client_id,
        shared=shared,
        role=None if role is None else Role(role),
        parent=parent,
        with_broker=not no_broker,
    )


def _domain_commands(top: click.Group) -> None:
    """Each domain may add a command group (`group`) and commands (`commands`) in its cli.py.

    Groups of the same name from several domains merge (e.g. `trolley devices ...`).
    """
    for module in import_part("cli"):
        found = [getattr(module, "group", None), *getattr(module, "commands", [])]
        for command in filter(None, found):
            existing = top.commands.get(command.name or "")
            if isinstance(existing, click.Group) and isinstance(command, click.Group):
                for sub in command.commands.values():
                    existing.add_command(sub)
            else:
                top.add_command(command)
