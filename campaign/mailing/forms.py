"""Forms for composing, sending and unsubscribing from campaign email."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    HiddenField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.fields import Field, SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from campaign.core.forms import PlainText, strip_filter
from campaign.mailing.services import (
    BODY_MAX,
    FIRST_NAME_FIELD,
    SUBJECT_MAX,
    UNSUBSCRIBE_URL_FIELD,
    unknown_merge_fields,
)


class OneLine:
    """A subject is one line: a line break there would end the email header."""

    def __call__(self, form: FlaskForm, field: Field) -> None:
        if "\n" in (field.data or "") or "\r" in (field.data or ""):
            raise ValidationError(_l("Keep the subject on one line."))


class NoMergeFields:
    """Merge fields work in the message only: say so instead of sending '{{first_name}}'."""

    def __call__(self, form: FlaskForm, field: Field) -> None:
        if "{{" in (field.data or ""):
            raise ValidationError(
                _l("Merge fields such as %(field)s work in the message, not the subject.",
                   field=FIRST_NAME_FIELD)
            )  # fmt: skip


class KnownMergeFields:
    """Only our two merge fields, written exactly; anything else would reach people as is."""

    def __call__(self, form: FlaskForm, field: Field) -> None:
        unknown = unknown_merge_fields(field.data or "")
        if unknown:
            # gettext, not lazy_gettext: a lazy string counts as safe HTML in Jinja, and
            # this message quotes what the person typed, which must be escaped.
            raise ValidationError(
                _("%(field)s is not a merge field. Use exactly %(first)s or %(url)s.",
                  field=unknown[0], first=FIRST_NAME_FIELD, url=UNSUBSCRIBE_URL_FIELD)
            )  # fmt: skip


class ComposeForm(FlaskForm):
    """A draft mailing: subject, Markdown message and the list it goes to."""

    subject = StringField(
        _l("Subject"),
        filters=[strip_filter],
        validators=[
            InputRequired(_l("Write a subject.")),
            Length(max=SUBJECT_MAX,
                   message=_l("Keep the subject under %(n)d characters.", n=SUBJECT_MAX)),
            PlainText(),
            OneLine(),
            NoMergeFields(),
        ],
    )  # fmt: skip
    body = TextAreaField(
        _l("Message"),
        description=_l(
            "Markdown: **bold**, *italic*, [link text](https://example.org), lines starting "
            "with - for a list. %(first)s puts in the person's first name (or “friend”); "
            "%(url)s their own unsubscribe link. A footer saying why they get this email, "
            "with an unsubscribe link, is always added.",
            first=FIRST_NAME_FIELD,
            url=UNSUBSCRIBE_URL_FIELD,
        ),
        validators=[
            InputRequired(_l("Write the message.")),
            Length(max=BODY_MAX,
                   message=_l("Keep the message under %(n)d characters.", n=BODY_MAX)),
            KnownMergeFields(),
        ],
    )  # fmt: skip
    # Choices (with how many people each reaches now) are set by the view.
    segment = SelectField(_l("Send to"), choices=[], validate_choice=True)


class LocalDateTimeField(DateTimeLocalField):
    """A date and time in the group's zone; a clear message when it cannot be read."""

    def process_formdata(self, valuelist: list[str]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(
                _l("Enter a date and time like 2030-06-01 18:30 (day, month, year and time).")
            ) from None


class SendForm(FlaskForm):
    """Send the mailing now, or at a time (Europe/London)."""

    when = RadioField(
        _l("When"),
        choices=[
            SelectChoice("now", _l("Send now")),
            SelectChoice("later", _l("Send later, at the time below")),
        ],
        default="now",
        validators=[InputRequired(_l("Choose when to send it."))],
    )
    send_at = LocalDateTimeField(
        _l("Date and time (UK time)"),
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        validators=[Optional()],
    )

    def validate(self, extra_validators: dict | None = None) -> bool:
        ok = super().validate(extra_validators)
        # Optional() stops the chain on an empty field, so ask for a time here too.
        if ok and self.when.data == "later" and self.send_at.data is None:
            self.send_at.errors = [_l("Choose the date and time to send it.")]
            return False
        return ok


class PreferencesForm(FlaskForm):
    """Leave one group's updates, or every group's on the platform, for this address."""

    scope = RadioField(
        _l("What would you like to stop?"),
        # The labels name the group and the site: the view sets them.
        choices=[SelectChoice("group", ""), SelectChoice("all", "")],
        validators=[InputRequired(_l("Choose one of the options."))],
    )


class ButtonForm(FlaskForm):
    """Only a CSRF token, for one-button actions."""


class ConfirmSendForm(FlaskForm):
    """The one button that sends now; carries the count the organiser was shown."""

    expected = HiddenField(
        validators=[InputRequired(_l("The page was incomplete. Please try again."))]
    )

    def validate_expected(self, field: HiddenField) -> None:
        if not (field.data or "").isdigit() or len(field.data) > 9:
            raise ValidationError(_l("The page was incomplete. Please try again."))
