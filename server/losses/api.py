"""JSON API for loss reports: every step from the report to the closed case (P-LOSS-1..3)."""

from __future__ import annotations

from server.auth.permissions import Permission, has_permission
from server.commands.models import Command
from server.extensions import db_session
from server.losses import services
from server.losses.models import LossReport, PossibleLoss
from server.losses.schemas import (
    AssessmentIn,
    AssessmentOut,
    AttemptOut,
    AwarenessIn,
    ClockOut,
    CloseIn,
    CommandRef,
    DecisionIn,
    DecisionOut,
    DeliveryOut,
    DismissIn,
    FactoryResetIn,
    FactsOut,
    IcoReportIn,
    IncidentRecord,
    LogEntryOut,
    LossIn,
    LossList,
    LossLog,
    LossOut,
    LossQuery,
    LossSummary,
    LostModeOut,
    OutcomeOut,
    PossibleLossList,
    PossibleLossOut,
    SettingsIn,
    SettingsOut,
    StepOut,
    TermLogOut,
)
from server.openapi import current_api_user, endpoint

TAG = "losses"


def _clock(the_clock: services.Clock) -> ClockOut:
    return ClockOut(
        aware_at=the_clock.aware_at,
        deadline=the_clock.deadline,
        stage=the_clock.stage,
        running=the_clock.running,
        overdue=the_clock.overdue,
        remaining_seconds=int(the_clock.remaining.total_seconds()),
        stopped_at=the_clock.stopped_at,
        met=the_clock.met,
        text=the_clock.text,
    )


def _summary(loss: LossReport) -> LossSummary:
    return LossSummary(
        id=loss.id,
        asset_tag=loss.device.asset_tag,
        model=loss.device.model,
        kind=loss.kind,
        open=loss.is_open,
        reported_at=loss.reported_at,
        reported_by=loss.reported_by.name if loss.reported_by else None,
        clock=_clock(services.clock(loss)),
    )


def _name(user: object) -> str | None:
    return getattr(user, "name", None)


def _out(found: services.Case) -> LossOut:
    loss = found.loss
    manager = has_permission(current_api_user().role, Permission.LOSSES_MANAGE)
    command = found.lost_mode.command
    return LossOut(
        **_summary(loss).model_dump(),
        last_seen_at=loss.last_seen_at,
        last_seen_where=loss.last_seen_where,
        circumstances=loss.circumstances,
        police_reference=loss.police_reference,
        lost_mode=LostModeOut(
            state=found.lost_mode.state,
            label=found.lost_mode.label,
            command_id=command.id if command else None,
            command_status=command.status if command else None,
        ),
        deliveries=[
            DeliveryOut(
                to=email.to_address,
                subject=email.subject,
                status=email.status.value,
                created_at=email.created_at,
                sent_at=email.sent_at,
                last_error=email.last_error,
                attempts=[AttemptOut(at=a.at, ok=a.ok, error=a.error) for a in email.attempt_log],
            )
            for email in found.deliveries
        ],
        notes=found.notes if manager else [],
        facts=FactsOut(**found.facts.as_dict()) if manager else None,
        assessment=AssessmentOut(
            personal_data=loss.personal_data,
            risk=loss.risk,
            risk_notes=loss.risk_notes,
            assessed_at=loss.assessed_at,
            assessed_by=_name(loss.assessed_by),
            facts=loss.facts,
        )
        if manager and loss.risk is not None
        else None,
        decision=DecisionOut(
            decision=loss.decision,
            justification=loss.justification,
            decided_at=loss.decided_at,
            decided_by=_name(loss.decided_by),
            ico_reference=loss.ico_reference,
            ico_reported_at=loss.ico_reported_at,
        )
        if manager and loss.decision is not None
        else None,
        outcome=OutcomeOut(
            outcome=loss.outcome,
            reference=loss.outcome_reference,
            note=loss.outcome_note,
            closed_at=loss.closed_at,
            closed_by=_name(loss.closed_by),
        )
        if loss.outcome is not None
        else None,
    )


def _loss(loss_id: int) -> LossReport:
    return services.get_loss(db_session(), current_api_user(), loss_id)


def _fresh(loss: LossReport) -> LossOut:
    return _out(services.case(db_session(), loss))


def _command(command: Command) -> CommandRef:
    return CommandRef(id=command.id, type=command.type, status=command.status)


@endpoint(
    "/losses",
    "GET",
    permission=Permission.LOSSES_REPORT,
    summary="Loss reports: every loss for the headteacher, your own reports otherwise",
    tag=TAG,
    query=LossQuery,
    response=LossList,
)
def losses_list(query: LossQuery) -> LossList:
    found = services.list_losses(db_session(), current_api_user(), open_only=query.open_only)
    return LossList(items=[_summary(loss) for loss in found])


@endpoint(
    "/losses",
    "POST",
    permission=Permission.LOSSES_REPORT,
    summary="Report a lost or stolen device (tells the headteacher, queues lost mode)",
    tag=TAG,
    body=LossIn,
    response=LossOut,
    status=201,
)
def losses_report(body: LossIn) -> LossOut:
    loss = services.report_loss(db_session(), current_api_user(), **body.model_dump())
    return _fresh(loss)


def _offer(offer: PossibleLoss) -> PossibleLossOut:
    return PossibleLossOut(
        id=offer.id,
        asset_tag=offer.device.asset_tag,
        source=offer.source,
        why=offer.source.label,
        raised_at=offer.raised_at,
        last_seen_at=offer.last_seen_at,
        last_seen_where=offer.last_seen_where,
        circumstances=offer.circumstances,
    )


@endpoint(
    "/losses/possible",
    "GET",
    permission=Permission.LOSSES_MANAGE,
    summary="Devices possibly lost: not back by next morning, or missing at an audit's close",
    tag=TAG,
    response=PossibleLossList,
)
def possible_list() -> PossibleLossList:
    found = services.possible_losses(db_session(), current_api_user().school_id)
    return PossibleLossList(items=[_offer(offer) for offer in found])


@endpoint(
    "/losses/possible/<int:offer_id>/report",
    "POST",
    permission=Permission.LOSSES_MANAGE,
    summary="Report a possibly lost device lost, in one action, with what Trolley knows",
    tag=TAG,
    response=LossOut,
    status=201,
)
def possible_report(offer_id: int) -> LossOut:
    return _fresh(services.report_possible_loss(db_session(), current_api_user(), offer_id))


@endpoint(
    "/losses/possible/<int:offer_id>/dismiss",
    "POST",
    permission=Permission.LOSSES_MANAGE,
    summary="Say a possibly lost device is not lost, and why",
    tag=TAG,
    body=DismissIn,
    response=PossibleLossOut,
)
def possible_dismiss(offer_id: int, body: DismissIn) -> PossibleLossOut:
    offer = services.dismiss_possible_loss(
        db_session(), current_api_user(), offer_id, note=body.note
    )
    return _offer(offer)


@endpoint(
    "/losses/<int:loss_id>",
    "GET",
    permission=Permission.LOSSES_REPORT,
    summary="One loss report: clock, lost mode, deliveries, assessment and decision",
    tag=TAG,
    response=LossOut,
)
def losses_get(loss_id: int) -> LossOut:
    return _fresh(_loss(loss_id))


@endpoint(
    "/losses/<int:loss_id>/assessment",
    "POST",
    permission=Permission.LOSSES_MANAGE,
    summary="Record the breach assessment (Trolley's facts are captured with it)",
    tag=TAG,
    body=AssessmentIn,
    response=LossOut,
)
def losses_assess(loss_id: int, body: AssessmentIn) -> LossOut:
    loss = services.assess(db_session(), current_api_user(), _loss(loss_id), **body.model_dump())
    return _fresh(loss)


@endpoint(
    "/losses/<int:loss_id>/awareness",
    "POST",
    permission=Permission.LOSSES_MANAGE,
    summary="Change when the school became aware (the start of the 72 hours), with a reason",
    tag=TAG,
    body=AwarenessIn,
    response=LossOut,
)
def losses_change_awareness(loss_id: int, body: AwarenessIn) -> LossOut:
    loss = services.change_awareness(
        db_session(), current_api_user(), _loss(loss_id), body.aware_at, body.reason
    )
    return _fresh(loss)


@endpoint(
    "/losses/<int:loss_id>/decision",
    "POST",
    permission=Permission.LOSSES_MANAGE,
    summary="Decide whether to report to the ICO, with a written justification",
    tag=TAG,
    body=DecisionIn,
    response=LossOut,
)
def losses_decide(loss_id: int, body: DecisionIn) -> LossOut:
    loss = services.decide(db_session(), current_api_user(), _loss(loss_id), **body.model_dump())
    return _fresh(loss)


@endpoint(
    "/losses/<int:loss_id>/ico-report",
    "POST",
    permission=Permission.LOSSES_MANAGE,
    summary="Record the ICO's reference once reported (stops the clock)",
    tag=TAG,
    body=IcoReportIn,
    response=LossOut,
)
def losses_record_ico_report(loss_id: int, body: IcoReportIn) -> LossOut:
    loss = services.record_ico_report(
        db_session(),
        current_api_user(),
        _loss(loss_id),
        body.reference,
        reported_at=body.reported_at,
    )
    return _fresh(loss)


@endpoint(
    "/losses/<int:loss_id>/lost-mode",
    "POST",
    permission=Permission.LOSSES_MANAGE,
    summary="Ask for lost mode again (after enrolment, or if the last try expired)",
    tag=TAG,
    response=CommandRef,
    status=201,
)
def losses_retry_lost_mode(loss_id: int) -> CommandRef:
    return _command(services.retry_lost_mode(db_session(), current_api_user(), _loss(loss_id)))


@endpoint(
    "/losses/<int:loss_id>/factory-reset",
    "POST",
    permission=Permission.LOSSES_MANAGE,
    summary="Ask for a remote factory reset (a second person must approve it)",
    tag=TAG,
    body=FactoryResetIn,
    response=CommandRef,
    status=201,
)
def losses_factory_reset(loss_id: int, body: FactoryResetIn) -> CommandRef:
    command = services.request_factory_reset(
        db_session(), current_api_user(), _loss(loss_id), body.reason
    )
    return _command(command)


@endpoint(
    "/losses/<int:loss_id>/wipe-photos",
    "POST",
    permission=Permission.LOSSES_MANAGE,
    summary="Wipe the photos of a device that has been found",
    tag=TAG,
    response=CommandRef,
    status=201,
)
def losses_wipe_photos(loss_id: int) -> CommandRef:
    return _command(services.wipe_photos(db_session(), current_api_user(), _loss(loss_id)))


@endpoint(
    "/losses/<int:loss_id>/close",
    "POST",
    permission=Permission.LOSSES_MANAGE,
    summary="Close the case as found, stolen or written off (needs the ICO decision)",
    tag=TAG,
    body=CloseIn,
    response=LossOut,
)
def losses_close(loss_id: int, body: CloseIn) -> LossOut:
    loss = services.close(
        db_session(),
        current_api_user(),
        _loss(loss_id),
        body.outcome,
        reference=body.reference,
        note=body.note,
    )
    return _fresh(loss)


@endpoint(
    "/losses/<int:loss_id>/record",
    "GET",
    permission=Permission.LOSSES_MANAGE,
    summary="The incident record: every step with its time",
    tag=TAG,
    response=IncidentRecord,
)
def losses_incident_record(loss_id: int) -> IncidentRecord:
    session = db_session()
    found = services.case(session, _loss(loss_id))
    steps = services.incident_record(session, found)
    return IncidentRecord(
        loss=_out(found),
        steps=[StepOut(at=s.at, what=s.what, who=s.who, kind=s.kind) for s in steps],
    )


@endpoint(
    "/losses/log",
    "GET",
    permission=Permission.REPORTS_READ,
    summary="The anonymised loss log per term, for governors",
    tag=TAG,
    response=LossLog,
)
def losses_log() -> LossLog:
    terms = services.term_log(db_session(), current_api_user().school_id)
    return LossLog(
        terms=[
            TermLogOut(
                term=t.name,
                entries=[
                    LogEntryOut(
                        reported_on=e.reported_on,
                        model=e.model,
                        kind=e.kind,
                        outcome=e.outcome,
                        ico=e.ico,
                        on_time=e.on_time,
                    )
                    for e in t.entries
                ],
            )
            for t in terms
        ]
    )


@endpoint(
    "/losses/settings",
    "GET",
    permission=Permission.LOSSES_MANAGE,
    summary="The school's loss settings (the data protection officer's e-mail)",
    tag=TAG,
    response=SettingsOut,
)
def losses_get_settings() -> SettingsOut:
    return SettingsOut(dpo_email=services.dpo_email(db_session(), current_api_user().school_id))


@endpoint(
    "/losses/settings",
    "PUT",
    permission=Permission.LOSSES_MANAGE,
    summary="Set or clear the data protection officer's e-mail",
    tag=TAG,
    body=SettingsIn,
    response=SettingsOut,
)
def losses_update_settings(body: SettingsIn) -> SettingsOut:
    saved = services.update_settings(db_session(), current_api_user(), dpo_email=body.dpo_email)
    return SettingsOut(dpo_email=saved.dpo_email)
