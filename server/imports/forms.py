"""Forms for taking in a spreadsheet."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, FieldList, SelectField
from wtforms.fields.choices import SelectChoice

from server.imports.services import COLUMNS

FIELD_CHOICES = [SelectChoice("", "Nothing (ignore this column)")] + [
    SelectChoice(column.key, column.heading) for column in COLUMNS
]


class UploadForm(FlaskForm):
    file = FileField(
        "Your spreadsheet, saved as CSV",
        validators=[FileRequired("Choose the file to upload.")],
        description="In Excel: File › Save As › CSV UTF-8. Up to 5 MB.",
    )


class MappingForm(FlaskForm):
    columns = FieldList(SelectField("Holds", choices=FIELD_CHOICES))
    create_locations = BooleanField("Add missing places to Places (as rooms)")
    parent = SelectField("Put new rooms in", choices=[], validate_choice=False)
