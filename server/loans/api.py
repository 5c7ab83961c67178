"""JSON API for loans: the scan page's calls, and loans for other tools."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time

from flask import current_app

from server.auth.permissions import Permission
from server.db import retrying, utcnow
from server.extensions import db_session
from server.loans import services
from server.loans.models import Loan, LoanItem
from server.loans.schemas import (
    ByHandIn,
    CountsOut,
    DecisionIn,
    HomeLoanIn,
    ItemOut,
    LoanIn,
    LoanList,
    LoanOut,
    LoanQuery,
    PlaceRef,
    RefusalOut,
    ReturnIn,
    ScanIn,
    ScanOut,
    StillOut,
    TrolleyOut,
    UndoIn,
    UndoOut,
)
from server.openapi import current_api_user, endpoint

UNDOABLE = frozenset({"out", "returned"})


def _base_url() -> str:
    return str(current_app.extensions["trolley.settings"].base_url)


def counts_out(counts: services.Counts | None) -> CountsOut | None:
    if counts is None:
        return None
    return CountsOut(
        trolley_id=counts.trolley_id,
        trolley=counts.trolley,
        out=counts.out,
        total=counts.total,
        here=counts.here,
        text=counts.text,
    )


def scan_out(result: services.ScanResult) -> ScanOut:
    return ScanOut(
        outcome=result.outcome,  # type: ignore[arg-type]
        message=result.message,
        tone=result.tone,  # type: ignore[arg-type]
        asset_tag=result.asset_tag,
        model=result.model,
        loan_id=result.loan_id,
        warnings=result.warnings,
        wipe=result.wipe,
        counts=counts_out(result.counts),
        idempotency_key=result.key,
        recorded=result.recorded,
        replayed=result.replayed,
        can_undo=bool(result.key and result.recorded and result.outcome in UNDOABLE),
    )


def item_out(item: LoanItem) -> ItemOut:
    state, words = services.wipe_state(item)
    deleted = None
    if state == "done" and item.wipe_command is not None:
        deleted = int(item.wipe_command.result.get("deleted", 0) or 0)
    place = item.return_location
    return ItemOut(
        asset_tag=item.device.asset_tag,
        model=item.device.model,
        state=item.state.value,
        out_at=item.out_at,
        returned_at=item.returned_at,
        returned_to=PlaceRef(id=place.id, name=place.name) if place else None,
        wrong_trolley=item.wrong_trolley,
        condition=item.condition,  # type: ignore[arg-type]
        wipe_state=state,  # type: ignore[arg-type]
        wipe=words,
        photos_deleted=deleted,
        wipe_unconfirmed_at_out=item.wipe_unconfirmed_at_out,
        wipe_outstanding=item.wipe_outstanding,
        checked_by_hand_by=item.wipe_resolved_by.name if item.wipe_resolved_by else None,
        checked_by_hand_at=item.wipe_resolved_at if item.wipe_resolved_by_id else None,
        photos_left=item.wipe_photos_left if item.wipe_resolved_by_id else None,
    )


def loan_out(
    loan: Loan,
    *,
    refused: Sequence[services.Refusal] = (),
    counts: services.Counts | None = None,
    replayed: bool = False,
) -> LoanOut:
    return LoanOut(
        id=loan.id,
        kind=loan.kind.value,
        teacher=loan.teacher.name,
        class_label=loan.class_label,
        trolley=PlaceRef(id=loan.trolley.id, name=loan.trolley.name) if loan.trolley else None,
        started_at=loan.started_at,
        due_at=loan.due_at,
        closed_at=loan.closed_at,
        overdue=loan.closed_at is None and loan.due_at < utcnow(),
        approval=loan.approval.value if loan.approval else None,
        items=[item_out(i) for i in loan.items],
        still_out=[i.device.asset_tag for i in loan.items if i.state.value == "out"],
        refused=[
            RefusalOut(asset_tag=r.asset_tag, code=r.code, message=r.message) for r in refused
        ],
        counts=counts_out(counts),
        replayed=replayed,
    )


def _due(due_at: datetime | None, due_time: time | None) -> datetime | None:
    if due_at is not None or due_time is None:
        return due_at
    return services.due_today_at(db_session(), current_api_user().school_id, due_time)


@endpoint(
    "/scans",
    "POST",
    permission=Permission.LOANS_USE,
    summary="Scan one device out of, or back into, a trolley (idempotent by key)",
    tag="loans",
    body=ScanIn,
    response=ScanOut,
)
def post_scan(body: ScanIn) -> ScanOut:
    session, actor = db_session(), current_api_user()
    due_at = _due(body.due_at, body.due_time)
    result = retrying(
        session,
        lambda: services.scan(
            session,
            actor,
            mode=body.mode,
            trolley_id=body.trolley,
            code=body.code,
            base_url=_base_url(),
            key=body.idempotency_key,
            class_label=body.class_label,
            due_at=due_at,
            transfer=body.transfer,
            condition=body.condition,
            condition_note=body.condition_note,
            put_in_repair=body.put_in_repair,
        ),
    )
    return scan_out(result)


@endpoint(
    "/scans/undo",
    "POST",
    permission=Permission.LOANS_USE,
    summary="Undo your own last take-out or return (within 15 minutes)",
    tag="loans",
    body=UndoIn,
    response=UndoOut,
)
def undo_scan(body: UndoIn) -> UndoOut:
    undone = services.undo_scan(db_session(), current_api_user(), body.idempotency_key)
    return UndoOut(
        message=undone.message, asset_tag=undone.asset_tag, counts=counts_out(undone.counts)
    )


@endpoint(
    "/loans",
    "POST",
    permission=Permission.LOANS_USE,
    summary="Take devices out of a trolley (a list of tags, or all of them)",
    tag="loans",
    body=LoanIn,
    response=LoanOut,
    status=201,
)
def create_loan(body: LoanIn) -> LoanOut:
    batch = services.take_out(
        db_session(),
        current_api_user(),
        trolley_id=body.trolley,
        base_url=_base_url(),
        asset_tags=body.asset_tags,
        take_all=body.all,
        class_label=body.class_label,
        due_at=_due(body.due_at, body.due_time),
        key=body.idempotency_key,
    )
    assert batch.loan is not None
    return loan_out(batch.loan, refused=batch.refused, counts=batch.counts, replayed=batch.replayed)


@endpoint(
    "/loans",
    "GET",
    permission=Permission.LOANS_USE,
    summary="Loans: mine or the school's, open or recent",
    tag="loans",
    query=LoanQuery,
    response=LoanList,
)
def list_loans(query: LoanQuery) -> LoanList:
    user = current_api_user()
    loans = services.list_loans(
        db_session(),
        user.school_id,
        teacher_id=user.id if query.mine else None,
        open_only=query.open,
        limit=query.limit,
    )
    return LoanList(items=[loan_out(loan) for loan in loans])


@endpoint(
    "/loans/<int:loan_id>",
    "GET",
    permission=Permission.LOANS_USE,
    summary="One loan: its devices, their state and photo wipes, and what is still out",
    tag="loans",
    response=LoanOut,
)
def get_loan(loan_id: int) -> LoanOut:
    return loan_out(services.get_loan(db_session(), current_api_user().school_id, loan_id))


@endpoint(
    "/loans/items/<int:item_id>/wiped-by-hand",
    "POST",
    permission=Permission.LOANS_USE,
    summary="Record checking a device's photos by hand when its wipe is not confirmed",
    tag="loans",
    body=ByHandIn,
    response=LoanOut,
)
def wiped_by_hand(item_id: int, body: ByHandIn) -> LoanOut:
    session = db_session()
    user = current_api_user()
    item = services.record_wiped_by_hand(
        session, user, item_id, photos_left=body.photos_left, saw=body.saw
    )
    return loan_out(services.get_loan(session, user.school_id, item.loan_id))


@endpoint(
    "/loans/<int:loan_id>/return",
    "POST",
    permission=Permission.LOANS_USE,
    summary="Put devices of a loan back into a trolley, with their condition",
    tag="loans",
    body=ReturnIn,
    response=LoanOut,
)
def return_loan(loan_id: int, body: ReturnIn) -> LoanOut:
    batch = services.return_devices(
        db_session(),
        current_api_user(),
        loan_id,
        asset_tags=body.asset_tags,
        base_url=_base_url(),
        trolley_id=body.trolley,
        condition=body.condition,
        condition_note=body.condition_note,
        put_in_repair=body.put_in_repair,
        key=body.idempotency_key,
    )
    assert batch.loan is not None
    return loan_out(batch.loan, refused=batch.refused, counts=batch.counts, replayed=batch.replayed)


@endpoint(
    "/loans/trolleys/<int:trolley_id>",
    "GET",
    permission=Permission.LOANS_USE,
    summary="A trolley's counts and the devices from it that are still out",
    tag="loans",
    response=TrolleyOut,
)
def trolley_status(trolley_id: int) -> TrolleyOut:
    session = db_session()
    school_id = current_api_user().school_id
    trolley = services.get_trolley(session, school_id, trolley_id)
    counts = counts_out(services.trolley_counts(session, school_id, trolley))
    assert counts is not None
    out = services.devices_out(session, school_id, trolley_id=trolley.id)
    return TrolleyOut(
        counts=counts,
        still_out=[
            StillOut(
                asset_tag=i.asset_tag,
                holder=i.teacher,
                class_label=i.class_label,
                due_at=i.due_at,
                overdue=i.overdue,
            )
            for i in out
        ],
    )


@endpoint(
    "/loans/home",
    "POST",
    permission=Permission.LOANS_USE,
    summary="Ask for a device to go home until a date (the SBM or headteacher approves)",
    tag="loans",
    body=HomeLoanIn,
    response=LoanOut,
    status=201,
)
def request_home_loan(body: HomeLoanIn) -> LoanOut:
    session = db_session()
    user = current_api_user()
    loan = services.request_home_loan(
        session,
        user,
        asset_tags=body.asset_tags,
        return_by=body.return_by,
        reason=body.reason,
        base_url=_base_url(),
    )
    return loan_out(services.get_loan(session, user.school_id, loan.id))


@endpoint(
    "/loans/home/<int:loan_id>/decision",
    "POST",
    permission=Permission.LOANS_USE,
    summary="Approve or decline a home loan (the SBM or headteacher, not the person asking)",
    tag="loans",
    body=DecisionIn,
    response=LoanOut,
)
def decide_home_loan(loan_id: int, body: DecisionIn) -> LoanOut:
    session = db_session()
    user = current_api_user()
    services.decide_home_loan(session, user, loan_id, approve=body.approve, note=body.note)
    return loan_out(services.get_loan(session, user.school_id, loan_id))
