"""One writer per output format, registered by target name (apple, chrome, chromeos, kiosk)."""

from device_profiles.compilers import apple, chrome, chromeos, kiosk
from device_profiles.compilers.apple_lint import LintIssue, lint_mobileconfig
from device_profiles.compilers.base import (
    TARGETS,
    CompileResult,
    CompileWarning,
    Target,
    compile_file,
    compile_profile,
    register,
)

__all__ = [
    "TARGETS",
    "CompileResult",
    "CompileWarning",
    "LintIssue",
    "Target",
    "apple",
    "chrome",
    "chromeos",
    "compile_file",
    "compile_profile",
    "kiosk",
    "lint_mobileconfig",
    "register",
]
