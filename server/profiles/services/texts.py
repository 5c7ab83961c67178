"""Profile texts: the built-in starting points, blank starts, and a profile's id and name."""

from __future__ import annotations

import json
import re

import yaml

from device_profiles import builtin_profile_texts, builtin_profiles
from device_profiles.urls import MAX_SLUG_LENGTH
from server.errors import ValidationFailed

BLANK_TEXT = """format: trolley-profile/1
id: {slug}
name: {name}
description: {description}

device:
  auto_lock_minutes: 10   # lock after 10 minutes idle
"""


def slugify(name: str) -> str:
    """A profile id from its name: lower-case words joined by hyphens."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:MAX_SLUG_LENGTH].rstrip("-")


def _scalar(text: str) -> str:
    """`text` as a YAML value: plain when it reads back unchanged, else double-quoted."""
    try:
        if yaml.safe_load(f"k: {text}") == {"k": text}:
            return text
    except yaml.YAMLError:
        pass
    # JSON strings are valid YAML double-quoted scalars, so any name is written safely.
    return json.dumps(text, ensure_ascii=False)


_COMMENT = re.compile(r"(?:^|(?<=\s))#(.*)$")
_REQUIREMENT_ID = re.compile(r"\bP-[A-Z]+-\d+\b:?")


def staff_text(yaml_text: str) -> str:
    """A profile's text as staff are shown it: no requirement ids in its comments."""
    lines = []
    for line in yaml_text.split("\n"):
        comment = _COMMENT.search(line)
        if comment and _REQUIREMENT_ID.search(comment.group(1)):
            rest = " ".join(_REQUIREMENT_ID.sub("", comment.group(1)).split()).strip(" :;,")
            head = line[: comment.start()].rstrip()
            line = f"{head}  # {rest}" if head and rest else head or (f"# {rest}" if rest else "")
        lines.append(line)
    return "\n".join(lines)


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.rstrip() + "\n"


def _set_top_level(text: str, key: str, value: str) -> str:
    """Replace a top-level `key:` line, or add it after the `format:` line (or at the top)."""
    line = f"{key}: {value}"
    pattern = re.compile(rf"^{key}:[^\n]*$", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda _m: line, text, count=1)
    fmt = re.compile(r"^format:[^\n]*$", re.MULTILINE).search(text)
    if fmt:
        return text[: fmt.end()] + "\n" + line + text[fmt.end() :]
    return line + "\n" + text


def with_identity(yaml_text: str, name: str) -> str:
    """The text with its top-level `id` and `name` set from `name`.

    A copy of a library profile thus gets its own id, and so its own Apple identifiers.
    """
    text = _set_top_level(_normalise(yaml_text), "id", slugify(name))
    return _set_top_level(text, "name", _scalar(name))


def library() -> dict[str, str]:
    """Built-in starting points by id, with their names: {"ks2-ipad": "KS2 iPad", ...}."""
    return {slug: profile.name for slug, profile in builtin_profiles().items()}


def starting_text(name: str, start_from: str | None = None) -> str:
    """The first text of a new profile: a library profile renamed, or a blank one."""
    if not start_from:
        return BLANK_TEXT.format(
            slug=slugify(name), name=_scalar(name), description=_scalar(f"{name}.")
        )
    texts = builtin_profile_texts()
    if start_from not in texts:
        raise ValidationFailed(
            f"There is no built-in profile called {start_from!r}. "
            f"Choose one of: {', '.join(sorted(texts))}."
        )
    return with_identity(texts[start_from], name)


def _check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > 120:
        raise ValidationFailed("Give the profile a name of up to 120 characters.")
    if not slugify(name):
        raise ValidationFailed("Use some letters or digits in the profile's name.")
    return name
