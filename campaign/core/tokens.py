"""Signed, expiring tokens for links in emails.

Each purpose has its own salt, so a token for one purpose is useless for another.
Single use comes from a *fingerprint* of the state the token acts on (for a password
reset, a digest of the current password hash): once the action changes that state,
the token no longer matches and is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class TokenError(Exception):
    """The token is malformed, expired, or already used."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def message(self, **wording: str) -> str:
        """What to tell the person who followed the link; a caller can give its own
        words for a reason (``expired=...``), the rest are the common ones."""
        common = {
            "expired": _("This link has expired."),
            "used": _("This link has already been used."),
            "invalid": _("This link is not valid. Check you copied all of it."),
        }
        reason = self.reason if self.reason in common else "invalid"
        return str(wording.get(reason) or common[reason])


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"campaign.{purpose}")


def fingerprint(*parts: object) -> str:
    """A short keyed digest of some state, to bind a token to it."""
    message = "\x1f".join("" if p is None else str(p) for p in parts).encode()
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:24]


def make_token(purpose: str, payload: dict[str, Any]) -> str:
    return _serializer(purpose).dumps(payload)


def read_token(purpose: str, token: str, max_age: int) -> dict[str, Any]:
    try:
        data = _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise TokenError("expired") from None
    except BadSignature:
        raise TokenError("invalid") from None
    if not isinstance(data, dict):
        raise TokenError("invalid")
    return data


def random_token() -> str:
    """An unguessable token for links whose state lives in the database (invitations)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What we store for a database-backed token: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()
