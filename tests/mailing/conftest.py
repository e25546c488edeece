"""Fixtures for campaign email: a group with an organiser, and an SMTP sink."""

from __future__ import annotations

import socket

import pytest
from aiosmtpd.controller import Controller


@pytest.fixture
def organiser(make):
    return make.user("organiser@example.org", name="Olu Organiser")


@pytest.fixture
def group(make, organiser):
    return make.group("Riverside Health Justice", organiser=organiser)


class RecordingHandler:
    """An SMTP server that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_sink(app, monkeypatch):
    """Delivery goes to a real SMTP server on a loopback port."""
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    state = app.extensions["mail"]
    monkeypatch.setitem(app.config, "MAIL_BACKEND", "smtp")
    monkeypatch.setattr(state, "server", "127.0.0.1")
    monkeypatch.setattr(state, "port", controller.port)
    monkeypatch.setattr(state, "use_tls", False)
    monkeypatch.setattr(state, "use_ssl", False)
    yield handler
    controller.stop()
