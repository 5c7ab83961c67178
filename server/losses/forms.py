"""Loss forms: the report any member of staff makes, and the headteacher's steps."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, RadioField, StringField, TextAreaField
from wtforms.fields import DateTimeLocalField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from server.losses.models import DECISION_LABELS, OUTCOME_LABELS, RISK_LABELS, LossKind

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


class ReportForm(FlaskForm):
    asset_tag = StringField(
        "Asset tag",
        validators=[DataRequired("Enter the asset tag from the device's label."), Length(max=32)],
        description="It is printed on the label, for example OAK-IPAD-031.",
    )
    kind = RadioField(
        "Lost or stolen?",
        choices=[
            SelectChoice(LossKind.LOST.value, "Lost: we do not know where it is"),
            SelectChoice(LossKind.STOLEN.value, "Stolen"),
        ],
        default=LossKind.LOST.value,
        validators=[InputRequired("Say whether the device is lost or stolen.")],
    )
    last_seen_at = DateTimeLocalField(
        "When was it last seen?",
        format=LOCAL_FORMAT,
        validators=[InputRequired("Say when the device was last seen, as near as you know.")],
    )
    last_seen_where = StringField(
        "Where was it last seen?",
        validators=[DataRequired("Say where the device was last seen."), Length(max=200)],
        description="For example: Year 4 classroom, on the reading table.",
    )
    circumstances = TextAreaField(
        "What happened?",
        validators=[DataRequired("Say what happened, as far as you know."), Length(max=4000)],
    )
    police_reference = StringField(
        "Police crime reference, if you have one", validators=[Optional(), Length(max=64)]
    )


class AssessmentForm(FlaskForm):
    personal_data = TextAreaField(
        "What personal data could be on the device?",
        validators=[
            DataRequired("Say what personal data could be on the device."),
            Length(max=4000),
        ],
    )
    risk = RadioField(
        "Your judgement of the risk to people",
        choices=[SelectChoice(r.value, label) for r, label in RISK_LABELS.items()],
        validators=[InputRequired("Choose your judgement of the risk to people.")],
    )
    risk_notes = TextAreaField(
        "Your reasons",
        validators=[
            DataRequired("Explain your judgement of the risk to people."),
            Length(max=4000),
        ],
    )


class AwarenessForm(FlaskForm):
    aware_at = DateTimeLocalField(
        "When did the school become aware?",
        format=LOCAL_FORMAT,
        validators=[InputRequired("Give the date and time the school became aware.")],
    )
    reason = StringField(
        "Why is it changing?",
        validators=[DataRequired("Say why the time of awareness is changing."), Length(max=500)],
    )


class DecisionForm(FlaskForm):
    decision = RadioField(
        "Report to the ICO?",
        choices=[SelectChoice(d.value, label) for d, label in DECISION_LABELS.items()],
        validators=[InputRequired("Choose whether to report the loss to the ICO.")],
    )
    justification = TextAreaField(
        "Justification",
        validators=[
            DataRequired("Write down why you decided this; it is kept in the breach log."),
            Length(max=4000),
        ],
    )
    ico_reference = StringField(
        "ICO reference, if already reported", validators=[Optional(), Length(max=64)]
    )


class IcoForm(FlaskForm):
    reference = StringField(
        "ICO reference",
        validators=[DataRequired("Enter the reference the ICO gave you."), Length(max=64)],
    )


class CloseForm(FlaskForm):
    outcome = RadioField(
        "Outcome",
        choices=[SelectChoice(o.value, label) for o, label in OUTCOME_LABELS.items()],
        validators=[InputRequired("Choose how the case ends: found, stolen or written off.")],
    )
    reference = StringField(
        "Reference",
        validators=[Optional(), Length(max=100)],
        description="The police crime reference (stolen) or insurance reference (written off).",
    )
    note = TextAreaField("Note", validators=[Optional(), Length(max=2000)])


class ResetForm(FlaskForm):
    reason = StringField("Reason for the reset", validators=[Optional(), Length(max=400)])


class SettingsForm(FlaskForm):
    dpo_email = EmailField(
        "Data protection officer's e-mail",
        validators=[Optional(), Length(max=254)],
        description="They are e-mailed about every loss, and reminded from 48 hours on.",
    )


class DismissForm(FlaskForm):
    """The headteacher says a possibly lost device is not lost, and why."""

    note = StringField(
        "Why it is not lost",
        validators=[DataRequired("Say why the device is not lost."), Length(max=500)],
        description="For example: in the office for repair.",
    )
