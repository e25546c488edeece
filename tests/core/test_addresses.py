"""The fast path of normalise_email agrees with the full validator."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.core.addresses import InvalidEmail, normalise_email

SAMPLES = [
    "ana@example.org", " Ana.Silva@Example.ORG ", "a+tag@sub.example.co.uk", "x@y.io",
    "first.last@example.org", ".lead@example.org", "trail.@example.org", "two..dots@example.org",
    "no-at-sign", "a@b", "a@-bad.example.org", "a@bad-.example.org", "a@example.123",
    "a@example.test", "a@example.localhost", "user@[127.0.0.1]", "josé@example.org",
    "a@exämple.org", '"quoted"@example.org', "a" * 65 + "@example.org",
    "a@" + "b" * 64 + ".org", "o'brien@example.ie", "a@example..org",
]  # fmt: skip


def _full(raw: str) -> str | None:
    try:
        return validate_email(raw.strip().lower(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def _ours(raw: str) -> str | None:
    try:
        return normalise_email(raw)
    except InvalidEmail:
        return None


@pytest.mark.parametrize("raw", SAMPLES)
def test_fast_path_matches_the_validator(raw):
    assert _ours(raw) == _full(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"[A-Za-z0-9._+'-]{1,12}@[A-Za-z0-9.-]{1,12}\.[A-Za-z0-9]{1,5}", fullmatch=True)
)
def test_fast_path_matches_the_validator_on_generated_addresses(raw):
    assert _ours(raw) == _full(raw)
