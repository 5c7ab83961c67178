"""Enrolment and the device's HTTPS side channel (authenticated by token or device signature)."""

from __future__ import annotations

import json

from flask import current_app, request

from server.auth.permissions import PUBLIC, Permission
from server.config import Settings
from server.crypto import SecretBox
from server.devices.services import get_device
from server.enrolment import services
from server.enrolment.schemas import (
    EnrolIn,
    EnrolmentCodeOut,
    EnrolmentStatus,
    EnrolOut,
    EnvelopeIn,
    EnvelopeOut,
    WhereaboutsOut,
)
from server.extensions import db_session
from server.openapi import current_api_user, endpoint


def _settings() -> Settings:
    settings: Settings = current_app.extensions["trolley.settings"]
    return settings


def _box() -> SecretBox:
    box: SecretBox = current_app.extensions["trolley.box"]
    return box


@endpoint(
    "/enrol",
    "POST",
    permission=PUBLIC,
    summary="A device enrols with a one-time code",
    tag="enrolment",
    body=EnrolIn,
    response=EnrolOut,
    status=201,
)
def enrol(body: EnrolIn) -> EnrolOut:
    done = services.enrol(
        db_session(),
        _box(),
        _settings(),
        token=body.token,
        public_key=body.public_key,
        platform=body.platform,
        tls_public_key_pem=body.tls_public_key_pem,
    )
    return EnrolOut(
        device_id=done.identity.mqtt_id,
        asset_tag=done.identity.device.asset_tag,
        school=done.school,
        broker_url=done.broker_url,
        username=done.identity.mqtt_id,
        password=done.password,
        ca_pem=done.ca_pem,
        client_certificate_pem=done.certificate_pem,
        server_keys=done.server_keys,
        server_url=_settings().base_url,
    )


@endpoint(
    "/device-channel/confirm-reset",
    "POST",
    permission=PUBLIC,
    summary="A device asks the server to confirm a factory reset before erasing itself",
    tag="enrolment",
    body=EnvelopeIn,
    response=EnvelopeOut,
)
def confirm_reset(body: EnvelopeIn) -> EnvelopeOut:
    raw = json.dumps(body.model_dump(), separators=(",", ":")).encode()
    answer = services.confirm_reset(db_session(), _box(), raw)
    return EnvelopeOut.model_validate(json.loads(answer))


@endpoint(
    "/device-channel/whereabouts",
    "POST",
    permission=PUBLIC,
    summary="A kiosk checks in over HTTPS, so the server sees its public address",
    tag="enrolment",
    body=EnvelopeIn,
    response=WhereaboutsOut,
)
def whereabouts(body: EnvelopeIn) -> WhereaboutsOut:
    raw = json.dumps(body.model_dump(), separators=(",", ":")).encode()
    # The peer's address; behind the configured proxy, ProxyFix has already put the client's here.
    address = request.remote_addr or ""
    services.record_whereabouts(db_session(), raw, public_address=address)
    return WhereaboutsOut(public_address=address)


@endpoint(
    "/devices/<asset_tag>/enrolment-code",
    "POST",
    permission=Permission.DEVICES_ENROL,
    summary="Make a one-time enrolment code (24 hours) for a device",
    tag="enrolment",
    response=EnrolmentCodeOut,
    status=201,
)
def enrolment_code(asset_tag: str) -> EnrolmentCodeOut:
    session = db_session()
    user = current_api_user()
    device = get_device(session, user.school_id, asset_tag)
    token, payload = services.issue_enrolment_token(session, user, device, _settings())
    return EnrolmentCodeOut(
        asset_tag=asset_tag, payload=payload.encode(), expires_at=token.expires_at
    )


@endpoint(
    "/devices/<asset_tag>/enrolment",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="Whether a device is enrolled and online",
    tag="enrolment",
    response=EnrolmentStatus,
)
def enrolment_status(asset_tag: str) -> EnrolmentStatus:
    session = db_session()
    device = get_device(session, current_api_user().school_id, asset_tag)
    identity = services.active_identity(session, device)
    return EnrolmentStatus(
        asset_tag=asset_tag,
        enrolled=identity is not None,
        device_id=identity.mqtt_id if identity else None,
        platform=identity.platform if identity else None,
        enrolled_at=identity.enrolled_at if identity else None,
        online=bool(identity and identity.online),
        last_seen_at=identity.last_seen_at if identity else None,
    )
