"""Forms for linking the Google domain and adding Chromebooks Google knows to the register."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

MAX_KEY_BYTES = 20_000


class LinkForm(FlaskForm):
    key_file = FileField(
        "Service account key (JSON)",
        description="Leave empty to keep the key already uploaded. It is never shown again.",
    )
    customer_id = StringField(
        "Customer ID",
        validators=[DataRequired("Enter the customer ID."), Length(max=64)],
        description="Google Admin console › Account › Account settings, e.g. C03az79cb.",
    )
    admin_email = StringField(
        "Administrator Trolley acts as",
        validators=[DataRequired("Enter the administrator's e-mail address."), Length(max=254)],
    )
    school_networks = TextAreaField(
        "The school's public IP addresses",
        validators=[Optional(), Length(max=2000)],
        description="One a line (81.2.69.160 or 81.2.69.0/24). A Chromebook last seen "
        "elsewhere is shown as off-site.",
    )


class AddForm(FlaskForm):
    asset_tag = StringField(
        "Asset tag", validators=[DataRequired("Enter the asset tag on its label."), Length(max=32)]
    )
