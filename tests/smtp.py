"""A real SMTP server on a loopback port, for tests that deliver mail."""

from __future__ import annotations

import socket

import pytest
from aiosmtpd.controller import Controller


class RecordingHandler:
    """Keeps what it receives; can answer with a chosen SMTP error for some recipients,
    or throttle (a 4xx to DATA) after a number of messages.

    It can also refuse by phase, the way real relays do: ``mail_reply`` answers every
    MAIL FROM (e.g. ``530 5.7.0 Authentication required``), ``rcpt_reply`` every RCPT
    (e.g. ``451 4.7.1 Slow down``), ``data_reply`` the end of every DATA (e.g. ``554
    5.7.1 Message content rejected``); ``drop_after`` hangs up, without a word, on a
    connection that has carried that many messages (a per-connection cap). It counts
    RSETs and connections and keeps each message's MAIL FROM options.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse: dict[str, str] = {}
        self.throttle_after: int | None = None
        self.mail_reply: str | None = None
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.drop_after: int | None = None
        self.rsets = 0
        self.connections = 0
        self.mail_options: list[list[str]] = []
        self._per_connection: dict[int, int] = {}

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        if self.drop_after is not None and self._per_connection.get(id(session), 0) >= (
            self.drop_after
        ):
            server.transport.close()
            return "421 4.4.2 (never seen: the connection is closed)"
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):  # noqa: N802
        self.rsets += 1
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.throttle_after is not None and len(self.messages) >= self.throttle_after:
            return "451 4.7.1 Too many messages, slow down"
        if self.data_reply:
            return self.data_reply
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content))
        self.mail_options.append(list(envelope.mail_options))
        self._per_connection[id(session)] = self._per_connection.get(id(session), 0) + 1
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sink(app, monkeypatch, **smtp_options):
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **smtp_options)
    controller.start()
    state = app.extensions["mail"]
    monkeypatch.setitem(app.config, "MAIL_BACKEND", "smtp")
    monkeypatch.setattr(state, "server", "127.0.0.1")
    monkeypatch.setattr(state, "port", controller.port)
    monkeypatch.setattr(state, "use_tls", False)
    monkeypatch.setattr(state, "use_ssl", False)
    return handler, controller


@pytest.fixture
def smtp_sink(app, monkeypatch):
    """Delivery goes to a real SMTP server (aiosmtpd) on a loopback port."""
    handler, controller = start_sink(app, monkeypatch)
    yield handler
    controller.stop()
