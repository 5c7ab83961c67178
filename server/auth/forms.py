"""Log-in, second-factor, account, people and security-settings forms (CSRF comes with
FlaskForm)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, IntegerField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Regexp

from server.auth.models import ROLE_LABELS, TokenScope
from server.auth.services import IDLE_MINUTES_RANGE

ROLE_CHOICES = [SelectChoice(r.value, label) for r, label in ROLE_LABELS.items()]


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
    scope = SelectField(
        "It may",
        choices=[
            SelectChoice(TokenScope.READ.value, "Only read"),
            SelectChoice(TokenScope.READ_WRITE.value, "Read and change things"),
        ],
        default=TokenScope.READ.value,
    )
    days = IntegerField(
        "Days until it stops working", validators=[DataRequired(), NumberRange(min=1, max=365)]
    )


class EmptyForm(FlaskForm):
    """A form with nothing but its CSRF token (sign out, revoke)."""


class UserForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    password = PasswordField("First password", validators=[DataRequired(), Length(min=10, max=200)])


class ReasonForm(FlaskForm):
    """Turning an account off or back on: the reason goes into the activity trail."""

    reason = StringField("Why?", validators=[DataRequired("Give a reason."), Length(max=500)])


class RoleForm(FlaskForm):
    role = SelectField("New role", choices=ROLE_CHOICES)


class SecurityForm(FlaskForm):
    idle_minutes = IntegerField(
        "Sign people out after this many minutes without activity",
        validators=[
            DataRequired(),
            NumberRange(
                min=IDLE_MINUTES_RANGE[0],
                max=IDLE_MINUTES_RANGE[1],
                message=f"Choose {IDLE_MINUTES_RANGE[0]} to {IDLE_MINUTES_RANGE[1]} minutes.",
            ),
        ],
    )
