"""Fixtures for the account tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from itsdangerous.timed import TimestampSigner

from campaign.extensions import limiter


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


@pytest.fixture
def rate_limited(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Switch the shared limiter on for one test, with empty in-memory storage.

    Flask-Limiter 4 decides in ``init_app`` whether it is enabled, and with
    ``RATELIMIT_ENABLED = False`` it never sets up its storage. Decorated views call the
    limiter directly, so initialising it against a throwaway app with the same settings
    (and the limiter switched on) makes them count. The monkeypatch restores ``enabled``
    and ``initialized`` afterwards, which switches it off again for every other test.
    """
    monkeypatch.setattr(limiter, "enabled", True)
    monkeypatch.setattr(limiter, "initialized", limiter.initialized)
    probe = Flask("rate-limit-probe")
    probe.config.update(app.config)
    probe.config["RATELIMIT_ENABLED"] = True
    probe.config["RATELIMIT_STORAGE_URI"] = "memory://"
    limiter.init_app(probe)
    limiter.reset()
    yield
    limiter.reset()
