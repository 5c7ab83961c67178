"""Forms for the location tree and the school's terms."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from server.schools.models import LocationKind

KIND_LABELS = {
    LocationKind.SITE: "Site",
    LocationKind.BUILDING: "Building",
    LocationKind.ROOM: "Room",
    LocationKind.TROLLEY: "Trolley",
    LocationKind.SAFE: "Safe",
    LocationKind.CUPBOARD: "Lockable cupboard",
}


class LocationForm(FlaskForm):
    """Add a place; the parent list is filled by the view."""

    kind = SelectField(
        "What is it?", choices=[SelectChoice(k.value, label) for k, label in KIND_LABELS.items()]
    )
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    parent_id = SelectField("Inside", coerce=str, validators=[Optional()])
    capacity = IntegerField(
        "Slots",
        validators=[Optional(), NumberRange(1, 200)],
        description="Trolleys, safes and cupboards only: how many devices fit",
    )
    code = StringField("Short code", validators=[Optional(), Length(max=32)])

    def values(self) -> dict[str, Any]:
        return {
            "kind": LocationKind(self.kind.data),
            "name": self.name.data or "",
            "parent_id": int(self.parent_id.data) if self.parent_id.data else None,
            "capacity": self.capacity.data,
            "code": self.code.data or None,
        }


class LocationEditForm(FlaskForm):
    """Rename, resize or move a place; the parent list is filled by the view."""

    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    parent_id = SelectField("Inside", coerce=str, validators=[Optional()])
    capacity = IntegerField("Slots", validators=[Optional(), NumberRange(1, 200)])
    code = StringField("Short code", validators=[Optional(), Length(max=32)])

    def changes(self, *, storage: bool) -> dict[str, Any]:
        changes: dict[str, Any] = {
            "name": self.name.data or "",
            "parent_id": int(self.parent_id.data) if self.parent_id.data else None,
            "code": self.code.data or None,
        }
        if storage:
            changes["capacity"] = self.capacity.data
        return changes


class ConfirmForm(FlaskForm):
    """A button that needs nothing but its CSRF token (delete, add next year's terms)."""


class TermForm(FlaskForm):
    starts_on = DateField("Term starts", validators=[DataRequired()])
    half_term_starts_on = DateField("Half term starts", validators=[DataRequired()])
    half_term_ends_on = DateField("Half term ends", validators=[DataRequired()])
    ends_on = DateField("Term ends", validators=[DataRequired()])


class NetworkForm(FlaskForm):
    """One of the school's networks: a Wi-Fi name, a public address range, or both."""

    site_id = SelectField("Site", choices=[], validate_choice=False)
    ssid = StringField(
        "Wi-Fi name",
        validators=[Optional(), Length(max=32)],
        description="As it shows on a device's Wi-Fi list, e.g. OAKFIELD-STAFF.",
    )
    public_range = StringField(
        "School's internet address",
        validators=[Optional(), Length(max=49)],
        description="Ask your IT support for the school's public address or range, e.g. "
        "81.2.69.160 or 81.2.69.0/24. Chromebooks are judged by this.",
    )

    def values(self) -> dict[str, Any]:
        return {
            "site_id": int(self.site_id.data) if self.site_id.data else None,
            "ssid": self.ssid.data or "",
            "public_range": self.public_range.data or "",
        }
