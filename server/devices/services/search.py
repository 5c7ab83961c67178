"""Register search by words: every word must match the tag, serial, make, model, place or holder.

"Apple", "lenovo" and "iPad 9th generation" all find "Apple iPad (9th generation)". A device's
own words are indexed where each database is quick at finding part of a word: on SQLite an FTS5
table with the trigram tokenizer, kept in step by triggers on `devices`; on PostgreSQL a pg_trgm
GIN index on the same words. Places and people are few, so each word looks them up directly and
a move or a new holder is found the moment it is saved. Both are built by the migration
2110_register_search, outside the models (the migrations test leaves them out by these names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, text, union
from sqlalchemy.orm import Session

from server.auth.models import User
from server.devices.models import Device
from server.schools.models import Location

# The FTS5 table (and its shadow tables) and its triggers on SQLite; the index on PostgreSQL.
SQLITE_TABLE = "device_words"
SQLITE_TRIGGERS = ("device_words_insert", "device_words_update", "device_words_delete")
POSTGRES_INDEX = "ix_devices_words_trgm"
# Installed in `public` by the migration; a restore installs them before the dump goes in.
POSTGRES_EXTENSIONS = ("pg_trgm",)
# A trigram needs three characters: shorter words are looked for without the index.
TRIGRAM = 3
MAX_WORDS = 8
# Up to this many matching ids are listed in the query rather than selected inside it.
FEW = 2_000


def device_words() -> Any:
    """A device's own searchable words as one lower-case string (the PostgreSQL index's
    expression: the query must repeat it exactly for the index to be used)."""
    space = literal(" ")
    return func.lower(
        Device.asset_tag + space + Device.serial + space + Device.make + space + Device.model
    )


def _escape_like(word: str) -> str:
    return "%" + word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _like(session: Session, column: Any, pattern: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "sqlite":
        return column.like(pattern, escape="\\")  # type: ignore[no-any-return]
    return func.lower(column).like(pattern, escape="\\")


def _ids(session: Session, query: Select[Any]) -> list[int]:
    return list(session.scalars(query))


@dataclass(frozen=True)
class Words:
    """The search's condition; `listed` when few devices can match, their ids listed in it."""

    condition: ColumnElement[bool]
    listed: bool = False


def _among(session: Session, ids: Any) -> Words:
    """`Device.id` among the ids `ids` selects: listed when they are few, so SQLite reads just
    those devices; a subquery when they are many, so it reads the page in tag order and stops."""
    few = list(session.scalars(ids.limit(FEW + 1)))
    if len(few) <= FEW:
        return Words(Device.id.in_(few), listed=True)
    return Words(Device.id.in_(ids))


def _fts(words: list[str]) -> Any:
    """Device ids whose own words contain every one of `words` (each three characters or more)."""
    # Quoted FTS5 strings: any character is ordinary inside one, and a quote is doubled.
    phrases = " AND ".join('"' + word.replace('"', '""') + '"' for word in words)
    return (
        select(text("rowid"))
        .select_from(text(SQLITE_TABLE))
        .where(text(f"{SQLITE_TABLE} MATCH :phrases").bindparams(phrases=phrases))
    )


def _elsewhere(session: Session, school_id: int, word: str) -> list[ColumnElement[bool]]:
    """Devices whose home, current place or holder matches `word` (a school has hundreds of
    places and people, so the few that match are found first)."""
    pattern = _escape_like(word)
    places = _ids(
        session,
        select(Location.id).where(
            Location.school_id == school_id, _like(session, Location.name, pattern)
        ),
    )
    people = _ids(
        session,
        select(User.id).where(
            User.school_id == school_id,
            or_(_like(session, User.name, pattern), _like(session, User.email, pattern)),
        ),
    )
    found: list[ColumnElement[bool]] = []
    if places:
        found += [Device.home_location_id.in_(places), Device.current_location_id.in_(places)]
    if people:
        found.append(Device.holder_id.in_(people))
    return found


def words_condition(session: Session, school_id: int, query: str) -> Words | None:
    """Every word of `query` found in a device's words, its home or current place, or its
    holder's name or e-mail; None when there are no words."""
    words = list(dict.fromkeys(query.lower().split()))[:MAX_WORDS]
    if not words:
        return None
    elsewhere = {word: _elsewhere(session, school_id, word) for word in words}
    if session.get_bind().dialect.name != "sqlite":
        return Words(
            and_(
                *(
                    or_(device_words().like(_escape_like(word), escape="\\"), *elsewhere[word])
                    for word in words
                )
            )
        )
    # SQLite: words found only in devices' own words go to FTS5 together (it intersects them
    # itself); a word also naming a place or a person is one set of ids of its own.
    own_only = [w for w in words if not elsewhere[w] and len(w) >= TRIGRAM]
    each = [_among(session, _fts(own_only))] if own_only else []
    for word in words:
        if word in own_only:
            continue
        if len(word) < TRIGRAM:
            # Too short for a trigram: checked on each device the other words find.
            pattern = _escape_like(word)
            columns = (Device.asset_tag, Device.serial, Device.make, Device.model)
            own = [_like(session, column, pattern) for column in columns]
            each.append(Words(or_(*own, *elsewhere[word])))
            continue
        parts = [_fts([word])] + [
            select(Device.id).where(Device.school_id == school_id, condition)
            for condition in elsewhere[word]
        ]
        each.append(_among(session, union(*parts) if len(parts) > 1 else parts[0]))
    return Words(and_(*(w.condition for w in each)), listed=any(w.listed for w in each))
