"""JSON API: a sheet of QR labels for chosen devices and places."""

from __future__ import annotations

import base64

from flask import current_app

from server.auth.permissions import Permission
from server.extensions import db_session
from server.labels import services
from server.labels.schemas import LabelSheetOut, LabelsIn
from server.openapi import current_api_user, endpoint


@endpoint(
    "/labels",
    "POST",
    permission=Permission.DEVICES_READ,
    summary="Print QR labels (PDF or print-ready HTML, base64) for devices and places",
    tag="labels",
    body=LabelsIn,
    response=LabelSheetOut,
)
def print_labels(body: LabelsIn) -> LabelSheetOut:
    user = current_api_user()
    chosen = services.choose_labels(
        db_session(),
        user.school_id,
        current_app.extensions["trolley.settings"].base_url,
        services.Selection(
            asset_tags=body.asset_tags,
            home_location_id=body.home_location_id,
            location_ids=body.location_ids,
            every_device=body.every_device,
        ),
    )
    rendered = services.render_labels(
        chosen, layout=body.layout, fmt=body.format, start_position=body.start_position
    )
    return LabelSheetOut(
        filename=f"labels-{body.layout}.{rendered.extension}",
        media_type=rendered.media_type,
        labels=rendered.labels,
        urls=chosen.urls,
        content_base64=base64.b64encode(rendered.parts[0]).decode("ascii"),
    )
