"""Account forms. Every field has a length limit and a clear message."""

from __future__ import annotations

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length, Optional

from campaign.core.forms import PlainText, email_field, strip_filter

PASSWORD_MIN = 10
PASSWORD_MAX = 200


def _new_password_field(label: str = "Password") -> PasswordField:
    return PasswordField(
        _l(label),
        validators=[
            InputRequired(_l("Choose a password.")),
            Length(
                min=PASSWORD_MIN,
                max=PASSWORD_MAX,
                message=_l(
                    "Use between %(min)d and %(max)d characters.",
                    min=PASSWORD_MIN,
                    max=PASSWORD_MAX,
                ),
            ),
        ],
        description=_l("At least 10 characters. A few unrelated words make a strong one."),
    )


def _confirm_field(other: str) -> PasswordField:
    return PasswordField(
        _l("Type the password again"),
        validators=[
            InputRequired(_l("Type the password again.")),
            EqualTo(other, message=_l("The two passwords are not the same.")),
        ],
    )


def _current_password_field(label: str = "Current password") -> PasswordField:
    return PasswordField(
        _l(label),
        validators=[
            InputRequired(_l("Enter your password.")),
            Length(max=PASSWORD_MAX, message=_l("That is too long to be a password.")),
        ],
    )


class RegisterForm(FlaskForm):
    display_name = StringField(
        _l("Your name (optional)"),
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(max=80, message=_l("Keep it under 80 characters.")),
            PlainText(),
        ],
        description=_l("Shown to the organisers of groups you join. A first name is enough."),
    )
    email = email_field()
    password = _new_password_field()
    password_again = _confirm_field("password")


class LoginForm(FlaskForm):
    email = email_field()
    password = _current_password_field("Password")
    remember = BooleanField(_l("Keep me logged in on this device"))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        days = current_app.config["REMEMBER_COOKIE_DURATION"].days
        self.remember.label.text = _l(
            "Keep me logged in on this device for %(days)d days", days=days
        )


class TwoFactorForm(FlaskForm):
    code = StringField(
        _l("Six-digit code from your authenticator app"),
        filters=[strip_filter],
        validators=[
            InputRequired(_l("Enter the code from your app.")),
            Length(
                min=6,
                max=24,
                message=_l("Enter the six-digit code, or one of your recovery codes."),
            ),
        ],
    )


class ForgotPasswordForm(FlaskForm):
    email = email_field()


class ResetPasswordForm(FlaskForm):
    password = _new_password_field("New password")
    password_again = _confirm_field("password")


class ChangePasswordForm(FlaskForm):
    current_password = _current_password_field()
    new_password = _new_password_field("New password")
    new_password_again = _confirm_field("new_password")


class ChangeEmailForm(FlaskForm):
    new_email = email_field(_l("New email address"))
    password = _current_password_field()


class DisableTwoFactorForm(FlaskForm):
    password = _current_password_field()


class RecoveryCodesForm(FlaskForm):
    """Make new recovery codes: the password, so an unattended session cannot."""

    password = _current_password_field()


class ConfirmForm(FlaskForm):
    """A form with only a CSRF token: the one button on a confirm page."""
