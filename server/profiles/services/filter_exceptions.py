"""Temporary filter exceptions: sites unblocked for a lesson, decided by the computing lead."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from device_profiles import ProfileValidationError, with_filter_exceptions
from device_profiles.urls import chrome_url_filter, filterable_address, url_problem
from server.activity.services import record
from server.auth.models import User
from server.auth.permissions import Permission, has_permission
from server.db import utcnow
from server.devices.models import Device
from server.errors import Conflict, NotFound, ValidationFailed
from server.profiles.models import ExceptionStatus, FilterException, TargetType
from server.profiles.services.lookups import (
    _commit,
    _manages,
    _require,
    _require_manage,
    _require_staff,
    loaded,
)
from server.profiles.services.notices import _filtering_managers, _notify, _sites
from server.profiles.services.outbox import _active_exceptions, _applies, recompute_desired
from server.profiles.services.resolution import _plan, _resolve
from server.profiles.services.targets import _affected, describe_target
from server.schools.models import School
from server.schools.services.clock import when
from server.waiting import Waiting

MAX_EXCEPTION_DAYS = 14
MAX_EXCEPTION_URLS = 20
MAX_EXCEPTION_LEAD_DAYS = 60
EXCEPTION_TARGETS = (TargetType.LOCATION, TargetType.GROUP, TargetType.DEVICE)


def my_open_requests(session: Session, user: User) -> int:
    """How many of a person's own filter exception requests are waiting or in effect."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(FilterException)
            .where(
                FilterException.school_id == user.school_id,
                FilterException.requester_id == user.id,
                FilterException.status.in_([ExceptionStatus.REQUESTED, ExceptionStatus.APPROVED]),
            )
        )
        or 0
    )


@dataclass(frozen=True)
class Unblock:
    """One address as typed or pasted, and what it unblocks in words a teacher reads."""

    typed: str
    address: str | None  # what is asked for and kept; None when it cannot be used
    reach: str
    problem: str | None


def preview_unblock(urls: Iterable[str]) -> list[Unblock]:
    """Each address given, in order, as the site or pages it would unblock (or why not)."""
    shown = []
    for typed in (u.strip() for u in urls):
        if not typed:
            continue
        address, cut = filterable_address(typed)
        problem = url_problem(address)
        if problem is not None:
            shown.append(Unblock(typed, None, "", problem))
            continue
        matched = chrome_url_filter(address)
        reach = f"{matched} and every page under it" if "/" in matched else f"all of {matched}"
        if cut.startswith("?"):
            shown_cut = cut if len(cut) <= 40 else cut[:39] + "…"
            reach += (
                f", not only {shown_cut} (a filter cannot tell pages apart by the part from '?' on)"
            )
        shown.append(Unblock(typed, address, reach, None))
    return shown


def _clean_urls(urls: Iterable[str]) -> list[str]:
    """The addresses to keep: each reduced to what a filter matches, once, all usable."""
    shown = preview_unblock(urls)
    if not shown:
        raise ValidationFailed("Give at least one web address to unblock.")
    cleaned = list(dict.fromkeys(u.address or u.typed for u in shown))
    if len(cleaned) > MAX_EXCEPTION_URLS:
        raise ValidationFailed(f"Ask for at most {MAX_EXCEPTION_URLS} web addresses at a time.")
    problems = [{"field": "urls", "message": f"{u.typed}: {u.problem}"} for u in shown if u.problem]
    if problems:
        raise ValidationFailed(
            "Some web addresses cannot be used: " + "; ".join(str(p["message"]) for p in problems),
            details=problems,
        )
    return cleaned


def request_exception(
    session: Session,
    actor: User,
    *,
    urls: Iterable[str],
    reason: str,
    class_label: str,
    target_type: TargetType | str,
    target_id: int,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime | None = None,
) -> FilterException:
    """A member of staff asks for addresses to be unblocked for a period of study."""
    _require(actor, Permission.LOANS_USE)
    now = now or utcnow()
    cleaned = _clean_urls(urls)
    reason = reason.strip()
    class_label = " ".join(class_label.split())
    if len(reason) < 10 or len(reason) > 1000:
        raise ValidationFailed(
            "Say why the class needs these sites (10 to 1000 characters); the reason is kept."
        )
    if not class_label or len(class_label) > 64:
        raise ValidationFailed("Give the class, for example 'Year 4 Oak' (up to 64 characters).")
    try:
        kind = TargetType(target_type)
    except ValueError:
        kind = None
    if kind not in EXCEPTION_TARGETS:
        raise ValidationFailed("Choose a place, a device group or one device.")
    label = describe_target(session, actor.school_id, kind, target_id)
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ValidationFailed("Give the start and end with a time zone.")
    if ends_at <= starts_at:
        raise ValidationFailed("The end must be after the start.")
    if ends_at <= now:
        raise ValidationFailed("The end is already in the past.")
    if ends_at - starts_at > timedelta(days=MAX_EXCEPTION_DAYS):
        raise ValidationFailed(
            f"A temporary exception lasts at most {MAX_EXCEPTION_DAYS} days. "
            "Ask again for the next period, or ask your computing lead to change the profile."
        )
    if starts_at - now > timedelta(days=MAX_EXCEPTION_LEAD_DAYS):
        raise ValidationFailed(
            f"Ask no more than {MAX_EXCEPTION_LEAD_DAYS} days before the period starts."
        )
    exception = FilterException(
        school_id=actor.school_id,
        requester_id=actor.id,
        urls=cleaned,
        reason=reason,
        class_label=class_label,
        target_type=kind,
        target_id=target_id,
        starts_at=starts_at,
        ends_at=ends_at,
        status=ExceptionStatus.REQUESTED,
        created_at=now,
    )
    session.add(exception)
    session.flush()
    record(
        session,
        actor=actor,
        action="filter_exception.requested",
        school_id=actor.school_id,
        target_type="filter_exception",
        target_id=exception.id,
        details={
            "urls": cleaned,
            "reason": reason,
            "class": class_label,
            "target": label,
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
    )
    school = session.get_one(School, actor.school_id)
    _notify(
        session,
        school_id=actor.school_id,
        users=[u for u in _filtering_managers(session, actor.school_id) if u.id != actor.id],
        kind="filter_exception.requested",
        title=f"{actor.name} asks to unblock {_sites(cleaned)} for {class_label}",
        body=f"{', '.join(cleaned)} for {label}, {when(starts_at, school)} to "
        f"{when(ends_at, school)}. "
        f"Reason: {reason}",
        request_id=exception.id,
        at=now,
    )
    _commit(session)
    return exception


def get_exception(session: Session, actor: User, exception_id: int) -> FilterException:
    """An exception of the actor's school that the actor may see (their own, or any if they
    manage filtering)."""
    _require_staff(actor)
    exception = session.scalar(
        select(FilterException).where(
            FilterException.id == exception_id, FilterException.school_id == actor.school_id
        )
    )
    if exception is None or (not _manages(actor) and exception.requester_id != actor.id):
        raise NotFound("There is no such filter exception request in your school.")
    return exception


def list_exceptions(
    session: Session, actor: User, *, status: ExceptionStatus | None = None, limit: int = 200
) -> Sequence[FilterException]:
    """Requests newest first: all of them for the computing lead, one's own for other staff."""
    _require_staff(actor)
    query = select(FilterException).where(FilterException.school_id == actor.school_id)
    if not _manages(actor):
        query = query.where(FilterException.requester_id == actor.id)
    if status is not None:
        query = query.where(FilterException.status == status)
    return session.scalars(query.order_by(FilterException.id.desc()).limit(limit)).all()


def _exception_devices(session: Session, exception: FilterException) -> list[int] | None:
    return _affected(session, exception.target_type, exception.target_id)


def _check_fits(session: Session, exception: FilterException, now: datetime) -> None:
    """Refuse an approval whose addresses would overflow a device's allow list."""
    affected = _exception_devices(session, exception)
    plan = _plan(session, exception.school_id, affected)
    query = select(Device.id, Device.home_location_id).where(
        Device.school_id == exception.school_id
    )
    if affected is not None:
        query = query.where(Device.id.in_(affected))
    active = _active_exceptions(session, exception.school_id, now)
    checked: set[tuple[int, ...]] = set()
    for device_id, home_id in session.execute(query):
        places = {p.id for p in plan.ancestors(home_id)}
        if not _applies(plan, exception, device_id, places):
            continue
        version = _resolve(plan, device_id, home_id).profile_version
        if version is None:
            continue
        ids = (version.id, *(e.id for e in active if _applies(plan, e, device_id, places)))
        if ids in checked:
            continue
        checked.add(ids)
        urls = [u for e in active if e.id in ids[1:] for u in e.urls] + list(exception.urls)
        try:
            with_filter_exceptions(loaded(version), urls)
        except ProfileValidationError as exc:
            raise ValidationFailed(
                f"These sites do not fit the profile {version.profile.name}: "
                + "; ".join(e.message for e in exc.errors)
            ) from exc


def _decide(
    session: Session,
    actor: User,
    exception_id: int,
    status: ExceptionStatus,
    note: str,
    now: datetime | None,
) -> FilterException:
    _require_manage(actor)
    now = now or utcnow()
    exception = get_exception(session, actor, exception_id)
    wanted_from = (
        ExceptionStatus.APPROVED if status is ExceptionStatus.REVOKED else ExceptionStatus.REQUESTED
    )
    if exception.status is not wanted_from:
        raise Conflict(
            f"This request is already {exception.status.value}; it cannot be {status.value} now."
        )
    note = note.strip()[:500]
    if status is ExceptionStatus.DECLINED and not note:
        raise ValidationFailed("Say why the request is declined; the teacher will see it.")
    if status is ExceptionStatus.APPROVED:
        if exception.ends_at <= now:
            raise Conflict("This request's period has already ended, so it cannot be approved.")
        _check_fits(session, exception, now)
    exception.status = status
    if status is ExceptionStatus.REVOKED:
        exception.decision_note = note or exception.decision_note
    else:
        exception.decided_by_id, exception.decided_at = actor.id, now
        exception.decision_note = note or None
    label = describe_target(session, actor.school_id, exception.target_type, exception.target_id)
    record(
        session,
        actor=actor,
        action=f"filter_exception.{status.value}",
        school_id=actor.school_id,
        target_type="filter_exception",
        target_id=exception.id,
        details={
            "urls": exception.urls,
            "class": exception.class_label,
            "target": label,
            "note": note,
            "requester": exception.requester.email,
        },
    )
    if status is not ExceptionStatus.DECLINED and exception.starts_at <= now:
        if status is ExceptionStatus.APPROVED:
            exception.activated_at = now
        session.flush()
        recompute_desired(session, actor.school_id, _exception_devices(session, exception), now=now)
    sites = _sites(exception.urls)
    school = session.get_one(School, actor.school_id)
    messages = {
        ExceptionStatus.APPROVED: (
            f"Approved: {sites} for {exception.class_label}",
            f"Unblocked on {label} from {when(exception.starts_at, school)} until "
            f"{when(exception.ends_at, school)}, when the filter goes back automatically.",
        ),
        ExceptionStatus.DECLINED: (
            f"Declined: {sites} for {exception.class_label}",
            f"{actor.name} declined the request: {note}",
        ),
        ExceptionStatus.REVOKED: (
            f"Ended early: {sites} for {exception.class_label}",
            f"{actor.name} ended the exception; the sites are filtered again. {note}".strip(),
        ),
    }
    title, body = messages[status]
    _notify(
        session,
        school_id=actor.school_id,
        users=[exception.requester],
        kind=f"filter_exception.{status.value}",
        title=title,
        body=body,
        request_id=exception.id,
        at=now,
    )
    _commit(session)
    return exception


def approve_exception(
    session: Session, actor: User, exception_id: int, note: str = "", *, now: datetime | None = None
) -> FilterException:
    """Approve a request; its devices' desired state changes once the period starts."""
    return _decide(session, actor, exception_id, ExceptionStatus.APPROVED, note, now)


def decline_exception(
    session: Session, actor: User, exception_id: int, note: str, *, now: datetime | None = None
) -> FilterException:
    """Decline a request, saying why."""
    return _decide(session, actor, exception_id, ExceptionStatus.DECLINED, note, now)


def revoke_exception(
    session: Session, actor: User, exception_id: int, note: str = "", *, now: datetime | None = None
) -> FilterException:
    """End an approved exception early; the filter goes back at once."""
    return _decide(session, actor, exception_id, ExceptionStatus.REVOKED, note, now)


# The views and the API name a decision by the word in its address.
DECISIONS: dict[str, Callable[[Session, User, int, str], FilterException]] = {
    "approve": approve_exception,
    "decline": decline_exception,
    "revoke": revoke_exception,
}


def _record_on_time(
    session: Session, exception: FilterException, action: str, now: datetime
) -> None:
    """Put in the trail a change the clock made, not a person."""
    record(
        session,
        actor=None,
        action=action,
        school_id=exception.school_id,
        target_type="filter_exception",
        target_id=exception.id,
        details={"urls": exception.urls, "class": exception.class_label},
        at=now,
    )


def expire_exceptions(session: Session, now: datetime) -> int:
    """Revert ended exceptions and start approved ones whose period began; joins the caller's
    transaction. Safe to run twice. Returns how many exceptions changed."""
    ended = session.scalars(
        select(FilterException)
        .where(
            FilterException.status.in_([ExceptionStatus.APPROVED, ExceptionStatus.REQUESTED]),
            FilterException.ends_at <= now,
        )
        .order_by(FilterException.id)
        .with_for_update(skip_locked=True)
    ).all()
    starting = session.scalars(
        select(FilterException)
        .where(
            FilterException.status == ExceptionStatus.APPROVED,
            FilterException.activated_at.is_(None),
            FilterException.starts_at <= now,
            FilterException.ends_at > now,
        )
        .order_by(FilterException.id)
        .with_for_update(skip_locked=True)
    ).all()
    schools: dict[int, list[int] | None] = {}

    def touch(exception: FilterException) -> None:
        affected = _exception_devices(session, exception)
        if exception.school_id in schools:
            before = schools[exception.school_id]
            schools[exception.school_id] = (
                None if before is None or affected is None else [*before, *affected]
            )
        else:
            schools[exception.school_id] = affected

    for exception in ended:
        was_approved = exception.status is ExceptionStatus.APPROVED
        exception.status = ExceptionStatus.EXPIRED
        _record_on_time(session, exception, "filter_exception.expired", now)
        sites = _sites(exception.urls)
        if was_approved:
            touch(exception)
            title = f"Filtered again: {sites} for {exception.class_label}"
            ended_at = when(exception.ends_at, session.get_one(School, exception.school_id))
            body = f"The exception ended at {ended_at}; the filter is back."
        else:
            title = f"Not decided in time: {sites} for {exception.class_label}"
            body = "The period ended before the computing lead decided. Ask again if needed."
        _notify(
            session,
            school_id=exception.school_id,
            users=[exception.requester],
            kind="filter_exception.expired",
            title=title,
            body=body,
            request_id=exception.id,
            at=now,
        )
    for exception in starting:
        exception.activated_at = now
        _record_on_time(session, exception, "filter_exception.started", now)
        touch(exception)
    session.flush()
    for school_id, device_ids in schools.items():
        recompute_desired(session, school_id, device_ids, now=now)
    return len(ended) + len(starting)


def exceptions_waiting_for(session: Session, user: User) -> list[Waiting]:
    """Requests to unblock websites waiting for `user`'s decision, if they manage filtering."""
    if not has_permission(user.role, Permission.FILTERING_MANAGE):
        return []
    count, since = session.execute(
        select(func.count(), func.min(FilterException.created_at)).where(
            FilterException.school_id == user.school_id,
            FilterException.status == ExceptionStatus.REQUESTED,
        )
    ).one()
    if not count:
        return []
    what = "request" if count == 1 else "requests"
    return [
        Waiting(
            what=f"{count} {what} to unblock websites",
            count=count,
            since=since,
            link="/filter-exceptions",
        )
    ]
