"""Forms for taking in a spreadsheet."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, FieldList, IntegerField, SelectField, SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import NumberRange, Optional

from server.imports.services import COLUMNS

FIELD_CHOICES = [SelectChoice("", "Nothing (ignore this column)")] + [
    SelectChoice(column.key, column.heading) for column in COLUMNS
]


class UploadForm(FlaskForm):
    file = FileField(
        "Your spreadsheet (Excel .xlsx or CSV)",
        validators=[FileRequired("Choose the file to upload.")],
        description="An Excel workbook as it is, or a CSV file in any encoding. Up to 5 MB.",
    )


class MappingForm(FlaskForm):
    columns = FieldList(SelectField("Holds", choices=FIELD_CHOICES))
    create_locations = BooleanField("Add missing places to Places (as rooms)")
    parent = SelectField("Put new rooms in", choices=[], validate_choice=False)
    header_row = IntegerField(
        "The headings are on row", validators=[Optional(), NumberRange(min=1, max=10_000)]
    )
    # The new asset tags whose row may re-tag the device that has the row's serial number.
    retag = SelectMultipleField("Re-tag", choices=[], validate_choice=False)
