"""Trolley device profiles: one profile language, one model, a writer per device platform.

Typical use (the server, the CLI and the kiosk client call only these names):

    profile = load_profile(yaml_text, "ks1-ipad.yaml")      # raises ProfileValidationError
    result = compile_profile(profile, "apple", identifier_prefix="uk.sch.oakfield")
    signed = sign_mobileconfig(result.content, cert, key, chain, now=now)
"""

from device_profiles.builtin import builtin_profile_texts, builtin_profiles
from device_profiles.compilers import (
    TARGETS,
    CompileResult,
    CompileWarning,
    LintIssue,
    Target,
    compile_file,
    compile_profile,
    lint_mobileconfig,
    register,
)
from device_profiles.compilers.apple import payload_uuid
from device_profiles.compilers.kiosk import KIOSK_FORMAT, kiosk_document_sha256
from device_profiles.diff import Change, diff_profiles
from device_profiles.errors import (
    CompileOptionError,
    LintError,
    ProfileError,
    ProfileValidationError,
    SigningError,
    UnknownTargetError,
)
from device_profiles.loader import PROFILE_KEYS, load_profile, load_profile_file
from device_profiles.model import (
    DEFAULT_AUTO_LOCK_MINUTES,
    FORMAT,
    Access,
    AllowedSite,
    AppSettings,
    BrowserSettings,
    DeviceSettings,
    Extensions,
    ExtensionsMode,
    FilterMode,
    Kiosk,
    Passcode,
    Profile,
    SafeSearch,
    WebFilter,
    YouTubeMode,
)
from device_profiles.overrides import with_filter_exceptions
from device_profiles.serialise import (
    canonical_json,
    dump_profile,
    profile_sha256,
    profile_to_dict,
)
from device_profiles.signing import SigningIdentity, load_signing_identity, sign_mobileconfig

__all__ = [
    "DEFAULT_AUTO_LOCK_MINUTES",
    "FORMAT",
    "KIOSK_FORMAT",
    "PROFILE_KEYS",
    "TARGETS",
    "Access",
    "AllowedSite",
    "AppSettings",
    "BrowserSettings",
    "Change",
    "CompileOptionError",
    "CompileResult",
    "CompileWarning",
    "DeviceSettings",
    "Extensions",
    "ExtensionsMode",
    "FilterMode",
    "Kiosk",
    "LintError",
    "LintIssue",
    "Passcode",
    "Profile",
    "ProfileError",
    "ProfileValidationError",
    "SafeSearch",
    "SigningError",
    "SigningIdentity",
    "Target",
    "UnknownTargetError",
    "WebFilter",
    "YouTubeMode",
    "builtin_profile_texts",
    "builtin_profiles",
    "canonical_json",
    "compile_file",
    "compile_profile",
    "diff_profiles",
    "dump_profile",
    "kiosk_document_sha256",
    "lint_mobileconfig",
    "load_profile",
    "load_profile_file",
    "load_signing_identity",
    "payload_uuid",
    "profile_sha256",
    "profile_to_dict",
    "register",
    "sign_mobileconfig",
    "with_filter_exceptions",
]
