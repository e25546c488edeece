"""Organisers' forms for actions: the action itself, walk-ins, a message to attendees.

Start and end are typed as they read on a UK clock (config ``TIMEZONE``); the form
turns them into UTC (``start_utc``/``end_utc``) and refuses a time the clocks skip.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
    ValidationError,
)
from wtforms.fields import Field, SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from campaign.actions.models import ActionKind
from campaign.actions.organising import NonExistentTime, local_to_utc
from campaign.core.forms import PlainText, email_field, strip_filter
from campaign.core.models import utcnow

TITLE_MAX = 160
DESCRIPTION_MAX = 20_000
ACCESSIBILITY_MAX = 2_000
CAPACITY_MAX = 100_000
SUBJECT_MAX = 200
MESSAGE_MAX = 20_000

KIND_LABELS = {
    ActionKind.PROTEST.value: _l("Protest or demonstration"),
    ActionKind.PUBLIC_MEETING.value: _l("Public meeting"),
    ActionKind.STALL.value: _l("Street stall"),
    ActionKind.TRAINING.value: _l("Training"),
    ActionKind.BOARD_MEETING.value: _l("NHS Trust or ICB board meeting"),
    ActionKind.CONSULTATION.value: _l("Public consultation"),
    ActionKind.OTHER.value: _l("Something else"),
}


def _too_long(n: int) -> str:
    return _l("Keep it under %(n)d characters.", n=n)


class Capacity:
    """Blank for no limit, else a whole number of places from 1 up."""

    def __call__(self, form: FlaskForm, field: Field) -> None:
        raw = (field.data or "").strip()
        if not raw:
            field.places = None
            return
        try:
            places = int(raw)
        except ValueError:
            raise ValidationError(
                _l("Enter a whole number of places, like 30, or leave it empty for no limit.")
            ) from None
        if places <= 0:
            raise ValidationError(
                _l("The number of places must be 1 or more. Leave it empty for no limit.")
            )
        if places > CAPACITY_MAX:
            raise ValidationError(_l("That is more than %(n)d places.", n=CAPACITY_MAX))
        field.places = places


class ActionForm(FlaskForm):
    title = StringField(
        _l("Title"),
        filters=[strip_filter],
        validators=[InputRequired(_l("Give the action a title.")),
                    Length(max=TITLE_MAX, message=_too_long(TITLE_MAX)), PlainText()],
    )  # fmt: skip
    kind = SelectField(
        _l("Kind of action"),
        choices=[SelectChoice(value, label) for value, label in KIND_LABELS.items()],
        default=ActionKind.OTHER.value,
        validate_choice=True,
    )
    description = TextAreaField(
        _l("Description"),
        description=_l("What will happen and why it matters. You can use Markdown."),
        validators=[Optional(), Length(max=DESCRIPTION_MAX, message=_too_long(DESCRIPTION_MAX))],
    )
    start_date = DateField(
        _l("Start date"),
        validators=[InputRequired(_l("Enter the date it starts."))],
        description=_l("UK time."),
    )
    start_time = TimeField(
        _l("Start time"), validators=[InputRequired(_l("Enter the time it starts, like 14:30."))]
    )
    end_date = DateField(_l("End date"), validators=[InputRequired(_l("Enter the date it ends."))])
    end_time = TimeField(
        _l("End time"), validators=[InputRequired(_l("Enter the time it ends, like 16:00."))]
    )
    is_online = BooleanField(_l("This action is online"))
    online_url = StringField(
        _l("Link to join (online only)"),
        filters=[strip_filter],
        description=_l("Starts with https://"),
        validators=[Optional(), Length(max=500, message=_too_long(500))],
    )
    place_name = StringField(
        _l("Place name"),
        filters=[strip_filter],
        description=_l("For example: Riverside Community Centre."),
        validators=[Optional(), Length(max=160, message=_too_long(160)), PlainText()],
    )
    address = StringField(
        _l("Address"),
        filters=[strip_filter],
        validators=[Optional(), Length(max=500, message=_too_long(500)), PlainText()],
    )
    area = StringField(
        _l("Town or area"),
        filters=[strip_filter],
        description=_l("Always shown, so people can find actions near them."),
        validators=[Optional(), Length(max=120, message=_too_long(120)), PlainText()],
    )
    place_public = BooleanField(
        _l("Show the place or link to everyone (untick: only to people with a place)"),
        default=True,
    )
    accessibility = TextAreaField(
        _l("Accessibility"),
        description=_l("Step-free access, toilets, seating, interpreters, quiet space…"),
        validators=[Optional(),
                    Length(max=ACCESSIBILITY_MAX, message=_too_long(ACCESSIBILITY_MAX))],
    )  # fmt: skip
    capacity = StringField(
        _l("Number of places (optional)"),
        filters=[strip_filter],
        description=_l("Leave empty for no limit. When it is full, people join a waitlist."),
        validators=[Capacity()],
    )
    volunteers_check_in = BooleanField(
        _l("Volunteers can run door check-in for this action"),
        description=_l(
            "Members with the volunteer or caseworker role can then open the check-in list "
            "(names and access needs, never addresses or phone numbers), mark people as "
            "here and add walk-ins. Organisers always can."
        ),
    )
    reminder_hours = IntegerField(
        _l("Send a reminder this many hours before"),
        default=24,
        validators=[
            InputRequired(_l("Enter a number of hours from 1 to 168.")),
            NumberRange(min=1, max=168, message=_l("Enter a number of hours from 1 to 168.")),
        ],
    )

    def __init__(self, *args: object, original_start: datetime | None = None, **kwargs: object):
        super().__init__(*args, **kwargs)
        self._original_start = original_start
        self.start_utc: datetime | None = None
        self.end_utc: datetime | None = None

    def validate(self, extra_validators: object = None) -> bool:
        ok = super().validate(extra_validators)
        zone = current_app.config["TIMEZONE"]
        if self.start_date.data and self.start_time.data:
            try:
                self.start_utc = local_to_utc(self.start_date.data, self.start_time.data, zone)
            except NonExistentTime:
                self.start_time.errors.append(_l(
                    "This time does not exist on that day: the clocks go forward an hour. "
                    "Choose a time an hour later."))  # fmt: skip
                ok = False
        if self.end_date.data and self.end_time.data:
            try:
                self.end_utc = local_to_utc(self.end_date.data, self.end_time.data, zone)
            except NonExistentTime:
                self.end_time.errors.append(_l(
                    "This time does not exist on that day: the clocks go forward an hour. "
                    "Choose a time an hour later."))  # fmt: skip
                ok = False
        start_changed = self.start_utc is not None and self.start_utc != self._original_start
        if start_changed and self.start_utc <= utcnow():
            self.start_date.errors.append(_l("The start is in the past. Choose a later date."))
            ok = False
        if self.start_utc and self.end_utc and self.end_utc <= self.start_utc:
            self.end_date.errors.append(_l("The end must be after the start."))
            ok = False
        if self.is_online.data:
            url = self.online_url.data or ""
            if not url:
                self.online_url.errors.append(_l("Give the link people use to join."))
                ok = False
            elif not url.lower().startswith("https://") or any(c in url for c in "<> \"'"):
                self.online_url.errors.append(_l("Use a secure link that starts with https://"))
                ok = False
        elif not self.place_name.data:
            self.place_name.errors.append(
                _l("Say where it happens, or tick “This action is online”.")
            )
            ok = False
        return ok

    def action_data(self) -> dict[str, object]:
        """The validated values, as the service expects them."""
        return {
            "title": self.title.data,
            "kind": self.kind.data,
            "description": self.description.data or "",
            "starts_at": self.start_utc,
            "ends_at": self.end_utc,
            "is_online": bool(self.is_online.data),
            "online_url": self.online_url.data or "",
            "place_name": self.place_name.data or "",
            "address": self.address.data or "",
            "area": self.area.data or "",
            "place_public": bool(self.place_public.data),
            "accessibility": self.accessibility.data or "",
            "capacity": getattr(self.capacity, "places", None),
            "reminder_hours": self.reminder_hours.data,
            "volunteers_check_in": bool(self.volunteers_check_in.data),
        }


class WalkInForm(FlaskForm):
    name = StringField(
        _l("Name"),
        filters=[strip_filter],
        validators=[InputRequired(_l("Enter their name.")),
                    Length(max=120, message=_too_long(120)), PlainText()],
    )  # fmt: skip
    email = email_field(_l("Email (optional)"), required=None)


class AttendeeMessageForm(FlaskForm):
    subject = StringField(
        _l("Subject"),
        filters=[strip_filter],
        validators=[InputRequired(_l("Write a subject.")),
                    Length(max=SUBJECT_MAX, message=_too_long(SUBJECT_MAX)), PlainText()],
    )  # fmt: skip
    message = TextAreaField(
        _l("Message"),
        description=_l("You can use Markdown."),
        validators=[InputRequired(_l("Write a message.")),
                    Length(max=MESSAGE_MAX, message=_too_long(MESSAGE_MAX))],
    )  # fmt: skip


class ButtonForm(FlaskForm):
    """Only a CSRF token, for one-button confirmations."""
