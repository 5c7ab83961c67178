"""Escrow forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from server.escrow.models import SecretKind


class DepositForm(FlaskForm):
    kind = SelectField("What is it", choices=[SelectChoice(k.value, k.label) for k in SecretKind])
    label = StringField("Note (e.g. which account)", validators=[Optional(), Length(max=120)])
    secret = PasswordField(
        "PIN, passcode or password", validators=[DataRequired(), Length(max=500)]
    )


class RevealForm(FlaskForm):
    reason = StringField("Why do you need it?", validators=[DataRequired(), Length(max=300)])
