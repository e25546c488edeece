"""Forms strangers fill in: signing up for an action, changing or cancelling a place,
and the filters of the public action lists."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from campaign.actions.models import ActionKind
from campaign.core.forms import PlainText, email_field, strip_filter

KIND_LABELS = {
    ActionKind.PROTEST.value: _l("Protest"),
    ActionKind.PUBLIC_MEETING.value: _l("Public meeting"),
    ActionKind.STALL.value: _l("Stall"),
    ActionKind.TRAINING.value: _l("Training"),
    ActionKind.BOARD_MEETING.value: _l("NHS board meeting"),
    ActionKind.CONSULTATION.value: _l("Consultation"),
    ActionKind.OTHER.value: _l("Other"),
}


def _name() -> StringField:
    return StringField(
        _l("Your name"),
        filters=[strip_filter],
        validators=[
            InputRequired(_l("Enter your name.")),
            Length(max=120, message=_l("Keep it under 120 characters.")),
            PlainText(),
        ],
    )


def _phone() -> StringField:
    return StringField(
        _l("Phone number (optional)"),
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(max=40, message=_l("Keep it under 40 characters.")),
            PlainText(),
        ],
    )


def _access_needs() -> TextAreaField:
    return TextAreaField(
        _l("What access needs do you have? (optional)"),
        description=_l("Only the organisers of this action see this."),
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(max=1000, message=_l("Keep it under 1000 characters.")),
        ],
    )


class ActionSignupForm(FlaskForm):
    name = _name()
    email = email_field(
        description=_l("We email you your place and a link to change or cancel it.")
    )
    phone = _phone()
    access_needs = _access_needs()
    # Never pre-ticked (PECR); the label names the group, set by the view.
    wants_updates = BooleanField(default=False)
    # A field people never see; bots fill it in.
    website = StringField(_l("Leave this empty"), validators=[Optional(), Length(max=200)])


class SignupChangeForm(FlaskForm):
    """A person changes their own sign-up from the emailed link."""

    name = _name()
    phone = _phone()
    access_needs = _access_needs()


class CancelSignupForm(FlaskForm):
    """Only a CSRF token: the one button that gives up a place."""


class ActionFilterForm(FlaskForm):
    """The public lists' filters, read from the query string."""

    class Meta:
        csrf = False

    kind = SelectField(
        _l("Kind of action"),
        choices=[SelectChoice("", _l("Any"))]
        + [SelectChoice(value, label) for value, label in KIND_LABELS.items()],
        validators=[Optional()],
    )
    area = StringField(
        _l("Town or area"),
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(max=120, message=_l("Keep it under 120 characters.")),
            PlainText(),
        ],
    )
