"""Permissions (resource:action), the one role→permission map, and the route decorator."""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from server.auth.models import Role

F = TypeVar("F", bound=Callable[..., Any])
PERMISSION_ATTR = "_trolley_permission"
PUBLIC = "public"


class Permission(enum.StrEnum):
    ACCOUNT_USE = "account:use"
    DEVICES_READ = "devices:read"
    DEVICES_WRITE = "devices:write"
    DEVICES_ENROL = "devices:enrol"
    LOCATIONS_READ = "locations:read"
    LOCATIONS_WRITE = "locations:write"
    LOCATIONS_APPROVE = "locations:approve"
    USERS_READ = "users:read"
    USERS_MANAGE = "users:manage"
    ACTIVITY_READ = "activity:read"
    SCHOOL_MANAGE = "school:manage"
    TERMS_MANAGE = "terms:manage"
    REPORTS_READ = "reports:read"
    # The termly governors' report: the head, the governors and the SBM who prepares it.
    GOVERNORS_REPORT = "governors_report:read"
    LOANS_USE = "loans:use"
    COMMANDS_SEND = "commands:send"
    COMMANDS_APPROVE = "commands:approve"
    COMMANDS_FREEZE = "commands:freeze"
    FILTERING_MANAGE = "filtering:manage"
    AUDITS_RUN = "audits:run"
    SPOTCHECKS_RUN = "spotchecks:run"
    LOSSES_REPORT = "losses:report"
    LOSSES_MANAGE = "losses:manage"
    LEAVERS_MANAGE = "leavers:manage"
    ESCROW_READ = "escrow:read"
    PERSONAL_DEVICES = "personal_devices:manage"
    PHOTOS_AUTHORISE = "personal_photos:authorise"
    GOOGLE_MANAGE = "google:manage"
    APPLE_MANAGE = "apple:manage"


P = Permission
_STAFF = {P.ACCOUNT_USE, P.DEVICES_READ, P.LOCATIONS_READ, P.LOANS_USE, P.LOSSES_REPORT}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.TEACHER: frozenset(_STAFF),
    Role.COMPUTING_LEAD: frozenset(
        _STAFF
        | {P.AUDITS_RUN, P.SPOTCHECKS_RUN, P.FILTERING_MANAGE, P.COMMANDS_SEND, P.REPORTS_READ}
    ),
    Role.SBM: frozenset(
        _STAFF
        | {
            P.DEVICES_WRITE,
            P.LOCATIONS_WRITE,
            P.LOCATIONS_APPROVE,
            P.USERS_READ,
            P.REPORTS_READ,
            P.LEAVERS_MANAGE,
            P.ACTIVITY_READ,
            P.PERSONAL_DEVICES,
            P.TERMS_MANAGE,
            P.GOVERNORS_REPORT,
            # P-PHOTO-3: random checks "by the Computing Lead and the SBM".
            P.SPOTCHECKS_RUN,
            P.GOOGLE_MANAGE,
            P.APPLE_MANAGE,
        }
    ),
    Role.HEADTEACHER: frozenset(
        _STAFF
        | {
            P.USERS_READ,
            P.REPORTS_READ,
            P.GOVERNORS_REPORT,
            P.LOSSES_MANAGE,
            P.LEAVERS_MANAGE,
            P.ACTIVITY_READ,
            P.COMMANDS_APPROVE,
            P.COMMANDS_FREEZE,
            P.PERSONAL_DEVICES,
            # P-PHOTO-4: photo use on a member of staff's own device is the head's to allow.
            P.PHOTOS_AUTHORISE,
        }
    ),
    Role.TECHNICIAN: frozenset(
        _STAFF
        | {
            P.DEVICES_WRITE,
            P.DEVICES_ENROL,
            P.LOCATIONS_WRITE,
            P.COMMANDS_SEND,
            P.COMMANDS_APPROVE,
            P.ESCROW_READ,
            P.REPORTS_READ,
            P.GOOGLE_MANAGE,
            P.APPLE_MANAGE,
        }
    ),
    Role.GOVERNOR: frozenset({P.ACCOUNT_USE, P.REPORTS_READ, P.GOVERNORS_REPORT}),
    Role.ADMIN: frozenset(
        {
            P.ACCOUNT_USE,
            P.DEVICES_READ,
            P.LOCATIONS_READ,
            P.LOCATIONS_WRITE,
            P.USERS_READ,
            P.USERS_MANAGE,
            P.ACTIVITY_READ,
            P.SCHOOL_MANAGE,
            P.TERMS_MANAGE,
            # Two administrators together may freeze destructive commands (P-SEC-1).
            P.COMMANDS_FREEZE,
        }
    ),
}

# Roles that must use a second factor (P-SEC-1): every role that sends or approves commands,
# manages people, or reads personal data beyond a teacher's own (the SBM, the computing lead).
TOTP_REQUIRED = frozenset(
    {Role.ADMIN, Role.TECHNICIAN, Role.HEADTEACHER, Role.SBM, Role.COMPUTING_LEAD}
)


def has_permission(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def declare(permission: Permission | str) -> Callable[[F], F]:
    """Mark a view with the permission it needs; create_app refuses undeclared routes."""

    def mark(view: F) -> F:
        setattr(view, PERMISSION_ATTR, permission)
        return view

    return mark


def declared_permission(view: Callable[..., Any]) -> Permission | str | None:
    return getattr(view, PERMISSION_ATTR, None)


def requires(permission: Permission) -> Callable[[F], F]:
    """An HTML view that needs a logged-in user holding `permission`."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from flask_login import current_user

            from server.errors import Forbidden
            from server.extensions import login_manager

            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not has_permission(current_user.role, permission):
                raise Forbidden("Your role does not allow this. Ask your school's administrator.")
            return view(*args, **kwargs)

        return declare(permission)(wrapper)  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    """A route anyone may reach (log-in page, static files, the OpenAPI document)."""
    return declare(PUBLIC)(view)
