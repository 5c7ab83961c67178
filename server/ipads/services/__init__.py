"""iPads through Apple's MDM protocol: enrolment profiles, check-in, commands, what they said."""

from __future__ import annotations

from server.ipads.services.credentials import (
    check_certificate,
    check_token_key,
    expiry_warning,
    push_credential,
    remove_credential,
    save_credential,
)
from server.ipads.services.enrolling import (
    CHECKIN_PATH,
    CONNECT_PATH,
    ENROL_PATH,
    EnrolmentLink,
    enrolment_link,
    enrolment_profile,
    enrolments,
    school_topic,
)
from server.ipads.services.protocol import check_in, connect
from server.ipads.services.push import wake, wake_waiting
from server.ipads.services.reading import IpadFacts, ipad_facts

__all__ = [
    "CHECKIN_PATH",
    "CONNECT_PATH",
    "ENROL_PATH",
    "EnrolmentLink",
    "IpadFacts",
    "check_certificate",
    "check_in",
    "check_token_key",
    "connect",
    "enrolment_link",
    "enrolment_profile",
    "enrolments",
    "expiry_warning",
    "ipad_facts",
    "push_credential",
    "remove_credential",
    "save_credential",
    "school_topic",
    "wake",
    "wake_waiting",
]
