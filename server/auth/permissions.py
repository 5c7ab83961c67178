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
    LOANS_USE = "loans:use"
    COMMANDS_SEND = "commands:send"
    COMMANDS_APPROVE = "commands:approve"
    FILTERING_MANAGE = "filtering:manage"
    AUDITS_RUN = "audits:run"
    SPOTCHECKS_RUN = "spotchecks:run"
    LOSSES_REPORT = "losses:report"
    LOSSES_MANAGE = "losses:manage"
    LEAVERS_MANAGE = "leavers:manage"
    ESCROW_READ = "escrow:read"
    PERSONAL_DEVICES = "personal_devices:manage"


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
            # P-PHOTO-3: random checks "by the Computing Lead and the SBM".
            P.SPOTCHECKS_RUN,
        }
    ),
    Role.HEADTEACHER: frozenset(
        _STAFF
        | {
            P.USERS_READ,
            P.REPORTS_READ,
            P.LOSSES_MANAGE,
            P.LEAVERS_MANAGE,
            P.ACTIVITY_READ,
            P.COMMANDS_APPROVE,
            P.PERSONAL_DEVICES,
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
        }
    ),
    Role.GOVERNOR: frozenset({P.ACCOUNT_USE, P.REPORTS_READ}),
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
        }
    ),
}

# Roles that must use a second factor (P-SEC-1).
TOTP_REQUIRED = frozenset({Role.ADMIN, Role.TECHNICIAN, Role.HEADTEACHER})


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
