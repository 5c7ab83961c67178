"""JSON API for software licences and their reconciliation with installs (P-REG-5)."""

from __future__ import annotations

from server.auth.permissions import Permission
from server.extensions import db_session
from server.licences import services
from server.licences.schemas import (
    InstallOut,
    LicenceDetail,
    LicenceIn,
    LicenceOut,
    LicencePatch,
    ReconciliationOut,
    UnlicensedOut,
)
from server.openapi import current_api_user, endpoint


def licence_out(line: services.LicenceLine) -> LicenceOut:
    licence = line.licence
    return LicenceOut(
        id=licence.id,
        app_name=licence.app_name,
        app_id=licence.app_id,
        seats=licence.seats,
        installed=line.installed,
        seats_free=line.seats_free,
        over_deployed=line.over_deployed,
        expires_on=licence.expires_on,
        expired=line.expired,
        expiring_soon=line.expiring,
        supplier=licence.supplier,
        cost_pence=licence.cost_pence,
        notes=licence.notes,
    )


def _detail(licence_id: int) -> LicenceDetail:
    session, school_id = db_session(), current_api_user().school_id
    line = services.licence_line(session, school_id, licence_id)
    installs = services.devices_with_app(session, school_id, line.licence.app_id)
    return LicenceDetail(
        **licence_out(line).model_dump(),
        devices=[
            InstallOut(
                asset_tag=device.asset_tag,
                version=app.version,
                first_seen=app.first_seen,
                last_seen=app.last_seen,
            )
            for device, app in installs
        ],
    )


@endpoint(
    "/licences",
    "GET",
    permission=Permission.REPORTS_READ,
    summary="Licences reconciled: seats against installs, expiring soon, apps with no licence",
    tag="licences",
    response=ReconciliationOut,
)
def list_licences() -> ReconciliationOut:
    return _reconciliation()


def _reconciliation() -> ReconciliationOut:
    result = services.reconcile(db_session(), current_api_user().school_id)
    return ReconciliationOut(
        devices_reporting=result.devices_reporting,
        licences=[licence_out(line) for line in result.lines],
        unlicensed_total=result.unlicensed_total,
        unlicensed=[
            UnlicensedOut(app_id=app.app_id, name=app.name, devices=app.devices)
            for app in result.unlicensed
        ],
    )


@endpoint(
    "/licences",
    "POST",
    permission=Permission.DEVICES_WRITE,
    summary="Record a licence",
    tag="licences",
    body=LicenceIn,
    response=LicenceDetail,
    status=201,
)
def create_licence(body: LicenceIn) -> LicenceDetail:
    licence = services.create_licence(db_session(), current_api_user(), body.model_dump())
    return _detail(licence.id)


@endpoint(
    "/licences/<int:licence_id>",
    "GET",
    permission=Permission.REPORTS_READ,
    summary="One licence and the devices that have its app installed",
    tag="licences",
    response=LicenceDetail,
)
def get_licence(licence_id: int) -> LicenceDetail:
    return _detail(licence_id)


@endpoint(
    "/licences/<int:licence_id>",
    "PATCH",
    permission=Permission.DEVICES_WRITE,
    summary="Correct a licence: seats, expiry, supplier, cost",
    tag="licences",
    body=LicencePatch,
    response=LicenceDetail,
)
def update_licence(licence_id: int, body: LicencePatch) -> LicenceDetail:
    services.update_licence(
        db_session(), current_api_user(), licence_id, body.model_dump(exclude_unset=True)
    )
    return _detail(licence_id)


@endpoint(
    "/licences/<int:licence_id>",
    "DELETE",
    permission=Permission.DEVICES_WRITE,
    summary="Delete a licence record (its app's installs then show as unlicensed)",
    tag="licences",
    response=ReconciliationOut,
)
def delete_licence(licence_id: int) -> ReconciliationOut:
    services.delete_licence(db_session(), current_api_user(), licence_id)
    return _reconciliation()
