"""JSON API for the activity trail."""

from __future__ import annotations

from server.activity import services
from server.activity.schemas import ActivityList, ActivityOut, ActivityQuery, VerifyOut
from server.auth.permissions import Permission, has_permission
from server.extensions import db_session
from server.openapi import current_api_user, endpoint


@endpoint(
    "/activity",
    "GET",
    permission=Permission.ACTIVITY_READ,
    summary="Who did what, newest first",
    tag="activity",
    query=ActivityQuery,
    response=ActivityList,
)
def list_activity(query: ActivityQuery) -> ActivityList:
    user = current_api_user()
    entries = services.recent(
        db_session(),
        user.school_id,
        limit=query.limit,
        before_seq=query.before_seq,
        include_filtering=has_permission(user.role, Permission.FILTERING_MANAGE),
    )
    return ActivityList(
        items=[
            ActivityOut(
                seq=e.seq,
                at=e.at,
                actor=e.actor_label,
                action=e.action,
                target_type=e.target_type,
                target_id=e.target_id,
                details=e.details,
                hash=e.hash,
            )
            for e in entries
        ]
    )


@endpoint(
    "/activity/verify",
    "GET",
    permission=Permission.ACTIVITY_READ,
    summary="Check the trail has not been tampered with",
    tag="activity",
    response=VerifyOut,
)
def verify_activity() -> VerifyOut:
    result = services.verify_chain(db_session())
    return VerifyOut(
        ok=result.ok,
        checked=result.checked,
        first_bad_seq=result.first_bad_seq,
        reason=result.reason,
    )
