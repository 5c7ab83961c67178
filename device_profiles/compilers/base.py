"""What every writer shares: its result type, its warnings, and the registry of targets by name."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from device_profiles.capabilities import capability
from device_profiles.errors import CompileOptionError, UnknownTargetError
from device_profiles.loader import load_profile_file
from device_profiles.model import Profile


@dataclass(frozen=True)
class CompileWarning:
    """Something the target cannot do as the profile asks; never dropped without saying so."""

    setting: str
    message: str
    kind: str = "unsupported"  # unsupported | supervision | lint

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}" if self.setting else self.message


@dataclass(frozen=True)
class CompileResult:
    """One compiled artefact: bytes to hand out, how to label them, and what could not be said."""

    target: str
    content: bytes
    media_type: str
    filename: str
    warnings: list[CompileWarning] = field(default_factory=list)


CompileFunction = Callable[..., CompileResult]


@dataclass(frozen=True)
class Target:
    """A registered writer: its name, output type and the options it accepts (with types)."""

    name: str
    media_type: str
    description: str
    options: Mapping[str, type]
    required_options: frozenset[str]
    compile: CompileFunction


TARGETS: dict[str, Target] = {}


def register(
    name: str,
    *,
    media_type: str,
    description: str,
    options: Mapping[str, type] | None = None,
    required_options: Collection[str] = (),
) -> Callable[[CompileFunction], CompileFunction]:
    """Register a writer under a target name, as Chromium's policy writers are registered."""

    def decorate(function: CompileFunction) -> CompileFunction:
        if name in TARGETS:
            raise ValueError(f"compile target {name!r} is registered twice")
        TARGETS[name] = Target(
            name=name,
            media_type=media_type,
            description=description,
            options=dict(options or {}),
            required_options=frozenset(required_options),
            compile=function,
        )
        return function

    return decorate


def _check_options(target: Target, options: Mapping[str, object]) -> None:
    allowed = sorted(target.options)
    for key, value in options.items():
        if key not in target.options:
            raise CompileOptionError(
                f"the {target.name} target has no option '{key}'", key_path=key, allowed=allowed
            )
        expected = target.options[key]
        # bool is an int in Python; an option wanting a number must not accept True.
        wrong_bool = isinstance(value, bool) and expected is not bool
        if wrong_bool or not isinstance(value, expected):
            raise CompileOptionError(
                f"option '{key}' of the {target.name} target must be {expected.__name__}, "
                f"not {type(value).__name__}",
                key_path=key,
            )
    for key in sorted(target.required_options - set(options)):
        raise CompileOptionError(
            f"the {target.name} target needs the option '{key}'", key_path=key, allowed=allowed
        )


def compile_profile(profile: Profile, target: str, **options: Any) -> CompileResult:
    """Compile `profile` for the target registered as `target` (see TARGETS)."""
    try:
        entry = TARGETS[target]
    except KeyError:
        raise UnknownTargetError(
            f"unknown compile target '{target}'", key_path="target", allowed=sorted(TARGETS)
        ) from None
    _check_options(entry, options)
    return entry.compile(profile, **options)


def compile_file(path: str | os.PathLike[str], target: str, **options: Any) -> CompileResult:
    """Load a profile file, then compile it: the reading happens here, never in a compiler."""
    return compile_profile(load_profile_file(path), target, **options)


def section_of(path: str) -> str:
    """The section part of a key path: 'device' for 'device.camera'."""
    return path.split(".", 1)[0]


def unexpressed(profile: Profile, handled: Collection[str], platform: str) -> list[CompileWarning]:
    """A warning for every setting the profile manages that the writer did not express.

    The words come from the capability table (`device_profiles.capabilities`), the same table the
    kiosk agents report `not_supported` from, so each target says *why* and what to do instead.
    """
    warnings = []
    for path in profile.specified_settings():
        if path in handled:
            continue
        warnings.append(CompileWarning(path, capability(platform, path).text))
    return warnings
