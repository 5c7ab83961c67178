"""Waking iPads through Apple's push service (APNs) so they check in and collect their commands.

Without a push an iPad still collects its commands whenever it checks in on its own (when it
restarts, installs a profile, or iPadOS decides to). A push carries no command: it only asks the
iPad to check in now, so a lost or repeated push changes nothing but the wait.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from server.commands.models import Command, CommandStatus
from server.config import Settings
from server.crypto import SecretBox
from server.ipads.models import ApplePushCredential, IpadEnrolment, PushAuth, Stage
from server.ipads.services.credentials import PushSecret, open_secret

log = logging.getLogger(__name__)

MIN_GAP = timedelta(minutes=1)  # never push one iPad more than once a minute
MAX_BACKOFF = timedelta(hours=1)
TOKEN_LIFE = timedelta(minutes=50)  # Apple refuses tokens older than an hour, or renewed too often
BATCH = 500
# Provider tokens by (team, key id, key digest): Apple wants one reused, not one per push.
_tokens: dict[tuple[str, str, str], tuple[str, datetime]] = {}


@dataclass(frozen=True)
class PushOutcome:
    """What APNs answered one push: its HTTP status and Apple's reason, if any."""

    status: int
    reason: str = ""

    @property
    def retry(self) -> bool:
        return self.status == 429 or self.status >= 500 or self.status == 0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def provider_token(secret: PushSecret, now: datetime) -> str:
    """The ES256 JSON web token for token auth, made afresh only every 50 minutes."""
    assert secret.key_id and secret.team_id
    cache_key = (secret.team_id, secret.key_id, hashlib.sha256(secret.key_pem).hexdigest())
    kept = _tokens.get(cache_key)
    if kept is not None and timedelta(0) <= now - kept[1] < TOKEN_LIFE:
        return kept[0]
    key = serialization.load_pem_private_key(secret.key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    header = _b64(json.dumps({"alg": "ES256", "kid": secret.key_id}).encode())
    claims = _b64(json.dumps({"iss": secret.team_id, "iat": int(now.timestamp())}).encode())
    signing_input = f"{header}.{claims}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    token = f"{header}.{claims}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    _tokens[cache_key] = (token, now)
    return token


def forget_provider_token(secret: PushSecret) -> None:
    """Drop a token Apple refused, so the next push signs a new one."""
    for cache_key in [k for k in _tokens if k[:2] == (secret.team_id, secret.key_id)]:
        _tokens.pop(cache_key, None)


def _tls(settings: Settings, secret: PushSecret) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.apns_ca) if settings.apns_ca else None)
    if secret.auth is PushAuth.CERTIFICATE:
        assert secret.certificate_pem is not None
        # ssl reads a client identity only from files: a private folder, removed at once.
        with tempfile.TemporaryDirectory(prefix="trolley-apns-") as folder:
            path = os.path.join(folder, "identity.pem")
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(secret.certificate_pem + secret.key_pem)
            context.load_cert_chain(path)
    return context


@contextmanager
def apns_client(settings: Settings, secret: PushSecret) -> Iterator[httpx.Client]:
    """One HTTP/2 connection to APNs for one school's credentials, shared by a batch of pushes."""
    with httpx.Client(
        base_url=settings.apns_url,
        http1=False,
        http2=True,
        verify=_tls(settings, secret),
        timeout=httpx.Timeout(10.0, connect=5.0),
    ) as client:
        yield client


def send(
    client: httpx.Client, secret: PushSecret, enrolment: IpadEnrolment, now: datetime
) -> PushOutcome:
    """One MDM push, exactly as Apple documents it; network trouble counts as retryable."""
    assert enrolment.push_token and enrolment.push_magic
    headers = {"apns-push-type": "mdm", "apns-topic": secret.topic, "apns-priority": "10"}
    if secret.auth is PushAuth.TOKEN:
        headers["authorization"] = f"bearer {provider_token(secret, now)}"
    try:
        response = client.post(
            f"/3/device/{enrolment.push_token}",
            content=json.dumps({"mdm": enrolment.push_magic}).encode(),
            headers=headers,
        )
    except httpx.HTTPError as exc:
        return PushOutcome(0, type(exc).__name__)
    reason = ""
    if response.status_code != 200:
        try:
            reason = str(response.json().get("reason", ""))[:40]
        except ValueError:
            reason = response.reason_phrase[:40]
    return PushOutcome(response.status_code, reason)


def record_outcome(enrolment: IpadEnrolment, outcome: PushOutcome, now: datetime) -> None:
    """What the device page shows about the last push, and when the next may go."""
    if outcome.status == 200:
        enrolment.pushed_at, enrolment.push_result = now, "delivered to Apple"
        enrolment.push_failures, enrolment.push_retry_at = 0, now + MIN_GAP
        return
    if outcome.status == 410 or (outcome.status == 400 and outcome.reason == "BadDeviceToken"):
        # The iPad no longer answers to this token (profile removed, erased, or restored): it
        # gets a new one with its next TokenUpdate, until then it is not pushed.
        enrolment.push_token = None
        enrolment.push_result = f"push token no longer valid ({outcome.reason or outcome.status})"
        enrolment.push_failures, enrolment.push_retry_at = 0, None
        return
    enrolment.push_failures += 1
    wait = MAX_BACKOFF
    if outcome.retry:
        wait = min(MIN_GAP * 2 ** (enrolment.push_failures - 1), MAX_BACKOFF)
    enrolment.push_retry_at = now + wait
    what = "Apple was busy" if outcome.retry else "Apple refused the push"
    enrolment.push_result = f"{what} ({outcome.reason or outcome.status})"[:64]


def waiting(session: Session, now: datetime, limit: int = BATCH) -> list[IpadEnrolment]:
    """Enrolled iPads with a queued command they have not been pushed for, and may be now."""
    unpushed = exists(
        select(Command.id).where(
            Command.device_id == IpadEnrolment.device_id,
            Command.status == CommandStatus.QUEUED,
            Command.expires_at > now,
            or_(IpadEnrolment.pushed_at.is_(None), Command.created_at > IpadEnrolment.pushed_at),
        )
    )
    return list(
        session.scalars(
            select(IpadEnrolment)
            .join(ApplePushCredential, ApplePushCredential.school_id == IpadEnrolment.school_id)
            .where(
                IpadEnrolment.stage == Stage.ENROLLED,
                IpadEnrolment.push_token.is_not(None),
                IpadEnrolment.push_magic.is_not(None),
                # An iPad listens on the topic it enrolled with; another topic cannot reach it.
                IpadEnrolment.topic == ApplePushCredential.topic,
                or_(ApplePushCredential.not_after.is_(None), ApplePushCredential.not_after > now),
                or_(IpadEnrolment.push_retry_at.is_(None), IpadEnrolment.push_retry_at <= now),
                unpushed,
            )
            .order_by(IpadEnrolment.school_id, IpadEnrolment.id)
            .limit(limit)
        )
    )


def wake_waiting(session: Session, box: SecretBox, settings: Settings, *, now: datetime) -> int:
    """Push every iPad with a queued command not yet pushed for, a school at a time; commits.

    Returns how many pushes Apple accepted.
    """
    accepted = 0
    for school_id, group in groupby(waiting(session, now), key=lambda e: e.school_id):
        credential = session.scalar(
            select(ApplePushCredential).where(ApplePushCredential.school_id == school_id)
        )
        assert credential is not None
        secret = open_secret(box, credential)
        with apns_client(settings, secret) as client:
            for enrolment in group:
                outcome = send(client, secret, enrolment, now)
                if outcome.status == 403 and secret.auth is PushAuth.TOKEN:
                    forget_provider_token(secret)
                record_outcome(enrolment, outcome, now)
                accepted += outcome.status == 200
                if outcome.status != 200:
                    log.info("push to %s: %s", enrolment.udid, enrolment.push_result)
        session.commit()
    return accepted


def wake(
    session: Session, box: SecretBox, settings: Settings, enrolment: IpadEnrolment, *, now: datetime
) -> bool:
    """Ask APNs to wake this one iPad now; whether Apple accepted the push. Commits."""
    if enrolment.stage is not Stage.ENROLLED or not enrolment.push_token:
        return False
    if enrolment.push_retry_at is not None and enrolment.push_retry_at > now:
        return False
    credential = session.scalar(
        select(ApplePushCredential).where(ApplePushCredential.school_id == enrolment.school_id)
    )
    if credential is None or credential.topic != enrolment.topic:
        log.debug("no push credentials for %s; it waits for its next check-in", enrolment.udid)
        return False
    secret = open_secret(box, credential)
    with apns_client(settings, secret) as client:
        outcome = send(client, secret, enrolment, now)
    record_outcome(enrolment, outcome, now)
    session.commit()
    return outcome.status == 200
