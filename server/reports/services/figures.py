"""The governors' termly figures, each counted in SQL from the records and said with its basis."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from server.audits.models import (
    Audit,
    AuditItem,
    AuditState,
    PhotoCheck,
    PhotoCheckStatus,
    SpotCheck,
    SpotCheckItem,
)
from server.audits.services import half_terms, term_on
from server.auth.models import User
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.devices.models import Device, DeviceStatus, Platform
from server.devices.services import counts_by_status, protection_summary, reported_since_erase
from server.devices.services.protection import PROTECTION_LABELS, PROTECTION_STATES
from server.errors import NotFound
from server.loans.models import ItemState, LoanItem
from server.losses.models import Decision, LossKind, LossReport, Outcome
from server.profiles.models import (
    CLEARED_SHA256,
    AppliedState,
    DeviceAppliedSetting,
    DeviceDesiredState,
    DeviceProfileStatus,
)
from server.profiles.pages import SETTING_LABELS
from server.profiles.services.reported import PLATFORM_LABELS
from server.reports.pages import (
    AuditFigures,
    AuditLine,
    ComplianceFigures,
    GovernorsReport,
    HalfTermCheck,
    Line,
    LossCase,
    LossFigures,
    Period,
    PhotoFigures,
    RegisterFigures,
    ResetFigures,
    SettingLine,
)
from server.schools.models import School, Term
from server.schools.services import terms as school_terms
from server.schools.services.clock import day, local_today, start_of, when

DASH = "—"
# A return's photos count as wiped "at the end of the lesson" when the device confirmed within
# this long of being scanned back in.
PROMPTLY = timedelta(hours=1)
KIND_WORDS = {
    Platform.IPADOS: PLATFORM_LABELS[Platform.IPADOS],
    Platform.CHROMEOS: PLATFORM_LABELS[Platform.CHROMEOS],
    Platform.LINUX: PLATFORM_LABELS[Platform.LINUX],
    Platform.OTHER: "Other devices",
}
WAITING = (
    CommandStatus.PENDING_APPROVAL,
    CommandStatus.QUEUED,
    CommandStatus.SENT,
    CommandStatus.RECEIVED,
)


def report_terms(session: Session, school_id: int) -> list[Term]:
    """The school's terms to choose from, latest first."""
    return sorted(school_terms(session, school_id), key=lambda t: t.starts_on, reverse=True)


def period_of(session: Session, school: School, term_id: int | None, now: datetime) -> Period:
    """The term asked for (by default the one under way, or just finished) and its dates."""
    terms = list(school_terms(session, school.id))
    if not terms:
        raise NotFound("This school has no term dates yet. The SBM can add them under Terms.")
    if term_id is None:
        term = term_on(terms, local_today(school, now)) or terms[0]
    else:
        chosen = next((t for t in terms if t.id == term_id), None)
        if chosen is None:
            raise NotFound("No such term in your school.")
        term = chosen
    later = [t.starts_on for t in terms if t.starts_on > term.starts_on]
    # The holiday after a term belongs to it: a loss over the summer is in the summer's report.
    last_day = min(later) - timedelta(days=1) if later else term.ends_on
    return Period(
        term=term,
        first_day=term.starts_on,
        last_day=max(last_day, term.ends_on),
        starts=start_of(term.starts_on, school),
        ends=start_of(max(last_day, term.ends_on) + timedelta(days=1), school),
    )


def _within(column: Any, period: Period) -> ColumnElement[bool]:
    """The column's time falls in the period (its start included, its end not)."""
    return and_(column >= period.starts, column < period.ends)


def _at_most(session: Session, later: Any, earlier: Any) -> ColumnElement[bool]:
    """`later` came no more than PROMPTLY after `earlier`, in each database's own arithmetic."""
    if session.get_bind().dialect.name == "sqlite":
        days = func.julianday(later) - func.julianday(earlier)
        return days * 86400 <= PROMPTLY.total_seconds()
    promptly: ColumnElement[bool] = later - earlier <= PROMPTLY
    return promptly


def _names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    return dict(session.execute(select(User.id, User.name).where(User.id.in_(wanted))).all())


def register_figures(session: Session, school_id: int, period: Period) -> RegisterFigures:
    """P-REG-1: the register as it stands, by kind and by status."""
    live = and_(Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED)
    kinds = dict(
        session.execute(
            select(Device.platform, func.count()).where(live).group_by(Device.platform)
        ).all()
    )
    statuses = counts_by_status(session, school_id)
    added = session.scalar(
        select(func.count())
        .select_from(Device)
        .where(Device.school_id == school_id, _within(Device.created_at, period))
    )
    return RegisterFigures(
        total=sum(kinds.values()),
        by_platform=[Line(KIND_WORDS[p], int(kinds.get(p, 0))) for p in Platform],
        by_status=[Line(s.label, int(statuses.get(s, 0))) for s in DeviceStatus],
        added=int(added or 0),
        basis="The asset register as it stands now (disposed devices are not counted in the "
        "total); 'added' counts devices entered in the register during the period.",
    )


def loss_figures(session: Session, school: School, period: Period) -> LossFigures:
    """P-LOSS-1, P-LOSS-2: losses reported in the period, their outcomes and the ICO decisions."""
    reports = session.scalars(
        select(LossReport)
        .where(LossReport.school_id == school.id, _within(LossReport.reported_at, period))
        .order_by(LossReport.reported_at, LossReport.id)
    ).all()
    deciders = _names(session, (r.decided_by_id for r in reports))
    cases = []
    for r in reports:
        if r.outcome is not None:
            outcome = r.outcome.label
        else:
            outcome = "Still open" if r.is_open else "Closed"
        cases.append(
            LossCase(
                case=r.id,
                kind=r.kind.value.capitalize(),
                reported_on=day(r.reported_at, school),
                decision=r.decision.label if r.decision is not None else "Not decided yet",
                decided_by=deciders.get(r.decided_by_id or 0, DASH),
                decided_on=day(r.decided_at, school, missing=DASH),
                outcome=outcome,
            )
        )
    return LossFigures(
        reported=len(reports),
        lost=sum(r.kind is LossKind.LOST for r in reports),
        stolen=sum(r.kind is LossKind.STOLEN for r in reports),
        found=sum(r.outcome is Outcome.FOUND for r in reports),
        written_off=sum(r.outcome is Outcome.WRITTEN_OFF for r in reports),
        confirmed_stolen=sum(r.outcome is Outcome.STOLEN for r in reports),
        still_open=sum(r.is_open for r in reports),
        ico_reported=sum(r.decision is Decision.REPORT for r in reports),
        cases=cases,
        basis="Loss and theft reports made during the period, with the headteacher's decision on "
        "reporting each to the Information Commissioner's Office and what became of the device.",
    )


def audit_figures(session: Session, school: School, period: Period) -> AuditFigures:
    """P-AUDIT-1: the term's audits and how much of what was expected each found."""
    audits = session.scalars(
        select(Audit)
        .where(Audit.school_id == school.id, Audit.term_id == period.term.id)
        .order_by(Audit.started_at, Audit.id)
    ).all()
    counts: dict[tuple[int, AuditState], int] = {}
    if audits:
        for audit_id, state, n in session.execute(
            select(AuditItem.audit_id, AuditItem.state, func.count())
            .where(AuditItem.audit_id.in_([a.id for a in audits]), AuditItem.expected)
            .group_by(AuditItem.audit_id, AuditItem.state)
        ):
            counts[(audit_id, state)] = int(n)
    people = _names(
        session, [a.closed_by_id for a in audits] + [a.countersigned_by_id for a in audits]
    )
    lines = []
    for a in audits:
        per_state = {s: counts.get((a.id, s), 0) for s in AuditState}
        expected = sum(per_state.values())
        lines.append(
            AuditLine(
                scope="Whole school" if a.whole_school else "Chosen places",
                state="Under way" if a.is_open else "Signed off",
                expected=expected,
                found=expected - per_state[AuditState.MISSING],
                missing=per_state[AuditState.MISSING],
                signed_off_by=people.get(a.closed_by_id or 0, DASH),
                signed_off_on=(day(a.closed_at, school, missing=DASH)),
                countersigned_by=people.get(a.countersigned_by_id or 0, DASH),
            )
        )
    return AuditFigures(
        audits=lines,
        whole_school_signed_off=any(a.whole_school and not a.is_open for a in audits),
        basis="Each audit of the term: every device expected starts as missing and is found only "
        "when someone scans its label; the percentage is found out of expected.",
    )


def photo_figures(session: Session, school: School, period: Period) -> PhotoFigures:
    """P-PHOTO-1..3: wipes at return by who confirmed them, half-termly and spot checks."""
    done = Command.status == CommandStatus.DONE
    later_by_device = and_(
        ~LoanItem.wipe_outstanding,
        LoanItem.wipe_resolved_at.is_not(None),
        LoanItem.wipe_resolved_by_id.is_(None),
    )
    by_hand = and_(~LoanItem.wipe_outstanding, LoanItem.wipe_resolved_by_id.is_not(None))
    how = case((or_(done, later_by_device), "device"), (by_hand, "hand"), else_="not_known")
    # The device's own time of wiping, against the time it was scanned back in.
    prompt = case((and_(done, _at_most(session, Command.finished_at, LoanItem.returned_at)), 1))
    returns = (
        select(
            how.label("how"),
            LoanItem.wipe_resolved_by_id.label("person"),
            prompt.label("prompt"),
        )
        .select_from(LoanItem)
        .outerjoin(Command, Command.id == LoanItem.wipe_command_id)
        .where(
            LoanItem.school_id == school.id,
            LoanItem.state == ItemState.RETURNED,
            _within(LoanItem.returned_at, period),
        )
        .subquery()
    )
    tally: dict[str, int] = {}
    people: dict[int, int] = {}
    promptly = 0
    for kind, person, n, quick in session.execute(
        select(
            returns.c.how, returns.c.person, func.count(), func.count(returns.c.prompt)
        ).group_by(returns.c.how, returns.c.person)
    ):
        tally[kind] = tally.get(kind, 0) + int(n)
        promptly += int(quick)
        if kind == "hand" and person is not None:
            people[person] = people.get(person, 0) + int(n)
    names = _names(session, people)
    spot = session.execute(
        select(
            func.count(func.distinct(SpotCheck.id)),
            func.count(SpotCheckItem.checked_at),
            func.count(
                case(
                    (
                        or_(
                            SpotCheckItem.photos_found.is_(True),
                            SpotCheckItem.other_personal_data.is_(True),
                        ),
                        1,
                    )
                )
            ),
        )
        .select_from(SpotCheck)
        .outerjoin(SpotCheckItem, SpotCheckItem.spot_check_id == SpotCheck.id)
        .where(SpotCheck.school_id == school.id, _within(SpotCheck.drawn_at, period))
    ).one()
    return PhotoFigures(
        returns=sum(tally.values()),
        by_device=tally.get("device", 0),
        by_device_within_hour=promptly,
        by_hand=tally.get("hand", 0),
        by_hand_people=sorted(
            (Line(names.get(pid, "a former member of staff"), n) for pid, n in people.items()),
            key=lambda line: line.label,
        ),
        not_known=tally.get("not_known", 0),
        halves=_half_checks(session, school, period.term),
        spot_checks=int(spot[0]),
        spot_devices_checked=int(spot[1]),
        spot_findings=int(spot[2]),
        basis="Each device scanned back into its trolley asks to delete its photos. A wipe counts "
        "as confirmed only when the device itself reported it done (with its own time), or when "
        "a named person recorded checking it by hand and finding none; otherwise it is not known.",
    )


def _half_checks(session: Session, school: School, term: Term) -> list[HalfTermCheck]:
    checks = session.scalars(
        select(PhotoCheck)
        .where(
            PhotoCheck.school_id == school.id,
            PhotoCheck.term_id == term.id,
            PhotoCheck.status == PhotoCheckStatus.COMPLETE,
        )
        .order_by(PhotoCheck.completed_at)
    ).all()
    latest = {c.half: c for c in checks}  # the last completed check of each half counts
    people = _names(session, (c.completed_by_id for c in checks))
    out = []
    for half in half_terms([term]):
        c = latest.get(half.half)
        if c is None:
            out.append(HalfTermCheck(half.label, False, None, None, None, None, None, DASH, DASH))
            continue
        out.append(
            HalfTermCheck(
                label=half.label,
                done=True,
                devices=c.devices_total,
                cleared=c.cleared,
                still_holding=c.still_holding,
                unconfirmed=c.unconfirmed,
                by_hand=c.checked_by_hand,
                completed_by=people.get(c.completed_by_id or 0, DASH),
                completed_on=day(c.completed_at, school, missing=DASH),
            )
        )
    return out


def reset_figures(session: Session, school_id: int, period: Period) -> ResetFigures:
    """P-LEAVE-1: factory resets asked for in the period, confirmed only by the device."""
    counts = dict(
        session.execute(
            select(Command.status, func.count())
            .where(
                Command.school_id == school_id,
                Command.type == "factory_reset",
                _within(Command.created_at, period),
            )
            .group_by(Command.status)
        ).all()
    )
    asked = sum(int(n) for n in counts.values())
    confirmed = int(counts.get(CommandStatus.DONE, 0))
    waiting = sum(int(counts.get(s, 0)) for s in WAITING)
    return ResetFigures(
        asked=asked,
        confirmed=confirmed,
        waiting=waiting,
        not_done=asked - confirmed - waiting,
        basis="Factory resets asked for during the period. One counts as confirmed only when the "
        "device (or Google, for a Chromebook) reported it done; 'not done' were refused, failed, "
        "cancelled or expired.",
    )


def compliance_figures(session: Session, school_id: int) -> ComplianceFigures:
    """P-PROFILE-1, P-REG-7: each setting as the devices that should enforce it reported it."""
    live = and_(Device.id == DeviceDesiredState.device_id, Device.status != DeviceStatus.DISPOSED)
    # One row per distinct document (a profile version with its exceptions): how many devices
    # should enforce it, and one of its rows to read the document's settings from.
    per_document = (
        select(
            DeviceDesiredState.sha256.label("sha"),
            func.count().label("devices"),
            func.min(DeviceDesiredState.id).label("one"),
        )
        .join(Device, live)
        .where(
            DeviceDesiredState.school_id == school_id,
            DeviceDesiredState.sha256 != CLEARED_SHA256,
        )
        .group_by(DeviceDesiredState.sha256)
        .subquery()
    )
    settings_of: dict[str, Sequence[str]] = {}
    wanted: dict[str, int] = {}
    with_profile = 0
    for sha, n, document in session.execute(
        select(per_document.c.sha, per_document.c.devices, DeviceDesiredState.document).join(
            DeviceDesiredState, DeviceDesiredState.id == per_document.c.one
        )
    ):
        with_profile += int(n)
        settings_of[sha] = list((document or {}).get("settings") or ())
        for setting in settings_of[sha]:
            wanted[setting] = wanted.get(setting, 0) + int(n)
    applied: dict[str, int] = {}
    not_applied: dict[str, int] = {}
    for sha, setting, state, n in session.execute(
        select(
            DeviceAppliedSetting.profile_sha256,
            DeviceAppliedSetting.setting,
            DeviceAppliedSetting.state,
            func.count(),
        )
        .join(
            DeviceDesiredState,
            and_(
                DeviceDesiredState.device_id == DeviceAppliedSetting.device_id,
                DeviceDesiredState.sha256 == DeviceAppliedSetting.profile_sha256,
            ),
        )
        .join(Device, live)
        .outerjoin(
            DeviceProfileStatus, DeviceProfileStatus.device_id == DeviceAppliedSetting.device_id
        )
        .where(
            DeviceAppliedSetting.school_id == school_id,
            # Settings reported before the device's storage was erased are not known.
            reported_since_erase(DeviceProfileStatus.settings_at),
        )
        .group_by(
            DeviceAppliedSetting.profile_sha256,
            DeviceAppliedSetting.setting,
            DeviceAppliedSetting.state,
        )
    ):
        if setting not in settings_of.get(sha, ()):
            continue  # a report about a setting the profile does not manage says nothing here
        into = applied if state is AppliedState.ENFORCED else not_applied
        into[setting] = into.get(setting, 0) + int(n)
    order = {name: i for i, name in enumerate(SETTING_LABELS)}
    lines = [
        SettingLine(
            label=SETTING_LABELS.get(setting, setting.replace("_", " ").replace(".", ": ")),
            applied=applied.get(setting, 0),
            not_applied=not_applied.get(setting, 0),
            not_known=max(0, n - applied.get(setting, 0) - not_applied.get(setting, 0)),
        )
        for setting, n in sorted(wanted.items(), key=lambda kv: (order.get(kv[0], 999), kv[0]))
    ]
    protection = protection_summary(session, school_id)
    return ComplianceFigures(
        settings=lines,
        devices_with_profile=with_profile,
        protection=[Line(PROTECTION_LABELS[s], protection.get(s, 0)) for s in PROTECTION_STATES],
        basis="What each device last reported about each setting of the profile it should "
        "enforce: applied, not applied (it cannot or it failed), or not known (it has not "
        "reported on this version of its profile, or not since its storage was erased). "
        "Trolley keeps each device's latest report only, so these figures are as things stand "
        "now, whichever term is chosen.",
    )


def governors_report(
    session: Session, school: School, *, term_id: int | None = None, now: datetime | None = None
) -> GovernorsReport:
    """The whole termly report for one school: nothing about pupils, staff only by decision."""
    now = now or utcnow()
    period = period_of(session, school, term_id, now)
    return GovernorsReport(
        school_name=school.name,
        period=period,
        generated_at=when(now, school),
        register=register_figures(session, school.id, period),
        losses=loss_figures(session, school, period),
        audits=audit_figures(session, school, period),
        photos=photo_figures(session, school, period),
        resets=reset_figures(session, school.id, period),
        compliance=compliance_figures(session, school.id),
        terms=report_terms(session, school.id),
    )
