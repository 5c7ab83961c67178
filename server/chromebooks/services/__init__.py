"""Chromebooks through Google: linking the domain, syncing devices, commands and Chrome policy."""

from __future__ import annotations

from server.chromebooks.models import GoogleDevice
from server.chromebooks.services.delivery import Delivered, deliver, plan
from server.chromebooks.services.google import (
    DIRECTORY_SCOPE,
    POLICY_SCOPE,
    SCOPES,
    GoogleApi,
    GoogleError,
    ServiceKey,
)
from server.chromebooks.services.link import (
    check_link,
    get_link,
    parse_networks,
    remove_link,
    require_link,
    save_link,
)
from server.chromebooks.services.policies import (
    check_policies,
    push_profiles,
    settings_by_unit,
    settings_for_device,
)
from server.chromebooks.services.policy_outbox import push_changed
from server.chromebooks.services.reading import (
    AuditFlags,
    Overview,
    add_to_register,
    audit_flags,
    google_facts,
    overview,
)
from server.chromebooks.services.sync import SyncResult, missing_from_google, sync_devices

__all__ = [
    "DIRECTORY_SCOPE",
    "POLICY_SCOPE",
    "SCOPES",
    "AuditFlags",
    "Delivered",
    "GoogleApi",
    "GoogleDevice",
    "GoogleError",
    "Overview",
    "ServiceKey",
    "SyncResult",
    "add_to_register",
    "audit_flags",
    "check_link",
    "check_policies",
    "deliver",
    "get_link",
    "google_facts",
    "missing_from_google",
    "overview",
    "parse_networks",
    "plan",
    "push_changed",
    "push_profiles",
    "remove_link",
    "require_link",
    "save_link",
    "settings_by_unit",
    "settings_for_device",
    "sync_devices",
]
