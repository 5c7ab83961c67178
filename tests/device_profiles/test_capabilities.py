"""The capability table: the one source of what each platform can enforce (P-PROFILE-1)."""

from __future__ import annotations

import pytest

from device_profiles import builtin_profiles, compile_profile
from device_profiles.capabilities import (
    PLATFORMS,
    TARGET_PLATFORMS,
    Support,
    cannot_enforce,
    capability,
)
from tests.device_profiles.test_golden import OPTIONS


def test_the_chrome_warning_about_auto_lock_is_the_tables_and_names_its_condition() -> None:
    """The Chrome writer no longer says the Linux adapter enforces auto-lock unconditionally."""
    profile = builtin_profiles()["ks2-ipad"]
    (warning,) = (
        w
        for w in compile_profile(profile, "chrome").warnings
        if w.setting == "device.auto_lock_minutes"
    )
    assert warning.message == capability("chrome", "device.auto_lock_minutes").text
    linux = capability("linux", "device.auto_lock_minutes")
    assert linux.support is Support.YES and linux.needs
    assert "reports" in warning.message


@pytest.mark.parametrize("target", sorted(TARGET_PLATFORMS))
@pytest.mark.parametrize("slug", sorted(builtin_profiles()))
def test_every_compiler_warning_comes_from_the_capability_table(slug: str, target: str) -> None:
    """Each writer warns in the table's words, about every setting the table says it cannot do."""
    platform = TARGET_PLATFORMS[target]
    profile = builtin_profiles()[slug]
    result = compile_profile(profile, target, **OPTIONS[target])
    warned = {w.setting: w.message for w in result.warnings if w.kind == "unsupported"}
    for setting, message in warned.items():
        if not setting:
            continue
        entry = capability(platform, setting)
        assert entry.support is not Support.YES, f"{target} warns about {setting}"
        assert message == entry.text or entry.support is Support.PARTLY
    for setting in profile.specified_settings():
        if capability(platform, setting).support is Support.NO:
            assert setting in warned, f"{target} says nothing about {setting}"


def test_cannot_enforce_lists_what_a_platform_cannot_do() -> None:
    profile = builtin_profiles()["ks2-ipad"]
    linux = dict(cannot_enforce(profile, "linux"))
    assert "passcode.required" in linux and "device.airdrop" in linux
    assert "device.bluetooth_changes" not in linux
    assert set(PLATFORMS) >= {"apple", "chrome", "chromeos", "linux", "simulated"}
