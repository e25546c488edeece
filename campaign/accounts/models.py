"""The user account, its login sessions, its login throttles and its recovery codes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from campaign.core.models import TimestampedModel, UTCDateTime


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps of a high-entropy secret: a copied table opens nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


class User(TimestampedModel):
    """A person with a login. Supporters without accounts live in ``people``."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    display_name: Mapped[str] = mapped_column(sa.String(80), default="")
    email_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    is_admin: Mapped[bool] = mapped_column(default=False)
    is_active_account: Mapped[bool] = mapped_column(default=True)
    # Account-wide failures (from every address) and the short lock they lead to;
    # ``lockouts`` counts recent account-wide locks, so each one lasts a little longer.
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lockouts: Mapped[int] = mapped_column(default=0)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Encrypted with core.crypto (users.totp_secret#id); None until two-factor is set up.
    totp_secret: Mapped[str | None] = mapped_column(sa.String(255))
    totp_enabled: Mapped[bool] = mapped_column(default=False)
    totp_last_step: Mapped[int | None]

    # The token of the login session this request runs in (set by the user loader and at
    # login, never stored on this row): what Flask-Login keeps in its cookies.
    session_key = None
    current_session_id = None

    # Flask-Login's protocol.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.is_active_account

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """The login session's token. Without services.start_session() there is none, and
        the empty id opens nothing after this request (the loader refuses it)."""
        return self.session_key or ""

    @property
    def email_confirmed(self) -> bool:
        return self.email_confirmed_at is not None

    @property
    def name(self) -> str:
        return self.display_name or self.email.split("@", 1)[0]


class UserSession(TimestampedModel):
    """One login on one device. The cookie carries its random token; we keep a hash.

    Logging out revokes the row, so a copied session or remember-me cookie stops
    working at once, on the server, whatever the browser does.
    """

    __tablename__ = "user_sessions"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A short summary ("Firefox on Android"), never the full header.
    user_agent: Mapped[str] = mapped_column(sa.String(80), default="")
    remember: Mapped[bool] = mapped_column(default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LoginThrottle(TimestampedModel):
    """Failed logins to one account from one client address (kept as a keyed hash).

    A stranger's failures lock out only their own address for that account, with a delay
    that doubles each time; the owner elsewhere can still log in.
    """

    __tablename__ = "login_throttles"
    __table_args__ = (sa.UniqueConstraint("user_id", "address_key"),)

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    address_key: Mapped[str] = mapped_column(sa.String(64))
    failures: Mapped[int] = mapped_column(default=0)
    lockouts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RecoveryCode(TimestampedModel):
    """A single-use code that stands in for a two-factor code (a lost phone)."""

    __tablename__ = "recovery_codes"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
