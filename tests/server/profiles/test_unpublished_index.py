"""The worker's look for desired states to publish: the right rows, through their own index."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from server.device_channel import _ANY_UNPUBLISHED, _UNPUBLISHED_STATES
from server.devices.models import Device
from server.enrolment.models import DeviceIdentity
from server.profiles.models import UNPUBLISHED, DeviceDesiredState


def _state(session: Session, device: Device, sha: str, published: str | None) -> None:
    session.add(
        DeviceIdentity(
            school_id=device.school_id,
            device_id=device.id,
            mqtt_id=f"dev-unpublished-{device.id}",
            public_key="k" * 43,
            kid=f"{device.id:016d}",
            broker_secret_hash="x",
            platform="simulated",
        )
    )
    session.add(
        DeviceDesiredState(
            device_id=device.id,
            school_id=device.school_id,
            document={"version": 1},
            sha256=sha * 64,
            published_sha256=None if published is None else published * 64,
        )
    )
    session.commit()


def test_only_states_never_published_or_changed_since_are_found(
    session: Session, make_device: Callable[..., Device]
) -> None:
    """A device's profile reaches it once it changes, and a published one is not sent again
    twenty times a second."""
    devices = [make_device() for _ in range(4)]
    for device, (sha, published) in zip(
        devices, [("a", None), ("b", "b"), ("c", "a"), ("d", "d")], strict=True
    ):
        _state(session, device, sha, published)
    found = session.execute(_UNPUBLISHED_STATES, {"limit": 10}).all()
    assert [state.device_id for state, _identity in found] == [devices[0].id, devices[2].id]
    assert [identity.device_id for _state, identity in found] == [devices[0].id, devices[2].id]
    assert len(session.execute(_UNPUBLISHED_STATES, {"limit": 1}).all()) == 1
    # The idle poll's look, which asks only whether there is any.
    assert session.scalar(_ANY_UNPUBLISHED) == found[0][0].id
    session.execute(
        DeviceDesiredState.__table__.update().values(published_sha256=DeviceDesiredState.sha256)
    )
    assert session.scalar(_ANY_UNPUBLISHED) is None


def test_the_look_can_go_through_the_small_index(session: Session) -> None:
    """Asked twenty times a second over a row per device: the condition the worker asks is one
    the partial index `ix_device_desired_states_unpublished` answers, on both databases."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # With a handful of rows and no statistics PostgreSQL rightly starts from elsewhere;
        # barred from scanning the table, it can only use the index if its condition follows
        # from the worker's.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = [
            row[0]
            for row in connection.exec_driver_sql(
                "EXPLAIN SELECT id FROM device_desired_states "
                f"WHERE {UNPUBLISHED} ORDER BY id LIMIT 10"
            )
        ]
    else:
        # The worker's own statement names the index for SQLite, which refuses the statement
        # outright ("no query solution") if the index cannot serve it.
        plan = []
        for statement in (_UNPUBLISHED_STATES, _ANY_UNPUBLISHED):
            compiled = statement.compile(connection)
            params = {**compiled.params, "limit": 10}
            ordered = tuple(params[name] for name in compiled.positiontup or ())
            explained = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", ordered)
            plan += [row[-1] for row in explained]
    assert any("ix_device_desired_states_unpublished" in line for line in plan), "\n".join(plan)
