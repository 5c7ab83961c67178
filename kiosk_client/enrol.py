"""`trolley-kiosk enrol`: turn an enrolment code into an enrolled data directory.

1. Decode the `trolley-enrol:1:...` code (`provisioning.payload.EnrolmentPayload`).
2. Make a fresh Ed25519 device key (and a P-256 TLS key when the code pins a school CA).
3. `POST /api/v1/enrol` with the one-time token and the public key(s).
4. Check the answer: server keys whose ids match their keys, the CA against the code's
   fingerprint, the client certificate against our TLS key.
5. Write key, TLS files, pinned keys, secrets and finally `config.toml` (its presence means
   "enrolled"), and for the simulated platform a factory-fresh device directory.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from kiosk_client.adapters.simulated import create_simulated_device
from kiosk_client.config import (
    DEFAULT_REPORT_INTERVAL,
    TLS_DIR,
    DeviceIdentity,
    KioskConfig,
    LinuxSettings,
    Platform,
    SimulatedSettings,
    TLSFiles,
    enrolment_files,
    is_enrolled,
    parse_server_keys,
    save_server_keys,
    write_config,
    write_identity,
)
from kiosk_client.errors import (
    AlreadyEnrolledError,
    BadServerResponseError,
    ConfigError,
    EnrolmentRefusedError,
    UsageError,
)
from kiosk_client.files import atomic_write
from kiosk_client.server_api import EnrolmentResponse, ServerClient
from mqtt.client import BrokerURL
from provisioning.errors import KeyFormatError, PayloadError
from provisioning.keys import (
    load_certificate_pem,
    new_device_key,
    new_tls_key,
    private_key_to_pem,
)
from provisioning.payload import EnrolmentPayload, is_http_url

if TYPE_CHECKING:
    import requests
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["DEFAULT_SAMPLE_PHOTOS", "decode_payload", "enrol"]

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_PHOTOS = 5


def decode_payload(text: str) -> EnrolmentPayload:
    """The enrolment code, or `UsageError` with the reason (never echoing the token)."""
    try:
        return EnrolmentPayload.decode(text)
    except PayloadError as exc:
        raise UsageError(f"the enrolment code is not valid: {exc}") from None


def enrol(
    payload: str | EnrolmentPayload,
    *,
    platform: Platform | str,
    data_dir: str | os.PathLike[str],
    server_url: str | None = None,
    force: bool = False,
    http_ca_file: Path | None = None,
    http_timeout: float = 10.0,
    linux: LinuxSettings | None = None,
    sample_photos: int = DEFAULT_SAMPLE_PHOTOS,
    report_interval: int = DEFAULT_REPORT_INTERVAL,
    fsync: bool = True,
    session: requests.Session | None = None,
) -> KioskConfig:
    """Enrol this device into `data_dir` and return its configuration.

    Raises `UsageError` (bad code or platform), `AlreadyEnrolledError`, `EnrolmentRefusedError`
    (4xx, or an answer that does not match the code), `ServerUnreachableError`.
    """
    code = payload if isinstance(payload, EnrolmentPayload) else decode_payload(payload)
    try:
        chosen = Platform(platform)
    except ValueError:
        raise UsageError(
            f"platform must be one of: {', '.join(p.value for p in Platform)}"
        ) from None
    if server_url is not None and not is_http_url(server_url):
        raise UsageError("--server-url must be an http:// or https:// address")
    base = Path(data_dir).expanduser().absolute()
    if is_enrolled(base) and not force:
        raise AlreadyEnrolledError(
            f"{base} is already enrolled; use --force to replace its identity"
        )

    identity = DeviceIdentity.from_key(new_device_key())
    # A pinned school CA means the school runs TLS with client certificates.
    tls_key = new_tls_key() if code.ca_fingerprint is not None else None
    tls_public_pem = (
        tls_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
        if tls_key is not None
        else None
    )
    client = ServerClient(
        server_url or code.server_url, timeout=http_timeout, ca_file=http_ca_file, session=session
    )
    logger.info(
        "enrolling asset %s of %s at %s", code.asset_tag, code.school_slug, client.server_url
    )
    answer = client.enrol(
        token=code.token,
        public_key=identity.public_key_text,
        platform=chosen.value,
        tls_public_key_pem=tls_public_pem,
    )
    try:
        server_keys = parse_server_keys(answer.server_keys, "the enrolment answer")
    except ConfigError as exc:
        raise BadServerResponseError(str(exc)) from None
    ca_pem, client_pem = _check_certificates(code, answer, tls_key)

    if force:
        for path in enrolment_files(base):
            path.unlink(missing_ok=True)
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o700)
    tls: TLSFiles | None = None
    if BrokerURL.parse(answer.broker_url).tls:
        tls_dir = base / TLS_DIR
        tls_dir.mkdir(mode=0o700, exist_ok=True)
        ca_file = cert_file = key_file = None
        if ca_pem is not None:
            ca_file = tls_dir / "ca.pem"
            atomic_write(ca_file, ca_pem, mode=0o644, fsync=fsync)
        if client_pem is not None and tls_key is not None:
            cert_file, key_file = tls_dir / "client.pem", tls_dir / "client.key"
            atomic_write(cert_file, client_pem, mode=0o644, fsync=fsync)
            atomic_write(key_file, private_key_to_pem(tls_key), mode=0o600, fsync=fsync)
        tls = TLSFiles(ca_file=ca_file, cert_file=cert_file, key_file=key_file)

    config = KioskConfig(
        data_dir=base,
        device_id=answer.device_id,
        asset_tag=answer.asset_tag,
        school=answer.school,
        platform=chosen,
        # The server names its own address, unless the technician had to override it.
        server_url=server_url or answer.server_url,
        broker_url=answer.broker_url,
        username=answer.username,
        password=answer.password,
        report_interval=report_interval,
        fsync=fsync,
        tls=tls,
        http_ca_file=http_ca_file,
        http_timeout=http_timeout,
        simulated=SimulatedSettings(root=base / "device") if chosen is Platform.SIMULATED else None,
        linux=(linux or LinuxSettings(screens_dir=base / "screens"))
        if chosen is Platform.LINUX
        else None,
    )
    if config.linux is not None and not config.linux.screens_dir.is_absolute():
        config = replace(
            config, linux=replace(config.linux, screens_dir=base / config.linux.screens_dir)
        )
    write_identity(base, identity, fsync=fsync)
    save_server_keys(config, server_keys)
    if config.simulated is not None:
        if force and config.simulated.root.exists():
            shutil.rmtree(config.simulated.root)
        create_simulated_device(config.simulated.root, photos=sample_photos, fsync=fsync)
    write_config(config)
    logger.info(
        "enrolled as %s (asset %s, school %s)", config.device_id, config.asset_tag, config.school
    )
    return config


def _check_certificates(
    code: EnrolmentPayload, answer: EnrolmentResponse, tls_key: ec.EllipticCurvePrivateKey | None
) -> tuple[bytes | None, bytes | None]:
    """The CA and client certificate PEM, checked against the code and our TLS key."""
    # Imported here: the certificate machinery is needed only while enrolling.
    from provisioning.ca import fingerprint

    ca_pem = answer.ca_pem.encode("ascii", "replace") if answer.ca_pem else None
    client_pem = (
        answer.client_certificate_pem.encode("ascii", "replace")
        if answer.client_certificate_pem
        else None
    )
    if ca_pem is not None:
        try:
            ca = load_certificate_pem(ca_pem)
        except KeyFormatError as exc:
            raise BadServerResponseError(f"the enrolment answer's CA: {exc}") from None
        if code.ca_fingerprint is not None and fingerprint(ca) != code.ca_fingerprint:
            # The code printed on the label is the trust anchor, not the network.
            raise EnrolmentRefusedError(
                "the server's CA does not match the fingerprint in the enrolment code",
                code="ca_mismatch",
            )
    if client_pem is not None:
        if tls_key is None:
            raise BadServerResponseError("the server sent a client certificate nobody asked for")
        try:
            certificate = load_certificate_pem(client_pem)
        except KeyFormatError as exc:
            raise BadServerResponseError(f"the client certificate: {exc}") from None
        ours = tls_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        theirs = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if ours != theirs:
            raise BadServerResponseError("the client certificate is not for this device's key")
    return ca_pem, client_pem
