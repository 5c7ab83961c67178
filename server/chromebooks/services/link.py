"""Linking a school to its Google domain: the sealed key, who it acts as, and testing the link."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import User
from server.chromebooks.models import GoogleDevice, GoogleLink
from server.chromebooks.services.google import (
    SCOPE_NAMES,
    SCOPES,
    Clients,
    GoogleApi,
    GoogleError,
    ServiceKey,
    call,
)
from server.crypto import SecretBox
from server.db import utcnow
from server.errors import NotFound, ValidationFailed

_CUSTOMER = re.compile(r"^(my_customer|C[0-9A-Za-z]{5,20})$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
MAX_NETWORKS = 50


def get_link(session: Session, school_id: int) -> GoogleLink | None:
    return session.scalar(select(GoogleLink).where(GoogleLink.school_id == school_id))


def require_link(session: Session, school_id: int) -> GoogleLink:
    link = get_link(session, school_id)
    if link is None:
        raise NotFound(
            "This school is not linked to its Google domain yet. A technician or the SBM links "
            "it on the Chromebooks page."
        )
    return link


def parse_networks(text: str) -> list[str]:
    """The school's public addresses, one per line or comma (e.g. 81.2.69.160 or 81.2.69.0/24)."""
    networks = []
    for raw in re.split(r"[\s,]+", text.strip()):
        if not raw:
            continue
        try:
            networks.append(str(ipaddress.ip_network(raw, strict=False)))
        except ValueError:
            raise ValidationFailed(
                f"{raw!r} is not an IP address or range. Give the school's public addresses, "
                "such as 81.2.69.160 or 81.2.69.0/24."
            ) from None
    if len(networks) > MAX_NETWORKS:
        raise ValidationFailed(f"Give at most {MAX_NETWORKS} address ranges.")
    return sorted(set(networks))


def save_link(
    session: Session,
    box: SecretBox,
    actor: User,
    *,
    key_text: str | None,
    customer_id: str,
    admin_email: str,
    school_networks: str = "",
    now: datetime | None = None,
) -> GoogleLink:
    """Link the school, or change its link; a new key replaces the old, which is never shown."""
    now = now or utcnow()
    customer_id = customer_id.strip()
    admin_email = admin_email.strip().lower()
    if not _CUSTOMER.match(customer_id):
        raise ValidationFailed(
            "The customer ID looks like C03az79cb (Google Admin console › Account › Account "
            "settings), or use my_customer."
        )
    if not _EMAIL.match(admin_email):
        raise ValidationFailed(
            "Give the e-mail address of the Google administrator Trolley acts as."
        )
    networks = parse_networks(school_networks)
    key = ServiceKey.parse(key_text) if key_text and key_text.strip() else None
    link = get_link(session, actor.school_id)
    if link is None and key is None:
        raise ValidationFailed("Upload the service account's JSON key to link the school.")
    replaced_key = key is not None and link is not None
    if link is None:
        assert key is not None
        link = GoogleLink(
            school_id=actor.school_id,
            key_sealed=box.seal(json.dumps(key.info)),
            client_email=key.client_email,
            key_id=key.key_id,
            created_by_id=actor.id,
            created_at=now,
            test_problems=[],
            known_schemas=[],
        )
        session.add(link)
    elif key is not None:
        link.key_sealed = box.seal(json.dumps(key.info))
        link.client_email, link.key_id = key.client_email, key.key_id
    link.customer_id, link.admin_email, link.school_networks = customer_id, admin_email, networks
    link.updated_at = now
    # Whatever changed, the last test no longer speaks for the link.
    link.tested_at, link.test_problems, link.known_schemas = None, [], []
    session.flush()
    record(
        session,
        actor=actor,
        action="google.key_replaced" if replaced_key else "google.linked",
        school_id=actor.school_id,
        target_type="google_link",
        target_id=link.client_email,
        details={"customer_id": customer_id, "admin": admin_email, "networks": networks},
    )
    session.commit()
    return link


def remove_link(session: Session, actor: User) -> None:
    """Forget the key and what Google reported; Chromebooks can no longer be reached."""
    link = require_link(session, actor.school_id)
    session.execute(delete(GoogleDevice).where(GoogleDevice.school_id == actor.school_id))
    client_email = link.client_email
    session.delete(link)
    record(
        session,
        actor=actor,
        action="google.unlinked",
        school_id=actor.school_id,
        target_type="google_link",
        target_id=client_email,
    )
    session.commit()


def service_key(box: SecretBox, link: GoogleLink) -> ServiceKey:
    return ServiceKey(json.loads(box.open(link.key_sealed)))


def clients_for(box: SecretBox, google: GoogleApi, link: GoogleLink) -> Clients:
    return google.connect(service_key(box, link), link.admin_email)


def customer_path(link: GoogleLink) -> str:
    return f"customers/{link.customer_id}"


def schema_names(clients: Clients, link: GoogleLink) -> Iterator[str]:
    """Every Chrome Policy API schema name Google publishes for the customer."""
    token = None
    while True:
        page = call(
            clients.policy.customers()
            .policySchemas()
            .list(parent=customer_path(link), pageSize=1000, pageToken=token)
        )
        for schema in page.get("policySchemas", []):
            name = schema.get("schemaName") or str(schema.get("name", "")).rsplit("/", 1)[-1]
            if name:
                yield str(name)
        token = page.get("nextPageToken")
        if not token:
            return


def _probe(problems: list[str], clients: Clients, link: GoogleLink) -> list[str]:
    """Call each API once; returns Google's policy schema names (empty if that call failed)."""
    try:
        call(
            clients.directory.chromeosdevices().list(
                customerId=link.customer_id, maxResults=1, projection="BASIC"
            )
        )
    except GoogleError as exc:
        problems.append(f"Reading ChromeOS devices (Directory API): {exc.message}")
    try:
        return sorted(set(schema_names(clients, link)))
    except GoogleError as exc:
        problems.append(f"Reading Chrome policy schemas (Chrome Policy API): {exc.message}")
        return []


def check_link(
    session: Session,
    box: SecretBox,
    google: GoogleApi,
    actor: User,
    *,
    now: datetime | None = None,
) -> GoogleLink:
    """Try each scope and each API the link needs; say exactly which one is missing."""
    now = now or utcnow()
    link = require_link(session, actor.school_id)
    key = service_key(box, link)
    problems: list[str] = []
    for scope in SCOPES:
        problem = google.token_problem(key, link.admin_email, scope)
        if problem:
            problems.append(f"Scope {scope} ({SCOPE_NAMES[scope]}) is not granted: {problem}")
    names: list[str] = []
    if not problems:
        with clients_for(box, google, link) as clients:
            names = _probe(problems, clients, link)
    link.tested_at, link.test_problems, link.known_schemas = now, problems, names
    record(
        session,
        actor=actor,
        action="google.link_tested",
        school_id=actor.school_id,
        target_type="google_link",
        target_id=link.client_email,
        details={"ok": not problems, "problems": problems},
    )
    session.commit()
    return link


def linked_schools(session: Session) -> list[int]:
    return list(session.scalars(select(GoogleLink.school_id).order_by(GoogleLink.school_id)))
