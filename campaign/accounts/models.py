"""The user account."""

from __future__ import annotations

import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from campaign.core.models import TimestampedModel, UTCDateTime


def new_session_token() -> str:
    return secrets.token_urlsafe(24)


class User(TimestampedModel):
    """A person with a login. Supporters without accounts live in ``people``."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    display_name: Mapped[str] = mapped_column(sa.String(80), default="")
    email_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    is_admin: Mapped[bool] = mapped_column(default=False)
    is_active_account: Mapped[bool] = mapped_column(default=True)
    # The id Flask-Login keeps in the session cookie; changing it logs out everywhere.
    session_token: Mapped[str] = mapped_column(
        sa.String(64), unique=True, default=new_session_token
    )
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Encrypted with core.crypto (users.totp_secret#id); None until two-factor is set up.
    totp_secret: Mapped[str | None] = mapped_column(sa.String(255))
    totp_enabled: Mapped[bool] = mapped_column(default=False)
    totp_last_step: Mapped[int | None]

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
        return self.session_token

    @property
    def email_confirmed(self) -> bool:
        return self.email_confirmed_at is not None

    @property
    def name(self) -> str:
        return self.display_name or self.email.split("@", 1)[0]
