"""Email addresses: one normal form, so one person is one row."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

# Plain ASCII addresses (nearly all of them) are checked here, about 50 times faster
# than the full validator: a dot-atom local part of at most 64 characters and a domain
# of letter-digit-hyphen labels with an alphabetic top-level label. Anything else
# (Unicode, quoted local parts, special-use domains) goes to email_validator.
_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_SIMPLE = re.compile(
    rf"(?P<local>{_ATEXT}(?:\.{_ATEXT})*)@(?P<domain>(?:{_LABEL}\.)+[a-z]{{2,63}})"
)
_SPECIAL_USE = {"arpa", "invalid", "local", "localhost", "onion", "test"}


class InvalidEmail(ValueError):
    pass


def normalise_email(raw: str) -> str:
    """Validated, trimmed and lower-cased (we treat the local part as case-insensitive)."""
    candidate = (raw or "").strip().lower()
    match = _SIMPLE.fullmatch(candidate)
    if (
        match
        and len(match["local"]) <= 64
        and len(match["domain"]) <= 253
        and len(candidate) <= 254
        and match["domain"].rpartition(".")[2] not in _SPECIAL_USE
        and "--" not in match["domain"]  # "xn--" and other reserved IDNA labels
    ):
        return candidate
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return result.normalized.lower()


def envelope_address(address: str) -> tuple[str, bool]:
    """The address as it goes in MAIL FROM / RCPT TO, and whether it needs SMTPUTF8.

    A non-ASCII domain with an ASCII local part travels as its IDNA (xn--) form, which
    every relay understands; a non-ASCII local part has no ASCII form and needs a relay
    that offers SMTPUTF8 (RFC 6531).
    """
    if address.isascii():
        return address, False
    local, _, domain = address.rpartition("@")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return address, True
    ascii_form = f"{local}@{domain}"
    return (ascii_form, False) if local.isascii() else (address, True)


def address_deliverable(address: str, *, smtputf8: bool | None = None) -> bool:
    """Whether we can deliver to ``address`` through the configured relay: always for an
    ASCII local part; for a non-ASCII one only when ``MAIL_SMTPUTF8`` says the relay
    offers SMTPUTF8."""
    _, needs_utf8 = envelope_address(address)
    if not needs_utf8:
        return True
    if smtputf8 is None:
        from flask import current_app

        smtputf8 = bool(current_app.config.get("MAIL_SMTPUTF8", True))
    return smtputf8
