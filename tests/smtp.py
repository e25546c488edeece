"""A real SMTP server on a loopback port, for tests that deliver mail."""

from __future__ import annotations

import socket

import pytest
from aiosmtpd.controller import Controller


class RecordingHandler:
    """Keeps what it receives; can answer with a chosen SMTP error for some recipients,
    or throttle (a 4xx to DATA) after a number of messages."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse: dict[str, str] = {}
        self.throttle_after: int | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.throttle_after is not None and len(self.messages) >= self.throttle_after:
            return "451 4.7.1 Too many messages, slow down"
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_sink(app, monkeypatch):
    """Delivery goes to a real SMTP server (aiosmtpd) on a loopback port."""
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    state = app.extensions["mail"]
    monkeypatch.setitem(app.config, "MAIL_BACKEND", "smtp")
    monkeypatch.setattr(state, "server", "127.0.0.1")
    monkeypatch.setattr(state, "port", controller.port)
    monkeypatch.setattr(state, "use_tls", False)
    monkeypatch.setattr(state, "use_ssl", False)
    yield handler
    controller.stop()
