"""Supporter-facing and organiser forms for people."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.fields import Field, SelectChoice
from wtforms.validators import InputRequired, Length, Optional, Regexp
from wtforms.widgets import HiddenInput

from campaign.core.forms import PlainText, email_field, strip_filter
from campaign.people.models import UpdatesStatus
from campaign.people.services import MAX_TAGS_PER_SUPPORTER, TAG_MAX_LENGTH, parse_tag_names


class SubscribeForm(FlaskForm):
    first_name = StringField(
        _l("First name (optional)"),
        filters=[strip_filter],
        validators=[Optional(), Length(max=80, message=_l("Keep it under 80 characters.")),
                    PlainText()],
    )  # fmt: skip
    email = email_field()
    # Never pre-ticked (PECR): the label is the consent wording, set by the view.
    consent = BooleanField(
        default=False,
        validators=[InputRequired(_l("Tick the box to say you want the updates."))],
    )
    # A field people never see; bots fill it in.
    website = StringField(_l("Leave this empty"), validators=[Optional(), Length(max=200)])


class ButtonForm(FlaskForm):
    """Only a CSRF token, for one-button confirmations."""


# --- organisers' people pages ---------------------------------------------------------------

STATUS_CHOICES = [
    SelectChoice("", _l("Any")),
    SelectChoice(UpdatesStatus.SUBSCRIBED.value, _l("Getting updates")),
    SelectChoice(UpdatesStatus.PENDING.value, _l("Waiting to confirm")),
    SelectChoice(UpdatesStatus.UNSUBSCRIBED.value, _l("Unsubscribed")),
    SelectChoice(UpdatesStatus.NONE.value, _l("Never asked")),
]


class TagNames:
    """Comma-separated tag names: each one short, at most a few of them."""

    def __call__(self, form: FlaskForm, field: Field) -> None:
        names = parse_tag_names(field.data or "")
        if any(len(name) > TAG_MAX_LENGTH for name in names):
            raise ValidationError(_l("Each tag can be at most %(n)d characters.", n=TAG_MAX_LENGTH))
        if len(names) > MAX_TAGS_PER_SUPPORTER:
            raise ValidationError(_l("Use at most %(n)d tags.", n=MAX_TAGS_PER_SUPPORTER))


def _name_field(label: str) -> StringField:
    return StringField(
        label,
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(max=80, message=_l("Keep it under 80 characters.")),
            PlainText(),
        ],
    )


class SupporterForm(FlaskForm):
    """An organiser adds or corrects a supporter."""

    first_name = _name_field(_l("First name (optional)"))
    last_name = _name_field(_l("Last name (optional)"))
    email = email_field(required=_l("Enter their email address."))
    phone = StringField(
        _l("Phone (optional)"),
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(max=40, message=_l("Keep it under 40 characters.")),
            Regexp(r"^[0-9+()\-. ]*$",
                   message=_l("Use only digits, spaces and + ( ) - .")),
        ],
    )  # fmt: skip
    postcode = StringField(
        _l("Postcode (optional)"),
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(max=10, message=_l("A postcode is at most 10 characters.")),
            PlainText(),
        ],
    )
    tags = StringField(
        _l("Tags (optional)"),
        filters=[strip_filter],
        description=_l("Separate tags with commas, e.g. nurses, stall volunteers."),
        validators=[
            Optional(),
            Length(max=1000, message=_l("Keep the tags under 1,000 characters in all.")),
            PlainText(),
            TagNames(),
        ],
    )
    # Never pre-ticked: consent is what the person said, not a default.
    agreed_in_person = BooleanField(_l("They agreed in person to get email updates"), default=False)

    @property
    def tag_names(self) -> list[str]:
        return parse_tag_names(self.tags.data or "")


class MergeForm(FlaskForm):
    """Merge another supporter (found by their address) into the one on the page."""

    target_id = IntegerField(
        widget=HiddenInput(),
        validators=[InputRequired(_l("Open the supporter to merge into first."))],
    )
    other_email = email_field(
        _l("The other supporter's email address"),
        required=_l("Enter the email address of the supporter to merge in."),
    )


class PeopleFilterForm(FlaskForm):
    """Search and filters of the supporter list (a GET form: no CSRF token)."""

    class Meta:
        csrf = False

    q = StringField(
        _l("Search by name, email or postcode"),
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(max=100, message=_l("Keep the search under 100 characters.")),
        ],
    )
    tag = SelectField(_l("Tag"), choices=[SelectChoice("", _l("Any"))], default="")
    status = SelectField(_l("Updates"), choices=STATUS_CHOICES, default="")


class ImportUploadForm(FlaskForm):
    """Step 1 of an import: the CSV file."""

    file = FileField(
        _l("CSV file"),
        validators=[FileRequired(_l("Choose a CSV file to upload."))],
        description=_l(
            "Save your spreadsheet as CSV (comma or semicolon separated) with the column "
            "names in the first row. Up to 16 MB, about 200,000 rows."
        ),
    )


class ImportConsentForm(FlaskForm):
    """Step 2: what the people in the file agreed to (optional, never assumed)."""

    agreed = BooleanField(
        _l("Everyone in this file agreed to get our email updates"), default=False
    )
    statement = TextAreaField(
        _l("How and when did they agree?"),
        filters=[strip_filter],
        validators=[Length(max=500, message=_l("Keep it under 500 characters.")),
                    PlainText()],
        description=_l(
            "For example: “Signed the paper sheet at the March public meeting, which said "
            "we would email them updates.” This is kept as the record of their consent."
        ),
    )  # fmt: skip

    def validate_statement(self, field: TextAreaField) -> None:
        if self.agreed.data and not field.data:
            raise ValidationError(_l("Say how and when they agreed, so there is a record."))
        if field.data and not self.agreed.data:
            raise ValidationError(_l("Tick the box too, or leave this empty."))
