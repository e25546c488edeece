"""Account rules: registration, confirmation, login with lockout, 2FA, resets.

Services flush, never commit: the view, task or CLI command owns the transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from campaign.accounts.models import (
    LoginThrottle,
    RecoveryCode,
    User,
    UserSession,
    new_session_token,
    token_hash,
)
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


# --- login sessions ----------------------------------------------------------------------

# How stale "last seen" may get before a request writes it again.
TOUCH_EVERY = timedelta(minutes=5)


def summarise_user_agent(header: str | None) -> str:
    """ "Firefox on Android": enough to recognise a device, not enough to fingerprint it."""
    text = (header or "").lower()
    browsers = (("edg/", "Edge"), ("opr/", "Opera"), ("firefox/", "Firefox"),
                ("chrome/", "Chrome"), ("chromium/", "Chromium"), ("safari/", "Safari"),
                ("curl/", "curl"))  # fmt: skip
    systems = (("android", "Android"), ("iphone", "iPhone"), ("ipad", "iPad"),
               ("windows", "Windows"), ("mac os", "macOS"), ("cros", "ChromeOS"),
               ("linux", "Linux"))  # fmt: skip
    browser = next((name for marker, name in browsers if marker in text), "")
    system = next((name for marker, name in systems if marker in text), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown browser"


def start_session(user: User, *, remember: bool, user_agent: str | None = None) -> UserSession:
    """A new login session for ``user``; its random token goes in the cookie (get_id)."""
    token = new_session_token()
    row = UserSession(
        user_id=user.id,
        token_hash=token_hash(token),
        last_seen_at=utcnow(),
        user_agent=summarise_user_agent(user_agent),
        remember=remember,
    )
    db.session.add(row)
    db.session.flush()
    user.session_key = token
    user.current_session_id = row.id
    return row


def _session_expired(row: UserSession, now: datetime) -> bool:
    config = current_app.config
    if row.remember:
        return row.created_at + config["REMEMBER_COOKIE_DURATION"] < now
    return row.last_seen_at + config["PERMANENT_SESSION_LIFETIME"] < now


def user_by_session_token(token: str) -> User | None:
    """Flask-Login's user loader: the user of a live (not revoked, not expired) session."""
    if not token or len(token) > 200:
        return None
    row = db.session.scalar(
        select(UserSession).where(
            UserSession.token_hash == token_hash(token), UserSession.revoked_at.is_(None)
        )
    )
    now = utcnow()
    if row is None or _session_expired(row, now):
        return None
    user = db.session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    user.session_key = token
    user.current_session_id = row.id
    if now - row.last_seen_at > TOUCH_EVERY:
        _touch(row, now)
    return user


def _touch(row: UserSession, now: datetime) -> None:
    """Note that a session was used, in a short transaction of its own.

    A GET never commits the request's session, so the write goes through a separate one.
    On SQLite a writing request already holds the database's only write lock, so there
    the time rides along with that request's own commit instead.
    """
    from flask import has_request_context, request

    writing = has_request_context() and request.method not in ("GET", "HEAD")
    if writing and db.engine.dialect.name == "sqlite":
        row.last_seen_at = now
        return
    side = db.sessionmaker()
    try:
        side.execute(update(UserSession).where(UserSession.id == row.id).values(last_seen_at=now))
        side.commit()
    except SQLAlchemyError:
        side.rollback()
        current_app.logger.warning("could not record when a session was last seen")
    finally:
        side.close()


def live_sessions(user: User) -> list[UserSession]:
    """The user's sessions that still work, most recently used first."""
    now = utcnow()
    rows = db.session.scalars(
        select(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    )
    return [row for row in rows if not _session_expired(row, now)]


def end_session(user: User) -> None:
    """Log out the session this request runs in: its cookies stop working at once."""
    if user.current_session_id is not None:
        db.session.execute(
            update(UserSession)
            .where(UserSession.id == user.current_session_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


def _revoke_sessions(user: User, *, keep_id: int | None = None) -> int:
    query = update(UserSession).where(
        UserSession.user_id == user.id, UserSession.revoked_at.is_(None)
    )
    if keep_id is not None:
        query = query.where(UserSession.id != keep_id)
    return db.session.execute(query.values(revoked_at=utcnow())).rowcount or 0


def logout_other_devices(user: User) -> int:
    """Revoke every session of this user except the current one; returns how many."""
    count = _revoke_sessions(user, keep_id=user.current_session_id)
    audit.record(
        "account.other_sessions_revoked", actor_id=user.id, subject_user_id=user.id, count=count
    )
    return count


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
            reset_url=external_url("accounts.forgot_password"),
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
        confirm_url=external_url("accounts.confirm_email", token=confirmation_token(user)),
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


# Failures older than this are forgotten; locks are remembered (to grow) for a day.
FAILURE_WINDOW = timedelta(hours=1)
LOCKOUT_MEMORY = timedelta(days=1)
ADDRESS_LOCK_CAP = timedelta(days=1)
ACCOUNT_LOCK_CAP = timedelta(minutes=30)


def address_key(address: str | None) -> str:
    """A client address as the throttle keeps it: a keyed hash, not the address."""
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, (address or "unknown").encode(), hashlib.sha256).hexdigest()[:40]


def _locked_throttle(user: User, address: str | None) -> LoginThrottle:
    """The throttle row for (account, address), locked for this transaction and read
    afresh, so failures arriving at the same moment are all counted."""
    key = address_key(address)
    query = (
        select(LoginThrottle)
        .where(LoginThrottle.user_id == user.id, LoginThrottle.address_key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = db.session.scalar(query)
    if row is None:
        row = LoginThrottle(user_id=user.id, address_key=key, failures=0, lockouts=0)
        try:
            with db.session.begin_nested():  # another request may create it at the same time
                db.session.add(row)
        except IntegrityError:
            row = db.session.scalar(query)
    return row


def _locked_user(user: User) -> None:
    """Lock the user's row and reload its counters (after the throttle row: one order)."""
    db.session.scalar(
        select(User)
        .where(User.id == user.id)
        # FOR NO KEY UPDATE: it must not wait on the key-share lock that inserting a
        # throttle row (a foreign key to users) takes, or two logins deadlock.
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )


def is_locked_out(user: User, address: str | None) -> bool:
    """Whether logins to ``user`` from ``address`` are refused right now."""
    now = utcnow()
    if user.locked_until and user.locked_until > now:
        return True
    row = db.session.scalar(
        select(LoginThrottle).where(
            LoginThrottle.user_id == user.id, LoginThrottle.address_key == address_key(address)
        )
    )
    return bool(row and row.locked_until and row.locked_until > now)


def record_failure(user: User, address: str | None) -> None:
    """Count a wrong password, two-factor code or recovery code for this account.

    From one address: LOGIN_MAX_FAILURES lock that address out of this account, for
    LOGIN_LOCKOUT_MINUTES doubled at each repeat (up to a day). From all addresses
    together: LOGIN_ACCOUNT_MAX_FAILURES lock the whole account, for
    LOGIN_ACCOUNT_LOCKOUT_MINUTES more at each repeat (up to 30 minutes), so a
    stranger can keep the owner out only briefly.
    """
    config = current_app.config
    now = utcnow()
    row = _locked_throttle(user, address)
    if row.last_failure_at and now - row.last_failure_at > FAILURE_WINDOW:
        row.failures = 0
        if now - row.last_failure_at > LOCKOUT_MEMORY:
            row.lockouts = 0
    row.failures += 1
    row.last_failure_at = now
    if row.failures >= config["LOGIN_MAX_FAILURES"]:
        delay = timedelta(minutes=config["LOGIN_LOCKOUT_MINUTES"]) * (2**row.lockouts)
        row.locked_until = now + min(delay, ADDRESS_LOCK_CAP)
        row.lockouts += 1
        row.failures = 0
        audit.record("account.locked_for_address", subject_user_id=user.id, times=row.lockouts)

    _locked_user(user)
    if user.locked_until and now - user.locked_until > LOCKOUT_MEMORY:
        user.lockouts = 0
    user.failed_logins += 1
    if user.failed_logins >= config["LOGIN_ACCOUNT_MAX_FAILURES"]:
        step = timedelta(minutes=config["LOGIN_ACCOUNT_LOCKOUT_MINUTES"])
        user.locked_until = now + min(step * (user.lockouts + 1), ACCOUNT_LOCK_CAP)
        user.lockouts += 1
        user.failed_logins = 0
        audit.record("account.locked", subject_user_id=user.id, times=user.lockouts)
    audit.record("login.failed", subject_user_id=user.id)


def _record_success(user: User, address: str | None) -> None:
    """A full login from this address: its failures (and the account's) are forgiven."""
    key = address_key(address)
    with db.session.no_autoflush:  # the throttle row first, then the user's: one lock order
        db.session.execute(
            delete(LoginThrottle).where(
                LoginThrottle.user_id == user.id, LoginThrottle.address_key == key
            )
        )
    user.failed_logins = 0
    if user.locked_until and user.locked_until <= utcnow():
        user.locked_until = None


def authenticate(email: str, password: str, address: str | None = None) -> LoginResult:
    """Check a password from a client address, counting failures per account and address.

    A locked-out attempt fails exactly like a wrong password. With two-factor on, the
    failures are forgiven only once the second step succeeds too.
    """
    try:
        email = normalise_email(email)
    except ValueError:
        verify_password(None, password)
        return LoginResult(None)
    user = user_by_email(email)
    if user is None:
        verify_password(None, password)
        audit.record("login.failed_unknown")
        return LoginResult(None)
    if is_locked_out(user, address):
        verify_password(None, password)
        audit.record("login.refused_locked", subject_user_id=user.id)
        return LoginResult(None)
    if not user.is_active or not verify_password(user.password_hash, password):
        record_failure(user, address)
        return LoginResult(None)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    if user.totp_enabled:
        return LoginResult(user, needs_second_factor=True)
    _record_success(user, address)
    return LoginResult(user)


@dataclass
class SecondFactorResult:
    ok: bool
    locked: bool = False
    used_recovery_code: bool = False


def check_second_factor(user: User, code: str, address: str | None = None) -> SecondFactorResult:
    """The login's second step: a TOTP code or an unused recovery code.

    Wrong codes count towards the same lockout as wrong passwords.
    """
    if is_locked_out(user, address):
        audit.record("login.refused_locked", subject_user_id=user.id)
        return SecondFactorResult(ok=False, locked=True)
    # Serialise second steps for this account (throttle row, then user row), so one TOTP
    # code sent twice at the same moment is accepted once.
    _locked_throttle(user, address)
    _locked_user(user)
    if looks_like_recovery_code(code):
        ok = use_recovery_code(user, code)
        recovery = ok
    else:
        ok = verify_totp(user, code)
        recovery = False
    if not ok:
        record_failure(user, address)
        return SecondFactorResult(ok=False, locked=is_locked_out(user, address))
    _record_success(user, address)
    return SecondFactorResult(ok=True, used_recovery_code=recovery)


def record_login(user: User) -> None:
    user.last_login_at = utcnow()
    audit.record("login.succeeded", actor_id=user.id, subject_user_id=user.id)


def logout_everywhere(user: User) -> None:
    """Invalidate every session and remember-me cookie of this user."""
    _revoke_sessions(user)
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


def enable_totp(user: User, code: str) -> list[str]:
    """Turn two-factor on with a first good code; returns the recovery codes, shown once."""
    if not verify_totp(user, code):
        raise AccountError(
            _l("That code did not match. Check the time on your phone and try again.")
        )
    user.totp_enabled = True
    audit.record("account.2fa_enabled", actor_id=user.id, subject_user_id=user.id)
    return _new_recovery_codes(user)


def _clear_two_factor(user: User) -> None:
    user.totp_enabled = False
    user.totp_secret = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def disable_totp(user: User, password: str) -> None:
    if not verify_password(user.password_hash, password):
        raise AccountError(_l("Your password was not right."))
    _clear_two_factor(user)
    audit.record("account.2fa_disabled", actor_id=user.id, subject_user_id=user.id)


def reset_two_factor_by_admin(admin: User, user: User) -> None:
    """A platform admin turns off someone's two-factor (a lost phone and no codes left).

    Audit-logged, mailed to the person, and every session of theirs is logged out.
    """
    if not admin.is_admin:
        raise AccountError(_l("Only platform admins can do that."))
    if not user.totp_enabled and user.totp_secret is None:
        raise AccountError(_l("That account does not use two-factor authentication."))
    _clear_two_factor(user)
    _revoke_sessions(user)
    audit.record("account.2fa_reset_by_admin", actor_id=admin.id, subject_user_id=user.id)
    queue_email(user.email, "two_factor_reset", category=MailCategory.TRANSACTIONAL)


# --- recovery codes -----------------------------------------------------------------------

RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def _normalise_recovery_code(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def looks_like_recovery_code(code: str) -> bool:
    """Recovery codes have letters or are longer than a TOTP code."""
    normalised = _normalise_recovery_code(code)
    return any(ch.isalpha() for ch in normalised) or len(normalised) > 8


def _new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with ten fresh ones (about 80 bits each)."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
        db.session.add(RecoveryCode(user_id=user.id, code_hash=token_hash(raw)))
    db.session.flush()
    return codes


def regenerate_recovery_codes(user: User, password: str) -> list[str]:
    """New recovery codes (the old ones stop working); needs the password."""
    if not verify_password(user.password_hash, password):
        raise AccountError(_l("Your password was not right."))
    if not user.totp_enabled:
        raise AccountError(_l("Turn on two-factor authentication first."))
    codes = _new_recovery_codes(user)
    audit.record("account.recovery_codes_regenerated", actor_id=user.id, subject_user_id=user.id)
    return codes


def recovery_codes_left(user: User) -> int:
    return len(
        db.session.scalars(
            select(RecoveryCode.id).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )


def use_recovery_code(user: User, code: str) -> bool:
    """Spend one recovery code; each works once (a conditional update, so even two
    requests at the same moment cannot both use it)."""
    normalised = _normalise_recovery_code(code)
    if not user.totp_enabled or len(normalised) != 16:
        return False
    result = db.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == token_hash(normalised),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    if result.rowcount != 1:
        return False
    audit.record("login.recovery_code_used", actor_id=user.id, subject_user_id=user.id)
    return True


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
        reset_url=external_url("accounts.reset_password", token=token),
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
    # Throttle rows before the user row, the order a failed login takes them in.
    db.session.execute(delete(LoginThrottle).where(LoginThrottle.user_id == user.id))
    _set_password(user, new_password)
    # Whoever could read the reset mail could read a confirmation one.
    if user.email_confirmed_at is None:
        user.email_confirmed_at = utcnow()
    user.locked_until = None
    user.failed_logins = 0
    audit.record("account.password_reset", actor_id=user.id, subject_user_id=user.id)
    return user


def _set_password(user: User, new_password: str, *, keep_session_id: int | None = None) -> None:
    """A new password logs out every session but (optionally) the one that set it."""
    user.password_hash = hash_password(new_password)
    _revoke_sessions(user, keep_id=keep_session_id)


def change_password(user: User, current: str, new_password: str) -> None:
    """Change the password; every other session of the user is logged out."""
    if not verify_password(user.password_hash, current):
        raise AccountError(_l("Your current password was not right."))
    _set_password(user, new_password, keep_session_id=user.current_session_id)
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
            reset_url=external_url("accounts.forgot_password"),
        )
        return
    token = make_token("email-change", {"u": user.id, "e": new_email, "f": fingerprint(user.email)})
    queue_email(
        new_email,
        "change_email",
        category=MailCategory.STRANGER,
        confirm_url=external_url("accounts.confirm_email_change", token=token),
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
