"""Group forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, SelectField, StringField, TextAreaField
from wtforms.fields import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from campaign.core.forms import PlainText, email_field, strip_filter
from campaign.groups.models import Role

ROLE_CHOICES = [
    SelectChoice(Role.MEMBER.value, _l("Member")),
    SelectChoice(Role.VOLUNTEER.value, _l("Volunteer")),
    SelectChoice(Role.CASEWORKER.value, _l("Caseworker")),
    SelectChoice(Role.ORGANISER.value, _l("Organiser")),
]
ROLE_HINT = _l(
    "Members see the group's page for members and can leave the group. Volunteers can "
    "also run door check-in at actions whose organiser allows it. Caseworkers can do what "
    "volunteers do; casework (with two-factor login) is not open yet. Organisers run the "
    "group: members, supporters, mail and actions."
)


def _contact_email() -> EmailField:
    return email_field(
        _l("Public contact email"),
        required=_l("Enter an email address people can write to."),
        description=_l("Shown on the group's public page. A shared group address is best."),
    )


class GroupDetailsForm(FlaskForm):
    name = StringField(
        _l("Group name"),
        filters=[strip_filter],
        validators=[
            InputRequired(_l("Enter the group's name.")),
            Length(min=3, max=120, message=_l("Use between 3 and 120 characters.")),
            PlainText(),
        ],
    )
    area = StringField(
        _l("Area or town"),
        filters=[strip_filter],
        validators=[
            InputRequired(_l("Enter the area or town the group works in.")),
            Length(max=120, message=_l("Keep it under 120 characters.")),
            PlainText(),
        ],
    )
    description = TextAreaField(
        _l("What the group does"),
        filters=[strip_filter],
        validators=[
            InputRequired(_l("Say in a few sentences what the group does.")),
            Length(max=5000, message=_l("Keep it under 5,000 characters.")),
        ],
        description=_l("Public. You can use Markdown: *emphasis*, lists, links."),
    )
    contact_email = _contact_email()


class GroupSettingsForm(GroupDetailsForm):
    require_caseworker_2fa = BooleanField(
        _l("Caseworkers must use two-factor authentication to open casework"),
        description=_l("Casework pages are not open yet; this applies from the day they are."),
    )


class InviteForm(FlaskForm):
    email = email_field(
        _l("Their email address"), required=_l("Enter the email address to invite.")
    )
    role = SelectField(
        _l("Role"),
        choices=ROLE_CHOICES,
        coerce=int,
        default=Role.MEMBER.value,
        description=ROLE_HINT,
        validators=[InputRequired(_l("Choose a role."))],
    )


class RoleForm(FlaskForm):
    role = SelectField(
        _l("Role"),
        choices=ROLE_CHOICES,
        coerce=int,
        validators=[InputRequired(_l("Choose a role."))],
    )


class DecisionForm(FlaskForm):
    note = TextAreaField(
        _l("Note to the applicant (optional; required when rejecting)"),
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(max=1000, message=_l("Keep it under 1,000 characters.")),
            PlainText(),
        ],
    )


class SearchForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(
        _l("Search by name or area"),
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(max=100, message=_l("Keep the search under 100 characters.")),
        ],
    )


class ButtonForm(FlaskForm):
    """Only a CSRF token, for one-button actions."""
