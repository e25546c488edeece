"""Form helpers shared by every capability: validators and the 422 re-render."""

from __future__ import annotations

import re

from flask import render_template
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, ValidationError
from wtforms.fields import Field
from wtforms.validators import Email, InputRequired, Length, Optional

_MARKUP = re.compile(r"[<>]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class PlainText:
    """Refuse angle brackets and control characters in short text such as names.

    Jinja escapes everything anyway; refusing markup here gives the person a clear
    message instead of storing text that would look broken wherever it is shown.
    """

    def __init__(self, message: str | None = None) -> None:
        self.message = message

    def __call__(self, form: FlaskForm, field: Field) -> None:
        value = field.data or ""
        if _MARKUP.search(value):
            raise ValidationError(self.message or _l("Please remove the < and > characters."))
        if _CONTROL.search(value):
            raise ValidationError(_l("This contains characters that are not allowed."))


class Slug:
    def __call__(self, form: FlaskForm, field: Field) -> None:
        if field.data and not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", field.data):
            raise ValidationError(
                _l("Use lowercase letters, digits and single hyphens, e.g. riverside-health.")
            )


class Deliverable:
    """Refuse an address we could not deliver to: a non-ASCII local part when the relay
    does not offer SMTPUTF8 (``MAIL_SMTPUTF8`` off). Said at once, not found out later
    by a message that never arrives."""

    def __call__(self, form: FlaskForm, field: Field) -> None:
        from campaign.core.addresses import address_deliverable

        if field.data and not address_deliverable(field.data):
            raise ValidationError(
                _l(
                    "We cannot send email to addresses with non-English letters before "
                    "the @ yet. Please use another address."
                )
            )


def strip_filter(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def email_field(
    label: object = _l("Email address"),
    *,
    required: object | None = _l("Enter your email address."),
    description: object | None = None,
) -> EmailField:
    """An email address field with our length limit and messages; optional when
    ``required`` is None."""
    first = InputRequired(required) if required is not None else Optional()
    return EmailField(
        label,
        filters=[strip_filter],
        validators=[
            first,
            Length(max=254, message=_l("An email address is at most 254 characters.")),
            Email(
                message=_l("Enter an email address like name@example.org."),
                check_deliverability=False,
            ),
            Deliverable(),
        ],
        description=description,
    )


def render_form(template: str, form: FlaskForm, **context: object) -> tuple[str, int]:
    """Render a form page; 422 when it was submitted with errors, 200 otherwise."""
    status = 422 if form.is_submitted() and form.errors else 200
    return render_template(template, form=form, **context), status
