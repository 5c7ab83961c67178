"""The one exception hierarchy of the device_profiles package."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class ProfileError(Exception):
    """A problem with a profile, located as precisely as we can: file, line, key path."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key_path: str | None = None,
        allowed: Sequence[str] = (),
        suggestion: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key_path = key_path
        self.allowed: tuple[str, ...] = tuple(allowed)
        self.suggestion = suggestion
        super().__init__(self.describe())

    def location(self) -> str:
        """`file:line` (either part may be missing), or an empty string."""
        if self.file is None and self.line is None:
            return ""
        if self.line is None:
            return str(self.file)
        return f"{self.file or '<profile>'}:{self.line}"

    def describe(self) -> str:
        """One human-readable line: where, which key, what is wrong, what is allowed."""
        parts = [p for p in (self.location(), self.key_path) if p]
        text = ": ".join([*parts, self.message])
        if self.suggestion is not None or self.allowed:
            text = text.rstrip(".")
        if self.suggestion is not None:
            text += f" (did you mean '{self.suggestion}'?)"
        if self.allowed:
            text += "."
            text += f" Allowed: {', '.join(self.allowed)}."
        return text

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly form, so the server can show errors next to the editor lines."""
        return {
            "file": self.file,
            "line": self.line,
            "key_path": self.key_path,
            "message": self.message,
            "allowed": list(self.allowed),
            "suggestion": self.suggestion,
        }


class ProfileValidationError(ProfileError):
    """Every problem found in one profile; the loader collects them all before raising."""

    def __init__(self, errors: Iterable[ProfileError], *, file: str | None = None) -> None:
        self.errors: tuple[ProfileError, ...] = tuple(errors)
        count = len(self.errors)
        noun = "problem" if count == 1 else "problems"
        summary = f"{count} {noun} in the profile"
        super().__init__(summary, file=file)

    def describe(self) -> str:
        """The summary line followed by one line per problem."""
        head = f"{self.file}: {self.message}" if self.file else self.message
        return "\n".join([head, *(f"  {e.describe()}" for e in self.errors)])


class UnknownTargetError(ProfileError):
    """A compile target name that is not registered."""


class CompileOptionError(ProfileError):
    """A compiler option that is missing, unknown or of the wrong kind."""


class SigningError(ProfileError):
    """A profile could not be signed: key and certificate disagree, or a certificate is invalid."""


class LintError(ProfileError):
    """A generated Apple profile breaks a schema rule; always a bug or an impossible setting."""
