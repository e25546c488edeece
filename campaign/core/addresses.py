"""Email addresses: one normal form, so one person is one row."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class InvalidEmail(ValueError):
    pass


def normalise_email(raw: str) -> str:
    """Validated, trimmed and lower-cased (we treat the local part as case-insensitive)."""
    try:
        result = validate_email((raw or "").strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return result.normalized.lower()
