"""Checks on a restored database: whole, current, its trail unbroken, its secrets opening."""

from __future__ import annotations

from dataclasses import dataclass

from alembic.util import CommandError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from server.activity.services import verify_chain
from server.crypto import SecretBox, SecretUnreadable
from server.db import Database, head_revisions, migrate, schema_revisions
from server.enrolment.models import SchoolAuthority, ServerKey
from server.escrow.models import CredentialEscrow


@dataclass(frozen=True)
class Check:
    """One thing a restore or drill checked, and what it found."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def lines(self) -> list[str]:
        return [f"{'ok  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}" for c in self.checks]


def bring_schema_up_to_date(db: Database) -> Check:
    """Run the migrations, so a backup from an older Trolley serves with this one."""
    before = schema_revisions(db.engine)
    try:
        migrate(db.engine)
    except (CommandError, SQLAlchemyError) as exc:  # an unknown revision: a newer backup
        return Check("schema", False, f"could not be brought up to date ({exc})")
    moved = "already current" if before == head_revisions() else "brought up to date"
    return Check("schema", True, moved)


def check_restored(db: Database, keys: tuple[str, ...]) -> list[Check]:
    """Whether the restored data is intact and its sealed secrets open with the backup's keys."""
    box = SecretBox(keys)
    with db.session(write=False) as session:
        result = verify_chain(session)
        trail = (
            Check("activity trail", True, f"hash chain intact ({result.checked} entries)")
            if result.ok
            else Check("activity trail", False, f"entry {result.first_bad_seq}: {result.reason}")
        )
        return [trail, *_secrets_open(session, box)]


def _secrets_open(session: Session, box: SecretBox) -> list[Check]:
    """The server's signing keys, every school's CA, and the newest escrowed secret, opened."""
    found: list[Check] = []
    samples = {
        "server signing keys": [k.private_key_sealed for k in session.scalars(select(ServerKey))],
        "school certificate authorities": [
            a.ca_pem_sealed for a in session.scalars(select(SchoolAuthority))
        ],
        "escrowed PINs (the newest)": [
            e.secret_sealed
            for e in session.scalars(
                select(CredentialEscrow)
                .where(CredentialEscrow.secret_sealed.is_not(None))
                .order_by(CredentialEscrow.deposited_at.desc())
                .limit(1)
            )
            if e.secret_sealed is not None
        ],
    }
    for name, sealed in samples.items():
        try:
            for token in sealed:
                box.open(token)  # opened to prove the key works; never shown or kept
        except SecretUnreadable:
            found.append(Check(name, False, "do not open with the backup's data keys"))
            continue
        found.append(Check(name, True, f"{len(sealed)} open" if sealed else "none to open"))
    return found
