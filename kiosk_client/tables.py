"""TOML tables as declarative typed models: unknown keys refused, every problem named by setting."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from msgspec import inspect

from kiosk_client.errors import ConfigError

__all__ = ["Table", "convert", "invalid", "problems", "read_toml"]

T = TypeVar("T", bound=msgspec.Struct)


class Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A TOML table whose keys are all known: an unknown one is usually a typo."""


_WORDS: dict[type[inspect.Type], str] = {
    inspect.BoolType: "true or false",
    inspect.IntType: "a whole number",
    inspect.FloatType: "a number",
    inspect.StrType: "a string",
    inspect.VarTupleType: "a list of non-empty strings",
    inspect.StructType: "a table",
}


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict, or `ConfigError` naming the file and the problem."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from exc


def invalid(path: Path, found: list[str]) -> ConfigError:
    """One error listing every problem in a file."""
    return ConfigError(f"{path} is invalid:\n  " + "\n  ".join(found))


def convert(raw: dict[str, Any], model: type[T], found: list[str]) -> T | None:
    """`raw` as `model`, or None with every problem in it added to `found`."""
    try:
        return msgspec.convert(raw, type=model)
    except msgspec.ValidationError as exc:
        # Conversion stops at the first problem; someone fixing a file wants all of them at once.
        found += problems(raw, model) or [str(exc)]
        return None


def problems(table: dict[str, Any], model: type[msgspec.Struct], prefix: str = "") -> list[str]:
    """Every problem in a table as `section.key: what is wrong`, each setting checked alone."""
    fields = {f.name: f for f in msgspec.structs.fields(model)}
    found = [f"{prefix}{key}: unknown setting" for key in table if key not in fields]
    for name, spec in fields.items():
        setting, value = prefix + name, table.get(name)
        info = _declared(inspect.type_info(spec.type))
        if name not in table:
            found += [f"{setting}: missing"] if spec.required else []
        elif isinstance(info, inspect.StructType) and isinstance(value, dict):
            found += problems(value, info.cls, f"{setting}.")
        else:
            try:
                msgspec.convert(value, type=spec.type)
            except msgspec.ValidationError as exc:
                found.append(f"{setting}: {_must(info, str(exc))}")
    return found


def _declared(info: inspect.Type) -> inspect.Type:
    """An optional setting's own type."""
    if isinstance(info, inspect.UnionType):
        return next(t for t in info.types if not isinstance(t, inspect.NoneType))
    return info


def _must(info: inspect.Type, detail: str) -> str:
    """What a setting must be, worded from its declared type and the conversion's complaint."""
    if isinstance(info, inspect.IntType | inspect.FloatType) and re.search(r"[<>]=", detail):
        return f"must be between {info.ge} and {info.le}"
    if isinstance(info, inspect.EnumType):
        return "must be one of " + ", ".join(str(member.value) for member in info.cls)
    return "must be " + _WORDS.get(type(info), "valid")
