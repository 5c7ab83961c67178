"""No e-mail carries personal data: every kind says what, which device or case, when, and links."""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.config import Settings
from server.db import alembic_config, make_engine, migrate, utcnow
from server.devices.models import Device
from server.errors import ValidationFailed
from server.notifications.models import EmailMessage, EmailStatus, Notification
from server.notifications.services import (
    EMAIL_KINDS,
    build_mime,
    notify,
    notify_address,
    send_due_email,
)
from server.schools.models import School
from server.schools.services import create_school
from tests.server.notifications.conftest import BASE_URL, MailServer

ROOT = Path(__file__).resolve().parents[3]
# 10:42 in London in March (GMT) and 11:42 in June (BST): the e-mail gives the school's time.
WINTER = datetime(2026, 3, 3, 10, 42, tzinfo=UTC)
SUMMER = datetime(2026, 6, 9, 10, 42, tzinfo=UTC)
PRIVATE = (
    "Daisy Hughes",
    "EHCP",
    "07700 900123",
    "42 Acacia Avenue",
    "Mrs Patel's class",
)
STAFF_NAME = "Amira Khan"
TITLE = f"{STAFF_NAME} says Daisy Hughes (EHCP) has it"
BODY = "Daisy Hughes (EHCP), 42 Acacia Avenue; her mum is on 07700 900123. Mrs Patel's class."
# The functions a domain tells people through, and the argument that carries the kind.
NOTIFIERS = {
    "notify",
    "notify_roles",
    "notify_address",
    "_notify",
    "_tell",
    "_tell_heads",
    "_alert",
}


def _text(message: EmailMessage, settings: Settings) -> str:
    """The e-mail as its reader sees it: headers and every part, decoded."""
    mime = build_mime(message, settings)
    parts = [f"{key}: {value}" for key, value in mime.items()]
    for part in mime.walk():
        if not part.is_multipart():
            content = part.get_content()
            parts.append(content.decode() if isinstance(content, bytes) else content)
    return "\n".join(parts)


@pytest.fixture
def tagged(make_device: Callable[..., Device]) -> Device:
    return make_device()


@pytest.mark.parametrize("kind", sorted(EMAIL_KINDS))
def test_every_kind_of_email_says_what_which_when_and_where_and_nothing_typed(
    session: Session,
    make_user: Callable[..., User],
    tagged: Device,
    mail_settings: Settings,
    kind: str,
) -> None:
    """P-SEC-5: whatever a notice's title and body say, its e-mail gives only the kind of event,
    the asset tag, the case number, the time on the school's clock and a link into Trolley."""
    person = make_user(Role.HEADTEACHER)
    person.name = STAFF_NAME
    case_id = 4711 if EMAIL_KINDS[kind].case else None
    [notice] = notify(
        session,
        school_id=person.school_id,
        users=[person],
        kind=kind,
        title=TITLE,
        body=BODY,
        link="/losses/4711",
        devices=[tagged],
        case_id=case_id,
        at=SUMMER,
    )
    # In the app, the whole story stays.
    assert notice.title == TITLE and notice.body == BODY
    message = session.scalars(select(EmailMessage)).one()
    text = _text(message, mail_settings)
    for private in (*PRIVATE, STAFF_NAME):
        assert private not in text
    assert EMAIL_KINDS[kind].what in message.subject
    assert f"{EMAIL_KINDS[kind].what}." in text
    assert tagged.asset_tag in message.subject and f"Device: {tagged.asset_tag}" in text
    assert "When: 11:42 on Tue 9 Jun 2026" in text
    if case_id:
        assert f"{EMAIL_KINDS[kind].case}: 4711" in text
    assert f"Open it in Trolley: {BASE_URL}/losses/4711" in text


def test_the_dpo_gets_the_same_minimal_notice_as_staff(
    session: Session,
    school: School,
    make_user: Callable[..., User],
    tagged: Device,
    mail_server: MailServer,
    mail_settings: Settings,
) -> None:
    """P-SEC-5, P-LOSS-1: an outside address gets word for word what the head's e-mail says."""
    head = make_user(Role.HEADTEACHER, email="head@oakfield.example")
    notify(
        session,
        school_id=school.id,
        users=[head],
        kind="loss.reported",
        title=TITLE,
        body=BODY,
        link="/losses/12",
        devices=[tagged],
        case_id=12,
        at=WINTER,
    )
    notify_address(
        session,
        school_id=school.id,
        address="dpo@trust.example",
        kind="loss.reported",
        link="/losses/12",
        devices=[tagged],
        case_id=12,
        at=WINTER,
    )
    session.commit()
    assert send_due_email(session, mail_settings, utcnow()).sent == 2
    by_address = {r.rcpt_tos[0]: r.message for r in mail_server.messages}
    head_mail, dpo_mail = by_address["head@oakfield.example"], by_address["dpo@trust.example"]
    assert head_mail["Subject"] == dpo_mail["Subject"]
    plain = [m.get_body(("plain",)).get_content() for m in (head_mail, dpo_mail)]  # type: ignore[union-attr]
    assert plain[0] == plain[1]
    assert "When: 10:42 on Tue 3 Mar 2026" in plain[0] and "Loss report: 12" in plain[0]
    assert not any(private in plain[0] for private in PRIVATE)


def test_an_email_names_devices_of_its_own_school_only_and_kinds_it_knows(
    session: Session,
    other_school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    """An e-mail names a device only by a registered device's tag, never another school's; a
    kind without e-mail wording cannot be e-mailed, and nothing is half-written."""
    person = make_user()
    theirs = make_device(in_school=other_school)
    with pytest.raises(ValidationFailed, match="same school"):
        notify(
            session,
            school_id=person.school_id,
            users=[person],
            kind="audit.due",
            title="T",
            body="B",
            devices=[theirs],
        )
    with pytest.raises(ValueError, match="no e-mail wording"):
        notify(
            session, school_id=person.school_id, users=[person], kind="made.up", title="T", body="B"
        )
    with pytest.raises(ValueError, match="name no case"):
        notify(
            session,
            school_id=person.school_id,
            users=[person],
            kind="audit.due",
            title="T",
            body="B",
            case_id=3,
        )
    # In the app only, any kind will do: nothing leaves the school.
    notify(
        session,
        school_id=person.school_id,
        users=[person],
        kind="made.up",
        title="T",
        body="B",
        email=False,
    )
    assert session.scalars(select(Notification.kind)).all() == ["made.up"]
    assert session.scalars(select(EmailMessage)).all() == []


def _kinds_told_by_email() -> list[tuple[str, str]]:
    """Every kind the product passes to a notifier without `email=False`: (where, kind)."""
    found = []
    for path in sorted((ROOT / "server").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else None
            name = name or (node.func.id if isinstance(node.func, ast.Name) else None)
            if name not in NOTIFIERS:
                continue
            words = {k.arg: k.value for k in node.keywords if k.arg}
            email = words.get("email")
            if isinstance(email, ast.Constant) and email.value is False:
                continue
            kind = words.get("kind")
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if isinstance(kind, ast.Constant) and isinstance(kind.value, str):
                found.append((where, kind.value))
            elif isinstance(kind, ast.JoinedStr):
                # f"audit.{kind}": the fixed start must begin a known kind.
                start = kind.values[0]
                prefix = start.value if isinstance(start, ast.Constant) else ""
                found.append((where, f"{prefix}*"))
    return found


def test_every_kind_the_product_emails_has_minimal_wording() -> None:
    """P-SEC-5: each kind a domain e-mails about is one the e-mail builder knows, so none can
    fail at the moment a headteacher must be told."""
    told = _kinds_told_by_email()
    assert len(told) > 20  # the walk found the callers
    missing = [
        (where, kind)
        for where, kind in told
        if not (
            any(k.startswith(kind[:-1]) for k in EMAIL_KINDS)
            if kind.endswith("*")
            else kind in EMAIL_KINDS
        )
    ]
    assert missing == []


def test_emails_waiting_from_before_the_upgrade_go_out_without_their_text(
    tmp_path: Path,
) -> None:
    """P-SEC-5: an e-mail queued (or failed) before the minimal notice keeps only its link;
    one already sent keeps its record."""
    from alembic import command

    engine = make_engine(f"sqlite:///{tmp_path / 'upgrade.db'}")
    migrate(engine)
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0100_notifications")
        connection.commit()
    with Session(engine) as session:
        school = create_school(session, slug="upgrade", name="Upgrade Primary")
        for status in EmailStatus:
            session.add(
                EmailMessage(
                    school_id=school.id,
                    to_address="dpo@trust.example",
                    subject=TITLE,
                    body_text=BODY,
                    link="/losses/3",
                    attachments=[{"filename": "a.ics", "content_type": "text/calendar"}],
                    status=status,
                )
            )
        session.commit()
    migrate(engine)
    with Session(engine) as session:
        rows = {m.status: m for m in session.scalars(select(EmailMessage))}
        for status in (EmailStatus.QUEUED, EmailStatus.FAILED):
            waiting = rows[status]
            assert not any(p in waiting.subject + waiting.body_text for p in PRIVATE)
            assert STAFF_NAME not in waiting.subject and "sign in" in waiting.body_text
            assert waiting.link == "/losses/3" and waiting.attachments == []
        assert rows[EmailStatus.SENT].body_text == BODY
    engine.dispose()
