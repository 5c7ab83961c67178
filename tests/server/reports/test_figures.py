"""The governors' figures, each counted from records built here, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from server.audits.models import (
    Audit,
    AuditItem,
    AuditState,
    AuditStatus,
    PhotoCheck,
    PhotoCheckStatus,
    SpotCheck,
    SpotCheckItem,
)
from server.auth.models import Role, User
from server.commands.models import CommandStatus
from server.devices.models import Device, DeviceStatus, Platform
from server.errors import NotFound
from server.loans.models import ItemState, Loan, LoanItem
from server.losses.models import Decision, LossKind, LossReport, Outcome
from server.profiles.models import AppliedState, DeviceAppliedSetting, DeviceDesiredState
from server.reports import services
from server.schools.models import School, Term
from server.schools.services import terms as school_terms
from tests.server.reports.conftest import command

Maker = Callable[..., Device]


def _period(session: Session, school: School, term: Term, now: datetime) -> services.figures.Period:
    return services.period_of(session, school, term.id, now)


def test_the_period_is_the_term_and_its_holiday_and_defaults_to_the_term_under_way(
    session: Session, school: School, other_school: School, term: Term, in_term: Callable
) -> None:
    terms = school_terms(session, school.id)
    default = services.period_of(session, school, None, in_term(20))
    assert default.term.id == term.id
    assert default.first_day == term.starts_on
    assert default.last_day == terms[1].starts_on - timedelta(days=1)
    # In the holiday after the term, the report is still that term's.
    holiday = services.period_of(
        session, school, None, in_term((term.ends_on - term.starts_on).days + 3)
    )
    assert holiday.term.id == term.id
    with pytest.raises(NotFound):
        services.period_of(session, school, school_terms(session, other_school.id)[0].id, in_term())


def test_register_counts_devices_by_kind_and_status_and_those_added(
    session: Session,
    school: School,
    other_school: School,
    term: Term,
    in_term: Callable,
    make_device: Maker,
) -> None:
    """P-REG-1: the register by kind and status; disposed devices leave the total."""
    make_device(created_at=in_term(-30))
    make_device(platform=Platform.CHROMEOS, created_at=in_term(5))
    make_device(platform=Platform.CHROMEOS, status=DeviceStatus.LOST, created_at=in_term(6))
    make_device(status=DeviceStatus.DISPOSED, created_at=in_term(-60))
    make_device(in_school=other_school, created_at=in_term(5))
    figures = services.register_figures(
        session, school.id, _period(session, school, term, in_term())
    )
    assert figures.total == 3
    kinds = {line.label: line.value for line in figures.by_platform}
    assert kinds == {"iPads": 1, "Chromebooks": 2, "Linux kiosks": 0, "Other devices": 0}
    statuses = {line.label: line.value for line in figures.by_status}
    assert statuses["In service"] == 2 and statuses["Lost"] == 1 and statuses["Disposed"] == 1
    assert figures.added == 2


def _loss(
    device: Device, at: datetime, kind: LossKind = LossKind.LOST, **fields: object
) -> LossReport:
    return LossReport(
        school_id=device.school_id,
        device_id=device.id,
        kind=kind,
        reported_at=at,
        aware_at=at,
        last_seen_at=at - timedelta(hours=2),
        last_seen_where="Year 4 classroom",
        circumstances="Left on the field by Jamie in Year 4",
        **fields,
    )


def test_losses_their_outcomes_and_the_heads_named_decisions(
    session: Session,
    school: School,
    other_school: School,
    term: Term,
    in_term: Callable,
    make_device: Maker,
    named: Callable[..., User],
) -> None:
    """P-LOSS-1, P-LOSS-2: each loss in the term, its outcome and who decided on the ICO."""
    head = named(Role.HEADTEACHER, "Dr Amara Okafor")
    devices = [make_device() for _ in range(5)]
    session.add_all(
        [
            _loss(
                devices[0],
                in_term(3),
                decision=Decision.NO_REPORT,
                decided_by_id=head.id,
                decided_at=in_term(4),
                outcome=Outcome.FOUND,
                closed_at=in_term(5),
            ),
            _loss(
                devices[1],
                in_term(8),
                LossKind.STOLEN,
                decision=Decision.REPORT,
                decided_by_id=head.id,
                decided_at=in_term(8, hours=5),
                outcome=Outcome.WRITTEN_OFF,
                closed_at=in_term(30),
            ),
            _loss(devices[2], in_term(40)),
            _loss(devices[3], in_term(-20)),  # before the term
            _loss(make_device(in_school=other_school), in_term(9)),
        ]
    )
    session.commit()
    figures = services.loss_figures(session, school, _period(session, school, term, in_term()))
    assert (figures.reported, figures.lost, figures.stolen) == (3, 2, 1)
    assert (figures.found, figures.written_off, figures.still_open, figures.ico_reported) == (
        1,
        1,
        1,
        1,
    )
    assert [c.decided_by for c in figures.cases] == ["Dr Amara Okafor", "Dr Amara Okafor", "—"]
    assert [c.decision for c in figures.cases] == [
        "Not reportable to the ICO",
        "Report to the ICO",
        "Not decided yet",
    ]
    assert [c.outcome for c in figures.cases] == ["Found", "Written off", "Still open"]
    # Nothing about the pupils involved: the circumstances stay in the case.
    assert "Jamie" not in repr(figures)


def test_audits_of_the_term_with_found_percent_and_who_signed_off(
    session: Session,
    school: School,
    term: Term,
    in_term: Callable,
    make_device: Maker,
    named: Callable[..., User],
) -> None:
    """P-AUDIT-1: the termly audit, found out of expected, signed off by a named person."""
    lead = named(Role.COMPUTING_LEAD, "Sam Reid")
    later = school_terms(session, school.id)[1]
    audit = Audit(
        school_id=school.id,
        term_id=term.id,
        status=AuditStatus.CLOSED,
        started_at=in_term(60),
        closed_at=in_term(62),
        closed_by_id=lead.id,
    )
    other_term = Audit(school_id=school.id, term_id=later.id, status=AuditStatus.CLOSED)
    session.add_all([audit, other_term])
    session.flush()
    states = [AuditState.VERIFIED, AuditState.MISPLACED, AuditState.FOUND, AuditState.MISSING]
    for state in states:
        device = make_device()
        session.add(
            AuditItem(
                school_id=school.id,
                audit_id=audit.id,
                device_id=device.id,
                asset_tag=device.asset_tag,
                state=state,
            )
        )
    stray = make_device()
    session.add(
        AuditItem(
            school_id=school.id,
            audit_id=audit.id,
            device_id=stray.id,
            asset_tag=stray.asset_tag,
            expected=False,
            state=AuditState.MISPLACED,
        )
    )
    session.add(
        AuditItem(
            school_id=school.id,
            audit_id=other_term.id,
            device_id=stray.id,
            asset_tag=stray.asset_tag,
            state=AuditState.MISSING,
        )
    )
    session.commit()
    figures = services.audit_figures(session, school, _period(session, school, term, in_term()))
    assert figures.whole_school_signed_off
    [line] = figures.audits
    assert (line.expected, line.found, line.missing, line.found_percent) == (4, 3, 1, 75)
    assert line.signed_off_by == "Sam Reid"


def test_no_audit_is_said_plainly(
    session: Session, school: School, term: Term, in_term: Callable
) -> None:
    """P-AUDIT-1: a term with no audit signed off says so."""
    session.add(Audit(school_id=school.id, term_id=term.id, status=AuditStatus.OPEN))
    session.commit()
    figures = services.audit_figures(session, school, _period(session, school, term, in_term()))
    assert not figures.whole_school_signed_off
    assert figures.audits[0].state == "Under way"
    assert figures.audits[0].percent_text == "nothing expected"


def test_photo_wipes_at_return_by_who_confirmed_them(
    session: Session,
    school: School,
    term: Term,
    in_term: Callable,
    make_device: Maker,
    named: Callable[..., User],
) -> None:
    """P-PHOTO-1: a wipe is confirmed by the device's report or a named person, else not known."""
    teacher = named(Role.TEACHER, "Priya Shah")
    loan = Loan(school_id=school.id, teacher_id=teacher.id, due_at=in_term(10, hours=1))
    session.add(loan)
    session.flush()
    back = in_term(10)

    def returned(
        at: datetime = back,
        wipe: CommandStatus | None = None,
        done_after: timedelta | None = None,
        **fields: object,
    ) -> LoanItem:
        device = make_device()
        item = LoanItem(
            school_id=school.id,
            loan_id=loan.id,
            device_id=device.id,
            state=ItemState.RETURNED,
            out_at=at - timedelta(hours=1),
            returned_at=at,
            **fields,
        )
        if wipe is not None:
            cmd = command(
                device,
                "wipe_photos",
                wipe,
                at,
                finished_at=at + done_after if done_after is not None else None,
            )
            session.add(cmd)
            session.flush()
            item.wipe_command_id = cmd.id
        session.add(item)
        return item

    returned(wipe=CommandStatus.DONE, done_after=timedelta(minutes=10))
    returned(wipe=CommandStatus.DONE, done_after=timedelta(hours=3))
    # The wipe expired, but the device later showed no photos: the device confirmed it.
    returned(
        wipe=CommandStatus.EXPIRED, wipe_resolved_at=in_term(11), wipe_resolution="Confirmed later"
    )
    returned(
        wipe=CommandStatus.FAILED,
        wipe_resolved_at=in_term(11),
        wipe_resolved_by_id=teacher.id,
        wipe_photos_left=0,
    )
    returned(wipe=CommandStatus.FAILED, wipe_outstanding=True)
    returned(wipe_note="not enrolled: wipe by hand", wipe_outstanding=True)
    # Photos still on it after a check by hand: not confirmed gone.
    returned(
        wipe=CommandStatus.FAILED,
        wipe_resolved_at=in_term(11),
        wipe_resolved_by_id=teacher.id,
        wipe_photos_left=4,
        wipe_outstanding=True,
    )
    returned(at=in_term(-3), wipe=CommandStatus.DONE, done_after=timedelta(minutes=1))
    session.add(
        LoanItem(school_id=school.id, loan_id=loan.id, device_id=make_device().id, out_at=back)
    )
    session.commit()
    figures = services.photo_figures(session, school, _period(session, school, term, in_term()))
    assert figures.returns == 7
    assert (figures.by_device, figures.by_device_within_hour) == (3, 1)
    assert figures.by_hand == 1
    assert [(p.label, p.value) for p in figures.by_hand_people] == [("Priya Shah", 1)]
    assert figures.not_known == 3


def test_half_termly_and_spot_checks(
    session: Session,
    school: School,
    term: Term,
    in_term: Callable,
    make_device: Maker,
    named: Callable[..., User],
) -> None:
    """P-PHOTO-2, P-PHOTO-3: each half term's check or 'not done'; spot checks and findings."""
    lead = named(Role.COMPUTING_LEAD, "Sam Reid")
    session.add(
        PhotoCheck(
            school_id=school.id,
            term_id=term.id,
            half=1,
            status=PhotoCheckStatus.COMPLETE,
            devices_total=30,
            completed_at=in_term(40),
            completed_by_id=lead.id,
            cleared=26,
            still_holding=1,
            unconfirmed=3,
            checked_by_hand=2,
        )
    )
    session.add(
        PhotoCheck(school_id=school.id, term_id=term.id, half=2, status=PhotoCheckStatus.OPEN)
    )
    spot = SpotCheck(
        school_id=school.id,
        seed=7,
        sample_size=3,
        population_size=30,
        population=[],
        population_sha256="0" * 64,
        drawn_at=in_term(20),
    )
    session.add(spot)
    session.flush()
    found = [True, False, None]
    for n, photos in enumerate(found):
        session.add(
            SpotCheckItem(
                school_id=school.id,
                spot_check_id=spot.id,
                device_id=make_device().id,
                position=n,
                photos_found=photos,
                checked_at=in_term(21) if photos is not None else None,
            )
        )
    session.commit()
    figures = services.photo_figures(session, school, _period(session, school, term, in_term()))
    first, second = figures.halves
    assert first.done and (first.devices, first.cleared, first.unconfirmed) == (30, 26, 3)
    assert first.completed_by == "Sam Reid"
    assert not second.done and second.cleared is None
    assert (figures.spot_checks, figures.spot_devices_checked, figures.spot_findings) == (1, 2, 1)


def test_factory_resets_count_as_confirmed_only_when_the_device_said_so(
    session: Session, school: School, term: Term, in_term: Callable, make_device: Maker
) -> None:
    """P-LEAVE-1: a factory reset is confirmed by the device, not by being asked for."""
    device = make_device()
    for status in (
        CommandStatus.DONE,
        CommandStatus.DONE,
        CommandStatus.PENDING_APPROVAL,
        CommandStatus.SENT,
        CommandStatus.EXPIRED,
        CommandStatus.REJECTED,
    ):
        session.add(command(device, "factory_reset", status, in_term(12)))
    session.add(command(device, "factory_reset", CommandStatus.DONE, in_term(-2)))
    session.add(command(device, "wipe_photos", CommandStatus.DONE, in_term(12)))
    session.commit()
    figures = services.reset_figures(session, school.id, _period(session, school, term, in_term()))
    assert (figures.asked, figures.confirmed, figures.waiting, figures.not_done) == (6, 2, 2, 2)


def _desired(device: Device, sha: str, settings: list[str]) -> DeviceDesiredState:
    return DeviceDesiredState(
        device_id=device.id,
        school_id=device.school_id,
        sha256=sha,
        document={"settings": settings},
        settings_count=len(settings),
    )


def _applied(
    device: Device, sha: str, setting: str, state: AppliedState, at: datetime
) -> DeviceAppliedSetting:
    return DeviceAppliedSetting(
        device_id=device.id,
        school_id=device.school_id,
        setting=setting,
        state=state,
        profile_sha256=sha,
        since=at,
    )


def test_compliance_by_setting_is_what_devices_reported(
    session: Session, school: School, in_term: Callable, make_device: Maker
) -> None:
    """P-PROFILE-1: per setting, applied / not applied / not known, never read off the profile."""
    a, b, c, gone = (
        make_device(),
        make_device(),
        make_device(),
        make_device(status=DeviceStatus.DISPOSED),
    )
    settings = ["device.camera", "web_filter.mode"]
    session.add_all(
        [
            _desired(a, "a" * 64, settings),
            _desired(b, "a" * 64, settings),
            _desired(c, "b" * 64, ["device.camera"]),
            _desired(gone, "a" * 64, settings),
        ]
    )
    at = in_term()
    session.add_all(
        [
            _applied(a, "a" * 64, "device.camera", AppliedState.ENFORCED, at),
            _applied(a, "a" * 64, "web_filter.mode", AppliedState.FAILED, at),
            # b's report is about an older profile: what it enforces now is not known.
            _applied(b, "0" * 64, "device.camera", AppliedState.ENFORCED, at),
            _applied(c, "b" * 64, "device.camera", AppliedState.NOT_SUPPORTED, at),
            _applied(gone, "a" * 64, "device.camera", AppliedState.ENFORCED, at),
        ]
    )
    session.commit()
    figures = services.compliance_figures(session, school.id)
    rows = {s.label: (s.applied, s.not_applied, s.not_known) for s in figures.settings}
    assert rows == {"Camera": (1, 1, 1), "Web filter": (0, 1, 1)}
    assert figures.devices_with_profile == 3
    protection = {line.label: line.value for line in figures.protection}
    assert protection["Not known"] == 3


def test_the_whole_report_is_dated_in_school_time(
    session: Session, school: School, term: Term, in_term: Callable, make_device: Maker
) -> None:
    """The generated-at time is on the school's clocks (UK summer time in September)."""
    make_device()
    report = services.governors_report(session, school, now=in_term(3))
    assert report.period.term.id == term.id
    assert report.generated_at.startswith("11:00 on ")
    assert report.title == f"Governors' report: {term.name}"
    assert [t.id for t in report.terms][-1] == term.id  # latest first: the autumn is last
