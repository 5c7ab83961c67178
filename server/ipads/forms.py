"""The form for a school's Apple push credentials: a certificate and key, or a token key."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import PasswordField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional


class PushForm(FlaskForm):
    auth = RadioField(
        "How Trolley signs in to Apple's push service",
        choices=[
            SelectChoice(
                "certificate", "MDM push certificate (from Apple's Push Certificates Portal)"
            ),
            SelectChoice("token", "Token key (.p8) from an Apple developer team"),
        ],
        default="certificate",
    )
    certificate_file = FileField(
        "Push certificate (.pem or .p12)",
        description="A .p12 holds the certificate and its key together.",
    )
    key_file = FileField("Its private key (.pem)", description="Not needed with a .p12 file.")
    passphrase = PasswordField(
        "Passphrase", validators=[Optional(), Length(max=200)], description="If it has one."
    )
    p8_file = FileField("Token key (.p8)")
    key_id = StringField("Key ID", validators=[Optional(), Length(max=16)])
    team_id = StringField("Team ID", validators=[Optional(), Length(max=16)])
    topic = StringField(
        "MDM push topic",
        validators=[Optional(), Length(max=255)],
        description="com.apple.mgmt.External. followed by a UUID.",
    )
