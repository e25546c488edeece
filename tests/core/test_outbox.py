"""The outbox against a real SMTP server (aiosmtpd on a loopback port)."""

from __future__ import annotations

import email
import socket
from email import policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from campaign.core.outbox import (
    MailCategory,
    OutboxMessage,
    OutboxStatus,
    deliver_due,
    dispatch_if_committed,
    queue_email,
)
from campaign.extensions import db


class RecordingHandler:
    """Keeps what it receives; can answer with a chosen SMTP error for some recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_sink(app, monkeypatch):
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


def _queue(app, to: str, **kwargs) -> OutboxMessage:
    with app.test_request_context():
        row = queue_email(to, "password_changed", **kwargs)
    return row


def test_queued_mail_is_delivered_once_as_multipart(app, session, smtp_sink):
    rows = [_queue(app, f"person{i}@example.org") for i in range(3)]
    db.session.commit()
    counts = deliver_due()
    assert counts == {"sent": 3, "retry": 0, "failed": 0}
    assert sorted(r[0][0] for r in smtp_sink.messages) == sorted(r.to_addr for r in rows)

    # A second run finds nothing left to send.
    assert deliver_due() == {"sent": 0, "retry": 0, "failed": 0}
    assert len(smtp_sink.messages) == 3

    parsed = email.message_from_bytes(smtp_sink.messages[0][1], policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in parsed.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    sent_ids = {email.message_from_bytes(raw, policy=policy.default)["Message-ID"]
                for _, raw in smtp_sink.messages}  # fmt: skip
    assert sent_ids == {row.message_id for row in rows}
    for row in rows:
        db.session.refresh(row)
        assert row.status == OutboxStatus.SENT and row.sent_at is not None


def test_long_lines_are_wrapped_for_smtp(app, session, smtp_sink):
    row = _queue(app, "long@example.org")
    row.text_body = "word " * 1000  # one 5,000-character line
    db.session.commit()
    deliver_due()
    raw = smtp_sink.messages[0][1]
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed.get_body(("plain",)).get_content().strip() == ("word " * 1000).strip()


def test_throttling_is_retried_later_and_refusal_is_final(app, session, smtp_sink):
    smtp_sink.refuse["busy@example.org"] = "451 4.7.1 Try again later"
    smtp_sink.refuse["gone@example.org"] = "550 5.1.1 No such user"
    busy = _queue(app, "busy@example.org")
    gone = _queue(app, "gone@example.org")
    fine = _queue(app, "fine@example.org")
    db.session.commit()
    counts = deliver_due()
    assert counts == {"sent": 1, "retry": 1, "failed": 1}
    for row in (busy, gone, fine):
        db.session.refresh(row)
    assert busy.status == OutboxStatus.QUEUED and busy.attempts == 1
    assert busy.next_attempt_at > busy.updated_at  # backed off, not retried at once
    assert gone.status == OutboxStatus.FAILED and "550" in gone.last_error
    assert fine.status == OutboxStatus.SENT


def test_unreachable_relay_keeps_mail_queued(app, session, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_BACKEND", "smtp")
    state = app.extensions["mail"]
    monkeypatch.setattr(state, "server", "127.0.0.1")
    monkeypatch.setattr(state, "port", _free_port())  # nothing listens there
    row = _queue(app, "waiting@example.org")
    db.session.commit()
    deliver_due()
    db.session.refresh(row)
    assert row.status == OutboxStatus.QUEUED
    assert row.attempts == 1 and row.last_error


def test_rolled_back_mail_is_never_sent(app, session, smtp_sink):
    _queue(app, "never@example.org")
    db.session.rollback()
    dispatch_if_committed()
    deliver_due()
    assert smtp_sink.messages == []
    assert db.session.scalars(select(OutboxMessage)).all() == []


def test_mail_is_dispatched_after_the_request_commits(app, client, smtp_sink, make):
    user = make.user("reset-me@example.org")
    db.session.commit()
    from tests.conftest import post

    post(client, "/forgot-password", {"email": user.email})
    assert [r[0] for r in smtp_sink.messages] == [["reset-me@example.org"]]


def test_strangers_cannot_flood_an_address(app, session):
    limit = app.config["MAIL_STRANGER_DAILY_LIMIT"]
    queued = [_queue(app, "target@example.org", category=MailCategory.STRANGER)
              for _ in range(limit + 3)]  # fmt: skip
    assert sum(row is not None for row in queued) == limit
    # Mail the person asked for is not blocked by the stranger limit.
    assert _queue(app, "target@example.org") is not None
