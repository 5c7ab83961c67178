"""Log-in, second-factor and account forms (CSRF comes with FlaskForm)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Regexp

from server.auth.models import ROLE_LABELS


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class CodeForm(FlaskForm):
    code = StringField(
        "6-digit code",
        validators=[
            DataRequired(),
            Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message="Enter the 6 digits."),
        ],
    )


class TokenForm(FlaskForm):
    name = StringField("What is it for?", validators=[DataRequired(), Length(max=120)])


class EmptyForm(FlaskForm):
    """A form with nothing but its CSRF token (sign out, revoke)."""


class UserForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    role = SelectField(
        "Role", choices=[SelectChoice(r.value, label) for r, label in ROLE_LABELS.items()]
    )
    password = PasswordField("First password", validators=[DataRequired(), Length(min=10, max=200)])
