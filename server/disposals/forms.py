"""Disposal forms: batch details, adding a device, completing, erasure evidence."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from server.devices.services.parsing import parse_uk_date
from server.disposals.models import ErasureMethod, WipeMethod


class UKDateField(StringField):
    """A date typed the way school staff write it: 01/09/2021 or 1 Sept 2021."""

    def pre_validate(self, form: Any) -> None:
        if self.data and self.data.strip():
            try:
                parse_uk_date(self.data)
            except ValueError as exc:
                raise ValidationError(str(exc)) from exc

    @property
    def value(self) -> date | None:
        return parse_uk_date(self.data) if self.data and self.data.strip() else None


WIPE_CHOICES = [SelectChoice(m.value, m.label) for m in WipeMethod]


class BatchForm(FlaskForm):
    collection_date = UKDateField(
        "Collection date", validators=[Optional()], description="For example 18/07/2025"
    )
    agency_name = StringField("Authorised agency", validators=[Optional(), Length(max=200)])
    waste_transfer_note = StringField(
        "WEEE waste transfer note number", validators=[Optional(), Length(max=64)]
    )
    erasure_certificate = StringField(
        "Data-erasure certificate number", validators=[Optional(), Length(max=64)]
    )
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=2000)])

    def values(self) -> dict[str, Any]:
        return {
            "collection_date": self.collection_date.value,
            "agency_name": self.agency_name.data or "",
            "waste_transfer_note": self.waste_transfer_note.data or "",
            "erasure_certificate": self.erasure_certificate.data or "",
            "notes": self.notes.data or "",
        }


class AddDeviceForm(FlaskForm):
    asset_tag = StringField(
        "Asset tag", validators=[DataRequired("Scan or type the asset tag."), Length(max=32)]
    )
    wipe_method = SelectField("Wipe method at the agency", choices=WIPE_CHOICES)
    certificate_line = StringField(
        "Certificate line (if known)", validators=[Optional(), Length(max=64)]
    )
    erasure_method = SelectField(
        "Erasure before collection",
        choices=[
            SelectChoice("", "Already on record (for example confirmed by the device)"),
            SelectChoice(ErasureMethod.FACTORY_RESET.value, "Factory reset, checked by me"),
            SelectChoice(ErasureMethod.DESTROYED.value, "Screen and storage destroyed"),
        ],
        validators=[Optional()],
    )
    erasure_evidence = TextAreaField(
        "Evidence",
        validators=[Optional(), Length(max=400)],
        description="What shows the storage is erased, e.g. 'reset screen seen on 3 July'",
    )


class ItemForm(FlaskForm):
    wipe_method = SelectField("Wipe method", choices=WIPE_CHOICES)
    certificate_line = StringField("Certificate line", validators=[Optional(), Length(max=64)])


class CompleteForm(FlaskForm):
    confirm = BooleanField(
        "The agency has collected these devices and I have its certificate",
        validators=[DataRequired("Tick to confirm the agency has collected the devices.")],
    )


class ErasureForm(FlaskForm):
    method = SelectField(
        "What was done", choices=[SelectChoice(m.value, m.label) for m in ErasureMethod]
    )
    evidence = StringField(
        "Evidence", validators=[DataRequired("Describe the evidence."), Length(max=400)]
    )
