"""Account rules: registration, confirmation, login with lockout, 2FA, resets.

Services flush, never commit: the view, task or CLI command owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pyotp
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from campaign.accounts.models import User, new_session_token
from campaign.core import audit
from campaign.core.addresses import normalise_email
from campaign.core.crypto import decrypt_field, encrypt_field, needs_rotation
from campaign.core.links import external_url
from campaign.core.models import utcnow
from campaign.core.outbox import MailCategory, queue_email
from campaign.core.passwords import hash_password, needs_rehash, verify_password
from campaign.core.tokens import TokenError, fingerprint, make_token, read_token
from campaign.extensions import db


class AccountError(Exception):
    """A rule was broken; the message is safe to show to the person."""


def user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.lower()))


def user_by_session_token(token: str) -> User | None:
    return db.session.scalar(select(User).where(User.session_token == token))


def _external(endpoint: str, **values: object) -> str:
    return external_url(endpoint, **values)


# --- registration and confirmation -------------------------------------------------


def register(email: str, password: str, display_name: str = "") -> User | None:
    """Create an account and email a confirmation link.

    If the address already has an account, that address is told so instead (and no
    new account is made): the form's answer is the same either way, so it cannot be
    used to find out who has an account.
    """
    email = normalise_email(email)
    existing = user_by_email(email)
    if existing is not None:
        queue_email(
            existing.email,
            "account_exists",
            category=MailCategory.STRANGER,
            reset_url=_external("accounts.forgot_password"),
        )
        return None
    user = User(email=email, password_hash=hash_password(password), display_name=display_name)
    db.session.add(user)
    db.session.flush()
    audit.record("account.registered", actor_id=user.id, subject_user_id=user.id)
    send_confirmation(user)
    return user


def confirmation_token(user: User) -> str:
    return make_token(
        "confirm", {"u": user.id, "f": fingerprint(user.email, user.email_confirmed_at)}
    )


def send_confirmation(user: User) -> None:
    queue_email(
        user.email,
        "confirm_email",
        category=MailCategory.STRANGER,
        confirm_url=_external("accounts.confirm_email", token=confirmation_token(user)),
    )


def _user_from_token(purpose: str, token: str, max_age: int) -> tuple[User, dict]:
    data = read_token(purpose, token, max_age)
    user = db.session.get(User, data.get("u"))
    if user is None:
        raise TokenError("invalid")
    return user, data


def check_confirmation(token: str) -> User:
    """The user a confirmation token is for, if it is valid and unused."""
    user, data = _user_from_token("confirm", token, current_app.config["EMAIL_CONFIRM_MAX_AGE"])
    if data.get("f") != fingerprint(user.email, user.email_confirmed_at):
        raise TokenError("used")
    return user


def confirm_email(token: str) -> User:
    user = check_confirmation(token)
    user.email_confirmed_at = utcnow()
    audit.record("account.email_confirmed", actor_id=user.id, subject_user_id=user.id)
    return user


# --- login ----------------------------------------------------------------------------


@dataclass
class LoginResult:
    user: User | None
    needs_second_factor: bool = False


def authenticate(email: str, password: str) -> LoginResult:
    """Check a password, counting failures; a locked account fails like a wrong password."""
    try:
        email = normalise_email(email)
    except ValueError:
        verify_password(None, password)
        return LoginResult(None)
    user = user_by_email(email)
    now = utcnow()
    if user is None:
        verify_password(None, password)
        audit.record("login.failed_unknown")
        return LoginResult(None)
    if user.locked_until and user.locked_until > now:
        verify_password(None, password)
        audit.record("login.refused_locked", subject_user_id=user.id)
        return LoginResult(None)
    if not user.is_active or not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= current_app.config["LOGIN_MAX_FAILURES"]:
            minutes = current_app.config["LOGIN_LOCKOUT_MINUTES"]
            user.locked_until = now + timedelta(minutes=minutes)
            user.failed_logins = 0
            audit.record("account.locked", subject_user_id=user.id)
        audit.record("login.failed", subject_user_id=user.id)
        return LoginResult(None)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    if user.totp_enabled:
        return LoginResult(user, needs_second_factor=True)
    return LoginResult(user)


def record_login(user: User) -> None:
    user.last_login_at = utcnow()
    audit.record("login.succeeded", actor_id=user.id, subject_user_id=user.id)


def logout_everywhere(user: User) -> None:
    """Invalidate every session and remember-me cookie of this user."""
    user.session_token = new_session_token()
    audit.record("account.sessions_revoked", actor_id=user.id, subject_user_id=user.id)


# --- two-factor (TOTP) ------------------------------------------------------------------


def _totp(user: User) -> pyotp.TOTP:
    secret = decrypt_field(user.totp_secret, table="users", column="totp_secret", row_id=user.id)
    return pyotp.TOTP(secret)


def begin_totp_setup(user: User) -> str:
    """Store a new (not yet active) secret and return the provisioning URI."""
    secret = pyotp.random_base32()
    user.totp_secret = encrypt_field(secret, table="users", column="totp_secret", row_id=user.id)
    user.totp_enabled = False
    return totp_provisioning_uri(user)


def totp_secret_for_display(user: User) -> str:
    return _totp(user).secret


def totp_provisioning_uri(user: User) -> str:
    return _totp(user).provisioning_uri(
        name=user.email, issuer_name=current_app.config["SITE_NAME"]
    )


def reencrypt_secrets() -> int:
    """Seal every TOTP secret with the current primary key (after adding a new key)."""
    count = 0
    for user in db.session.scalars(select(User).where(User.totp_secret.is_not(None))):
        if needs_rotation(user.totp_secret):
            secret = _totp(user).secret
            user.totp_secret = encrypt_field(
                secret, table="users", column="totp_secret", row_id=user.id
            )
            count += 1
    return count


def verify_totp(user: User, code: str) -> bool:
    """Check a code, refusing one that was already used (replay)."""
    if not user.totp_secret:
        return False
    code = "".join(ch for ch in code if ch.isdigit())
    totp = _totp(user)
    now = utcnow()
    for offset in (0, -1, 1):
        at = now + timedelta(seconds=30 * offset)
        step = totp.timecode(at)
        if totp.at(at) == code and (user.totp_last_step is None or step > user.totp_last_step):
            user.totp_last_step = step
            return True
    return False


def enable_totp(user: User, code: str) -> None:
    if not verify_totp(user, code):
        raise AccountError(
            _l("That code did not match. Check the time on your phone and try again.")
        )
    user.totp_enabled = True
    audit.record("account.2fa_enabled", actor_id=user.id, subject_user_id=user.id)


def disable_totp(user: User, password: str) -> None:
    if not verify_password(user.password_hash, password):
        raise AccountError(_l("Your password was not right."))
    user.totp_enabled = False
    user.totp_secret = None
    user.totp_last_step = None
    audit.record("account.2fa_disabled", actor_id=user.id, subject_user_id=user.id)


# --- password reset and changes -----------------------------------------------------------


def request_password_reset(email: str) -> None:
    """Email a reset link if the account exists; say nothing either way."""
    try:
        user = user_by_email(normalise_email(email))
    except ValueError:
        return
    if user is None:
        return
    token = make_token("reset", {"u": user.id, "f": fingerprint(user.password_hash)})
    queue_email(
        user.email,
        "reset_password",
        category=MailCategory.STRANGER,
        reset_url=_external("accounts.reset_password", token=token),
        minutes=current_app.config["PASSWORD_RESET_MAX_AGE"] // 60,
    )
    audit.record("account.reset_requested", subject_user_id=user.id)


def check_reset_token(token: str) -> User:
    user, data = _user_from_token("reset", token, current_app.config["PASSWORD_RESET_MAX_AGE"])
    if data.get("f") != fingerprint(user.password_hash):
        raise TokenError("used")
    return user


def reset_password(token: str, new_password: str) -> User:
    user = check_reset_token(token)
    _set_password(user, new_password)
    # Whoever could read the reset mail could read a confirmation one.
    if user.email_confirmed_at is None:
        user.email_confirmed_at = utcnow()
    user.locked_until = None
    user.failed_logins = 0
    audit.record("account.password_reset", actor_id=user.id, subject_user_id=user.id)
    return user


def _set_password(user: User, new_password: str) -> None:
    user.password_hash = hash_password(new_password)
    user.session_token = new_session_token()


def change_password(user: User, current: str, new_password: str) -> None:
    if not verify_password(user.password_hash, current):
        raise AccountError(_l("Your current password was not right."))
    _set_password(user, new_password)
    audit.record("account.password_changed", actor_id=user.id, subject_user_id=user.id)
    queue_email(user.email, "password_changed")


def request_email_change(user: User, password: str, new_email: str) -> None:
    if not verify_password(user.password_hash, password):
        raise AccountError(_l("Your password was not right."))
    new_email = normalise_email(new_email)
    if new_email == user.email:
        raise AccountError(_l("That is already your email address."))
    if user_by_email(new_email) is not None:
        # Do not reveal that the other address has an account; just tell that address.
        queue_email(
            new_email,
            "account_exists",
            category=MailCategory.STRANGER,
            reset_url=_external("accounts.forgot_password"),
        )
        return
    token = make_token("email-change", {"u": user.id, "e": new_email, "f": fingerprint(user.email)})
    queue_email(
        new_email,
        "change_email",
        category=MailCategory.STRANGER,
        confirm_url=_external("accounts.confirm_email_change", token=token),
    )


def check_email_change(token: str) -> tuple[User, str]:
    user, data = _user_from_token(
        "email-change", token, current_app.config["EMAIL_CONFIRM_MAX_AGE"]
    )
    if data.get("f") != fingerprint(user.email):
        raise TokenError("used")
    return user, data["e"]


def confirm_email_change(token: str) -> User:
    user, new_email = check_email_change(token)
    if user_by_email(new_email) is not None:
        raise AccountError(_l("That address now belongs to another account."))
    old = user.email
    user.email = new_email
    user.email_confirmed_at = utcnow()
    audit.record("account.email_changed", actor_id=user.id, subject_user_id=user.id)
    queue_email(old, "email_changed_notice", new_email_domain=new_email.rpartition("@")[2])
    return user


def create_admin(email: str, password: str) -> User:
    """Create (or promote) a confirmed platform admin: the CLI's job."""
    email = normalise_email(email)
    user = user_by_email(email)
    if user is None:
        user = User(email=email, password_hash=hash_password(password))
        db.session.add(user)
    else:
        _set_password(user, password)
    user.is_admin = True
    user.email_confirmed_at = user.email_confirmed_at or utcnow()
    db.session.flush()
    audit.record("account.admin_created", subject_user_id=user.id)
    return user
