"""What changed between two versions of a profile, setting by setting, for the version history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from device_profiles.model import Profile
from device_profiles.serialise import profile_to_dict


@dataclass(frozen=True)
class Change:
    """One setting whose value differs; None means "not set" on that side."""

    path: str
    old: Any
    new: Any

    @property
    def added(self) -> tuple[Any, ...]:
        """For list settings, the entries only in the new version, in its order."""
        if not isinstance(self.new, list):
            return ()
        old = self.old if isinstance(self.old, list) else []
        return tuple(item for item in self.new if item not in old)

    @property
    def removed(self) -> tuple[Any, ...]:
        """For list settings, the entries only in the old version, in its order."""
        if not isinstance(self.old, list):
            return ()
        new = self.new if isinstance(self.new, list) else []
        return tuple(item for item in self.old if item not in new)

    def describe(self) -> str:
        """One line for the history page."""
        if self.added or self.removed:
            parts = []
            if self.added:
                parts.append("added " + ", ".join(map(_show, self.added)))
            if self.removed:
                parts.append("removed " + ", ".join(map(_show, self.removed)))
            return f"{self.path}: {'; '.join(parts)}"
        return f"{self.path}: {_show(self.old)} → {_show(self.new)}"


def _show(value: Any) -> str:
    if value is None:
        return "not set"
    if isinstance(value, dict):
        return str(value.get("url", value))
    return str(value)


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    """Sections become dotted paths; lists stay whole so additions and removals can be shown."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else key, out)
    else:
        out[path] = value


def diff_profiles(old: Profile, new: Profile) -> list[Change]:
    """Every setting that differs between `old` and `new`, in the language's key order."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    _flatten(profile_to_dict(old, include_unset=True), "", before)
    _flatten(profile_to_dict(new, include_unset=True), "", after)
    paths = list(before) + [p for p in after if p not in before]
    return [
        Change(path, before.get(path), after.get(path))
        for path in paths
        if before.get(path) != after.get(path)
    ]
