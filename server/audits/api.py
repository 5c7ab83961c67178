"""JSON API for every step: start, scan, condition, close, report, photo check, spot check."""

from __future__ import annotations

from flask import current_app

from server.audits import services
from server.audits.models import Audit, PhotoCheck, SpotCheck
from server.audits.schemas import (
    AuditList,
    AuditOut,
    ByHandIn,
    ConditionIn,
    ConditionOut,
    CsvOut,
    FollowUpOut,
    FollowUpsOut,
    HalfTermOut,
    HoldingOut,
    LineOut,
    ListingOut,
    NoteIn,
    PhotoCheckDetail,
    PhotoCheckLineOut,
    PhotoCheckOut,
    PhotoOverview,
    PlaceProgressOut,
    PlaceRowOut,
    ProgressOut,
    RecentScanOut,
    ReportOut,
    ScanIn,
    ScanOut,
    SkippedOut,
    SpotCheckIn,
    SpotCheckList,
    SpotCheckOut,
    SpotItemOut,
    SpotResultIn,
    StartIn,
    TermAuditList,
    TermAuditOut,
    TotalsOut,
    UnknownOut,
    WipeOut,
)
from server.auth.permissions import Permission
from server.db import utcnow
from server.extensions import db_session
from server.openapi import current_api_user, endpoint

TAG = "audits"


def audit_out(audit: Audit) -> AuditOut:
    return AuditOut(
        id=audit.id,
        term=audit.term.name,
        whole_school=audit.whole_school,
        location_ids=list(audit.scope_location_ids or []),
        status=audit.status,
        expected_count=audit.expected_count,
        started_at=audit.started_at,
        closed_at=audit.closed_at,
        signed_off_by=audit.closed_by.name if audit.closed_by else None,
        sign_off_note=audit.sign_off_note,
        countersigned_at=audit.countersigned_at,
        countersigned_by=audit.countersigned_by.name if audit.countersigned_by else None,
        follow_ups_at=audit.follow_ups_at,
        summary={k: int(v) for k, v in (audit.summary or {}).items()},
    )


def _place(place: services.PlaceProgress) -> PlaceProgressOut:
    return PlaceProgressOut(
        location_id=place.location_id,
        name=place.name,
        found=place.found,
        expected=place.expected,
        text=place.text,
    )


@endpoint(
    "/audit-terms",
    "GET",
    permission=Permission.REPORTS_READ,
    summary="Each term's audit: when it is due and whether it is done",
    tag=TAG,
    response=TermAuditList,
)
def audit_terms() -> TermAuditList:
    user = current_api_user()
    today = services.local_today(user.school, utcnow())
    return TermAuditList(
        items=[
            TermAuditOut(
                term_id=t.term.id,
                term=t.term.name,
                starts_on=t.term.starts_on,
                ends_on=t.term.ends_on,
                due_on=t.due_on,
                state=t.state,  # type: ignore[arg-type]
                text=t.text,
                audit_id=next((a.id for a in (t.done, t.open) if a is not None), None),
            )
            for t in services.term_audits(db_session(), user.school_id, today)
        ]
    )


@endpoint(
    "/audits",
    "GET",
    permission=Permission.REPORTS_READ,
    summary="The school's audits, newest first",
    tag=TAG,
    response=AuditList,
)
def list_audits() -> AuditList:
    audits = services.list_audits(db_session(), current_api_user().school_id)
    return AuditList(items=[audit_out(a) for a in audits])


@endpoint(
    "/audits",
    "POST",
    permission=Permission.AUDITS_RUN,
    summary="Start an audit of the whole school or of chosen places",
    tag=TAG,
    body=StartIn,
    response=AuditOut,
    status=201,
)
def start_audit(body: StartIn) -> AuditOut:
    session = db_session()
    audit = services.start_audit(
        session, current_api_user(), term_id=body.term_id, location_ids=body.location_ids
    )
    return audit_out(services.get_audit(session, audit.school_id, audit.id))


@endpoint(
    "/audits/<int:audit_id>/progress",
    "GET",
    permission=Permission.LOANS_USE,
    summary="Live progress per place ('24 / 30 — Year 4 trolley') and the latest scans",
    tag=TAG,
    response=ProgressOut,
)
def audit_progress(audit_id: int) -> ProgressOut:
    found = services.progress(db_session(), current_api_user().school_id, audit_id)
    return ProgressOut(
        audit_id=found.audit.id,
        status=found.audit.status,
        found=found.found,
        expected=found.expected,
        percent=found.percent,
        not_expected=found.not_expected,
        unknown=found.unknown,
        places=[_place(p) for p in found.places],
        recent=[
            RecentScanOut(asset_tag=r.tag, state=r.state, place=r.place, by=r.by, at=r.at)
            for r in found.recent
        ],
    )


@endpoint(
    "/audits/<int:audit_id>/scans",
    "POST",
    permission=Permission.LOANS_USE,
    summary="Record a scanned label or typed tag where you are (several people may scan at once)",
    tag=TAG,
    body=ScanIn,
    response=ScanOut,
)
def scan_for_audit(audit_id: int, body: ScanIn) -> ScanOut:
    result = services.scan(
        db_session(),
        current_api_user(),
        audit_id,
        body.code,
        location_id=body.location_id,
        base_url=str(current_app.extensions["trolley.settings"].base_url),
    )
    return ScanOut(
        outcome=result.outcome,  # type: ignore[arg-type]
        message=result.message,
        tone=result.tone,  # type: ignore[arg-type]
        asset_tag=result.tag,
        model=result.model,
        location=result.location,
        expected=result.expected,
        repeat=result.repeat,
        place=_place(result.place) if result.place else None,
        found=result.found,
        total=result.total,
    )


@endpoint(
    "/audits/<int:audit_id>/items/<asset_tag>/condition",
    "POST",
    permission=Permission.LOANS_USE,
    summary="The condition checklist for a scanned device (any 'false' marks it damaged)",
    tag=TAG,
    body=ConditionIn,
    response=ConditionOut,
)
def record_audit_condition(audit_id: int, asset_tag: str, body: ConditionIn) -> ConditionOut:
    checks = body.model_dump(exclude={"note"})
    item = services.record_condition(
        db_session(), current_api_user(), audit_id, asset_tag, checks, note=body.note
    )
    return ConditionOut(
        asset_tag=item.device.asset_tag,
        case_on=item.case_on,
        screen_intact=item.screen_intact,
        charger=item.charger,
        label_readable=item.label_readable,
        powers_on=item.powers_on,
        damaged=item.damaged,
        problems=item.problems,
        note=item.condition_note,
    )


@endpoint(
    "/audits/<int:audit_id>/close",
    "POST",
    permission=Permission.AUDITS_RUN,
    summary="Sign the audit off: the report is fixed and no more scans are taken",
    tag=TAG,
    body=NoteIn,
    response=AuditOut,
)
def close_audit(audit_id: int, body: NoteIn) -> AuditOut:
    session = db_session()
    audit = services.close_audit(session, current_api_user(), audit_id, note=body.note)
    return audit_out(services.get_audit(session, audit.school_id, audit.id))


@endpoint(
    "/audits/<int:audit_id>/countersign",
    "POST",
    permission=Permission.REPORTS_READ,
    summary="The school business manager countersigns a signed-off audit",
    tag=TAG,
    body=NoteIn,
    response=AuditOut,
)
def countersign_audit(audit_id: int, body: NoteIn) -> AuditOut:
    session = db_session()
    audit = services.countersign(session, current_api_user(), audit_id, note=body.note)
    return audit_out(services.get_audit(session, audit.school_id, audit.id))


@endpoint(
    "/audits/<int:audit_id>/follow-ups",
    "POST",
    permission=Permission.AUDITS_RUN,
    summary="Raise loss reports for the missing and repairs for the damaged",
    tag=TAG,
    response=FollowUpsOut,
)
def raise_audit_follow_ups(audit_id: int) -> FollowUpsOut:
    done = services.raise_follow_ups(db_session(), current_api_user(), audit_id)
    return FollowUpsOut(
        message=done.message,
        losses=[FollowUpOut(asset_tag=t, loss_report_id=i) for t, i in done.losses],
        already_reported=[
            FollowUpOut(asset_tag=t, loss_report_id=i) for t, i in done.already_reported
        ],
        repairs=done.repairs,
        skipped=[SkippedOut(asset_tag=t, reason=why) for t, why in done.skipped],
    )


def _listing(found: services.Listing) -> ListingOut:
    return ListingOut(
        total=found.total,
        items=[
            LineOut(
                asset_tag=line.asset_tag,
                model=line.model,
                register_status=line.status,
                state=line.state,
                expected=line.expected,
                lives_in=line.lives_in,
                found_in=line.found_in,
                scanned_at=line.scanned_at,
                scanned_by=line.scanned_by,
                holder=line.holder,
                last_seen_at=line.last_seen_at,
                online=line.online,
                photo_count=line.photo_count,
                photo_count_at=line.photo_count_at,
                last_scan_at=line.last_scan_at,
                last_scan=line.last_scan_note,
                problems=line.problems,
                condition_note=line.condition_note,
                loss_report_id=line.loss_report_id,
                repair_raised_at=line.repair_raised_at,
            )
            for line in found.lines
        ],
    )


@endpoint(
    "/audits/<int:audit_id>/report",
    "GET",
    permission=Permission.REPORTS_READ,
    summary="The audit's report (live while open, as signed off once closed)",
    tag=TAG,
    response=ReportOut,
)
def audit_report(audit_id: int) -> ReportOut:
    got = services.report(db_session(), current_api_user().school_id, audit_id)
    t = got.totals
    return ReportOut(
        audit=audit_out(got.audit),
        live=got.live,
        generated_at=got.generated_at,
        totals=TotalsOut(
            expected=t.expected,
            verified=t.verified,
            misplaced=t.misplaced,
            found=t.found,
            missing=t.missing,
            damaged=t.damaged,
            condition_checked=t.condition_checked,
            not_expected=t.not_expected,
            unknown=t.unknown,
            where_is_it=t.where_is_it,
            silent=t.silent,
            photos=t.photos,
        ),
        places=[
            PlaceRowOut(
                location_id=p.location_id,
                name=p.name,
                expected=p.expected,
                verified=p.verified,
                misplaced=p.misplaced,
                found=p.found,
                missing=p.missing,
                damaged=p.damaged,
            )
            for p in got.places
        ],
        missing=_listing(got.missing),
        misplaced=_listing(got.misplaced),
        found=_listing(got.found),
        damaged=_listing(got.damaged),
        not_expected=_listing(got.not_expected),
        where_is_it=_listing(got.where_is_it),
        silent=_listing(got.silent),
        photos=_listing(got.photos),
        unknown=[
            UnknownOut(
                tag=u.tag,
                place=u.place,
                first_scanned_at=u.first_scanned_at,
                scanned_at=u.scanned_at,
                scanned_by=u.scanned_by,
                scan_count=u.scan_count,
            )
            for u in got.unknown
        ],
        previous_audit_id=got.previous.id if got.previous else None,
        newly_missing=_listing(got.newly_missing),
        recovered=_listing(got.recovered),
    )


@endpoint(
    "/audits/<int:audit_id>/report/csv",
    "GET",
    permission=Permission.REPORTS_READ,
    summary="The report as CSV text: every device in the audit, then the unknown labels",
    tag=TAG,
    response=CsvOut,
)
def audit_report_csv(audit_id: int) -> CsvOut:
    session = db_session()
    school_id = current_api_user().school_id
    audit = services.get_audit(session, school_id, audit_id)
    return CsvOut(
        filename=services.csv_filename(audit),
        content_type="text/csv",
        csv=services.report_csv(session, school_id, audit_id),
    )


# --- photo checks (P-PHOTO-2) ---------------------------------------------------------------


def photo_check_out(check: PhotoCheck) -> PhotoCheckOut:
    return PhotoCheckOut(
        id=check.id,
        half_term=f"{check.term.name}, {'first' if check.half == 1 else 'second'} half",
        status=check.status,
        started_at=check.started_at,
        started_by=check.started_by.name if check.started_by else None,
        devices_total=check.devices_total,
        never_reported=check.never_reported,
        asked=check.asked,
        holding_before=check.holding_before,
        photos_before=check.photos_before,
        wipe_requested_at=check.wipe_requested_at,
        completed_at=check.completed_at,
        completed_by=check.completed_by.name if check.completed_by else None,
        cleared=check.cleared,
        still_holding=check.still_holding,
        unconfirmed=check.unconfirmed,
        checked_by_hand=check.checked_by_hand,
        photos_after=check.photos_after,
        note=check.note,
    )


def _photo_detail(check: PhotoCheck) -> PhotoCheckDetail:
    lines = services.photo_check_lines(db_session(), check)
    return PhotoCheckDetail(
        **photo_check_out(check).model_dump(),
        devices=[
            PhotoCheckLineOut(
                asset_tag=line.asset_tag,
                model=line.model,
                photos_before=line.photos_before,
                reported_at=line.reported_at,
                enrolled=line.enrolled,
                asked=line.asked,
                wipe=line.command_status,
                photos_after=line.photos_after,
                after_at=line.after_at,
                wiped_by_hand_by=line.by_hand_by,
                hand_at=line.hand_at,
                hand_photos=line.hand_photos,
                hand_note=line.hand_note,
                outcome=line.outcome,  # type: ignore[arg-type]
                needs_hand=line.needs_hand,
            )
            for line in lines
        ],
    )


@endpoint(
    "/photo-checks",
    "GET",
    permission=Permission.REPORTS_READ,
    summary="Devices holding photos now, compliance by half term, and past checks",
    tag=TAG,
    response=PhotoOverview,
)
def photo_checks_overview() -> PhotoOverview:
    session = db_session()
    user = current_api_user()
    now = utcnow()
    picture = services.photo_picture(session, user.school_id, now=now)
    halves = services.photo_compliance(
        session, user.school_id, services.local_today(user.school, now)
    )
    return PhotoOverview(
        devices=picture.total,
        clear=picture.clear,
        holding=picture.holding,
        never_reported=picture.never_reported,
        erased=picture.erased,
        holding_now=[
            HoldingOut(
                asset_tag=h.asset_tag,
                model=h.model,
                lives_in=h.lives_in,
                photo_count=h.photo_count,
                reported_at=h.reported_at,
                age=h.age,
                enrolled=h.enrolled,
            )
            for h in picture.lines
        ],
        half_terms=[
            HalfTermOut(
                term=c.half.term.name,
                half=c.half.half,
                label=c.half.label,
                starts_on=c.half.starts_on,
                ends_on=c.half.ends_on,
                check_id=c.check.id if c.check else None,
                holding_before=c.check.holding_before if c.check else None,
                cleared=c.check.cleared if c.check else None,
                still_holding=c.check.still_holding if c.check else None,
                unconfirmed=c.check.unconfirmed if c.check else None,
            )
            for c in halves
        ],
        checks=[photo_check_out(c) for c in services.list_photo_checks(session, user.school_id)],
    )


@endpoint(
    "/photo-checks",
    "POST",
    permission=Permission.AUDITS_RUN,
    summary="Start this half term's photo check: every device, each enrolled one asked to count",
    tag=TAG,
    response=PhotoCheckDetail,
    status=201,
)
def start_photo_check() -> PhotoCheckDetail:
    session = db_session()
    check = services.start_photo_check(session, current_api_user())
    return _photo_detail(services.get_photo_check(session, check.school_id, check.id))


@endpoint(
    "/photo-checks/<int:check_id>",
    "GET",
    permission=Permission.REPORTS_READ,
    summary="One photo check: who, when, which devices, counts before and after",
    tag=TAG,
    response=PhotoCheckDetail,
)
def get_photo_check(check_id: int) -> PhotoCheckDetail:
    check = services.get_photo_check(db_session(), current_api_user().school_id, check_id)
    return _photo_detail(check)


@endpoint(
    "/photo-checks/<int:check_id>/wipe",
    "POST",
    permission=Permission.AUDITS_RUN,
    summary="Wipe photos on every enrolled device in the check (over 10 needs a second person)",
    tag=TAG,
    response=WipeOut,
)
def wipe_photo_check(check_id: int) -> WipeOut:
    done = services.wipe_photo_check(db_session(), current_api_user(), check_id)
    return WipeOut(
        message=done.message,
        sent=done.sent,
        needs_approval=done.needs_approval,
        wipe_by_hand=done.by_hand,
    )


@endpoint(
    "/photo-checks/<int:check_id>/items/<asset_tag>/by-hand",
    "POST",
    permission=Permission.AUDITS_RUN,
    summary="Record checking a device by hand: the photos left and what the person saw",
    tag=TAG,
    body=ByHandIn,
    response=PhotoCheckDetail,
)
def photo_check_by_hand(check_id: int, asset_tag: str, body: ByHandIn) -> PhotoCheckDetail:
    session = db_session()
    user = current_api_user()
    services.mark_wiped_by_hand(
        session, user, check_id, asset_tag, photos_left=body.photos_left, saw=body.saw
    )
    return _photo_detail(services.get_photo_check(session, user.school_id, check_id))


@endpoint(
    "/photo-checks/<int:check_id>/remind",
    "POST",
    permission=Permission.AUDITS_RUN,
    summary="Remind class teachers now of the devices the check still needs a person for",
    tag=TAG,
    response=PhotoCheckDetail,
)
def remind_photo_check(check_id: int) -> PhotoCheckDetail:
    session = db_session()
    user = current_api_user()
    services.remind_now(session, user, check_id)
    return _photo_detail(services.get_photo_check(session, user.school_id, check_id))


@endpoint(
    "/photo-checks/<int:check_id>/complete",
    "POST",
    permission=Permission.AUDITS_RUN,
    summary="Complete the check: record the counts after, as evidence for governors",
    tag=TAG,
    body=NoteIn,
    response=PhotoCheckDetail,
)
def complete_photo_check(check_id: int, body: NoteIn) -> PhotoCheckDetail:
    session = db_session()
    user = current_api_user()
    services.complete_photo_check(session, user, check_id, note=body.note)
    return _photo_detail(services.get_photo_check(session, user.school_id, check_id))


# --- spot checks (P-PHOTO-3) -----------------------------------------------------------------


def spot_check_out(check: SpotCheck) -> SpotCheckOut:
    session = db_session()
    items = services.spot_check_items(session, check)
    return SpotCheckOut(
        id=check.id,
        seed=str(check.seed),
        sample_size=check.sample_size,
        population_size=check.population_size,
        population_sha256=check.population_sha256,
        drawn_at=check.drawn_at,
        drawn_by=check.drawn_by.name if check.drawn_by else None,
        completed_at=check.completed_at,
        draw_verified=services.verify_draw(session, check),
        devices=[
            SpotItemOut(
                position=item.position,
                asset_tag=item.device.asset_tag,
                model=item.device.model,
                photos_found=item.photos_found,
                other_personal_data=item.other_personal_data,
                note=item.note,
                checked_at=item.checked_at,
                checked_by=item.checked_by.name if item.checked_by else None,
                told=item.notified_user.name if item.notified_user else None,
            )
            for item in items
        ],
    )


@endpoint(
    "/spot-checks",
    "GET",
    permission=Permission.REPORTS_READ,
    summary="The school's GDPR spot checks, newest first",
    tag=TAG,
    response=SpotCheckList,
)
def list_spot_checks() -> SpotCheckList:
    checks = services.list_spot_checks(db_session(), current_api_user().school_id)
    return SpotCheckList(items=[spot_check_out(c) for c in checks])


@endpoint(
    "/spot-checks",
    "POST",
    permission=Permission.SPOTCHECKS_RUN,
    summary="Draw a random sample of devices in service; the seed is recorded",
    tag=TAG,
    body=SpotCheckIn,
    response=SpotCheckOut,
    status=201,
)
def draw_spot_check(body: SpotCheckIn) -> SpotCheckOut:
    check = services.draw_spot_check(
        db_session(), current_api_user(), size=body.size, seed=body.seed
    )
    return spot_check_out(check)


@endpoint(
    "/spot-checks/<int:check_id>",
    "GET",
    permission=Permission.REPORTS_READ,
    summary="One spot check, its devices and whether the draw repeats from its seed",
    tag=TAG,
    response=SpotCheckOut,
)
def get_spot_check(check_id: int) -> SpotCheckOut:
    return spot_check_out(
        services.get_spot_check(db_session(), current_api_user().school_id, check_id)
    )


@endpoint(
    "/spot-checks/<int:check_id>/items/<asset_tag>",
    "POST",
    permission=Permission.SPOTCHECKS_RUN,
    summary="Record what the check found on one sampled device (a finding tells its teacher)",
    tag=TAG,
    body=SpotResultIn,
    response=SpotCheckOut,
)
def record_spot_check_result(check_id: int, asset_tag: str, body: SpotResultIn) -> SpotCheckOut:
    session = db_session()
    user = current_api_user()
    services.record_spot_result(
        session,
        user,
        check_id,
        asset_tag,
        photos_found=body.photos_found,
        other_personal_data=body.other_personal_data,
        note=body.note,
    )
    return spot_check_out(services.get_spot_check(session, user.school_id, check_id))
