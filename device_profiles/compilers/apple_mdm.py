"""The iPad enrolment profile: the `com.apple.mdm` payload and the device's identity (§1.1)."""

from __future__ import annotations

import plistlib
from dataclasses import dataclass
from typing import Any

from device_profiles.compilers.apple import DEFAULT_IDENTIFIER_PREFIX, payload_uuid
from device_profiles.compilers.apple_lint import lint_mobileconfig
from device_profiles.errors import LintError

# What Trolley may do on the iPad, as Apple's AccessRights bits: inspect (1) and install or
# remove (2) profiles, lock and clear the passcode (4), erase (8), query device information (16),
# list apps (128), restrictions (256) and security (512) queries, change settings (1024).
ACCESS_RIGHTS = 1 | 2 | 4 | 8 | 16 | 128 | 256 | 512 | 1024


@dataclass(frozen=True)
class MdmEnrolment:
    """What one enrolment profile says: where to check in, the push topic and the identity."""

    school_slug: str
    school_name: str
    server_url: str  # the command endpoint
    checkin_url: str
    topic: str
    identity_p12: bytes
    identity_password: str
    identifier_prefix: str = DEFAULT_IDENTIFIER_PREFIX


def build_enrolment_profile(enrolment: MdmEnrolment) -> bytes:
    """The unsigned `.mobileconfig` (XML, sorted keys); the same inputs give the same bytes."""
    top_id = f"{enrolment.identifier_prefix}.{enrolment.school_slug}.mdm"
    identity_id = f"{top_id}.identity"
    identity_uuid = payload_uuid(identity_id)
    content: list[dict[str, Any]] = [
        {
            "PayloadType": "com.apple.security.pkcs12",
            "PayloadVersion": 1,
            "PayloadIdentifier": identity_id,
            "PayloadUUID": identity_uuid,
            "PayloadDisplayName": "Trolley device identity",
            "PayloadContent": enrolment.identity_p12,
            "Password": enrolment.identity_password,
            "PayloadCertificateFileName": "trolley-device.p12",
        },
        {
            "PayloadType": "com.apple.mdm",
            "PayloadVersion": 1,
            "PayloadIdentifier": f"{top_id}.management",
            "PayloadUUID": payload_uuid(f"{top_id}.management"),
            "PayloadDisplayName": "Trolley device management",
            "ServerURL": enrolment.server_url,
            "CheckInURL": enrolment.checkin_url,
            "Topic": enrolment.topic,
            "IdentityCertificateUUID": identity_uuid,
            "AccessRights": ACCESS_RIGHTS,
            "SignMessage": True,
            "CheckOutWhenRemoved": True,
            "ServerCapabilities": ["com.apple.mdm.per-user-connections"],
        },
    ]
    top: dict[str, Any] = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": top_id,
        "PayloadUUID": payload_uuid(top_id),
        "PayloadDisplayName": f"{enrolment.school_name}: Trolley",
        "PayloadDescription": "Lets the school manage this iPad with Trolley.",
        "PayloadOrganization": enrolment.school_name,
        "PayloadContent": content,
    }
    errors = [i for i in lint_mobileconfig(top) if i.severity == "error"]
    if errors:
        raise LintError(errors[0].message, key_path=errors[0].path)
    return plistlib.dumps(top, fmt=plistlib.FMT_XML, sort_keys=True)
