"""The built-in profile library: sensible starting points for a UK primary school."""

from __future__ import annotations

import functools
from importlib import resources

from device_profiles.errors import ProfileError
from device_profiles.loader import load_profile
from device_profiles.model import Profile

LIBRARY_PACKAGE = "device_profiles.library"


@functools.cache
def _texts() -> tuple[tuple[str, str], ...]:
    folder = resources.files(LIBRARY_PACKAGE)
    entries = [
        (item.name.removesuffix(".yaml"), item.read_text(encoding="utf-8"))
        for item in folder.iterdir()
        if item.name.endswith(".yaml")
    ]
    return tuple(sorted(entries))


def builtin_profile_texts() -> dict[str, str]:
    """The library's YAML source by id, for "start from this profile" in the editor."""
    return dict(_texts())


@functools.cache
def _profiles() -> tuple[tuple[str, Profile], ...]:
    profiles = []
    for slug, text in _texts():
        profile = load_profile(text, f"{slug}.yaml")
        if profile.slug != slug:
            # The id is what Apple identifiers and the server key on; it must match the file.
            raise ProfileError(
                f"the id '{profile.slug}' does not match the file name",
                file=f"{slug}.yaml",
                key_path="id",
            )
        profiles.append((slug, profile))
    return tuple(profiles)


def builtin_profiles() -> dict[str, Profile]:
    """Every built-in profile by id (its slug), sorted by id."""
    return dict(_profiles())
