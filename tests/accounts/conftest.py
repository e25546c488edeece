"""Fixtures for the account tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from itsdangerous.timed import TimestampSigner


@pytest.fixture
def link_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Move the clock that signed links (and signed cookies) are dated by, without sleeping.

    Every timestamp itsdangerous writes or checks is shifted by the returned function's
    total, so a link can be made "older" than its max age. Session cookies are signed the
    same way, so a client's earlier session expires too: use a fresh client afterwards.
    """
    real = TimestampSigner.get_timestamp
    offset = {"seconds": 0}

    def shifted(self: TimestampSigner) -> int:
        return real(self) + offset["seconds"]

    monkeypatch.setattr(TimestampSigner, "get_timestamp", shifted)

    def advance(seconds: int) -> None:
        offset["seconds"] += seconds

    return advance
