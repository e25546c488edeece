"""Supporter-facing and organiser forms for people."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, StringField
from wtforms.validators import Email, InputRequired, Length, Optional

from campaign.core.forms import PlainText, strip_filter


class SubscribeForm(FlaskForm):
    first_name = StringField(
        _l("First name (optional)"),
        filters=[strip_filter],
        validators=[Optional(), Length(max=80, message=_l("Keep it under 80 characters.")),
                    PlainText()],
    )  # fmt: skip
    email = EmailField(
        _l("Email address"),
        filters=[strip_filter],
        validators=[
            InputRequired(_l("Enter your email address.")),
            Length(max=254, message=_l("An email address is at most 254 characters.")),
            Email(message=_l("Enter an email address like name@example.org."),
                  check_deliverability=False),
        ],
    )  # fmt: skip
    # Never pre-ticked (PECR): the label is the consent wording, set by the view.
    consent = BooleanField(
        default=False,
        validators=[InputRequired(_l("Tick the box to say you want the updates."))],
    )
    # A field people never see; bots fill it in.
    website = StringField(_l("Leave this empty"), validators=[Optional(), Length(max=200)])


class ButtonForm(FlaskForm):
    """Only a CSRF token, for one-button confirmations."""
