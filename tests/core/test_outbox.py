"""The outbox against a real SMTP server (aiosmtpd on a loopback port)."""

from __future__ import annotations

import email
import time
from email import policy

import sqlalchemy as sa
from sqlalchemy import select

from campaign.core.models import utcnow
from campaign.core.outbox import (
    MailCategory,
    MailThrottle,
    OutboxMessage,
    OutboxStatus,
    deliver_due,
    dispatch_if_committed,
    queue_email,
)
from campaign.extensions import db
from tests.smtp import free_port


def _service_lane() -> MailThrottle:
    return db.session.scalars(
        select(MailThrottle)
        .where(MailThrottle.lane == "service")
        .execution_options(populate_existing=True)
    ).one()


def _queue(app, to: str, **kwargs) -> OutboxMessage:
    with app.test_request_context():
        row = queue_email(to, "password_changed", **kwargs)
    return row


def test_queued_mail_is_delivered_once_as_multipart(app, session, smtp_sink):
    rows = [_queue(app, f"person{i}@example.org") for i in range(3)]
    db.session.commit()
    counts = deliver_due()
    assert counts == {"sent": 3, "retry": 0, "failed": 0, "paused": 0}
    assert sorted(r[0][0] for r in smtp_sink.messages) == sorted(r.to_addr for r in rows)

    # A second run finds nothing left to send.
    assert deliver_due() == {"sent": 0, "retry": 0, "failed": 0, "paused": 0}
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
    assert counts == {"sent": 1, "retry": 1, "failed": 1, "paused": 0}
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
    monkeypatch.setattr(state, "port", free_port())  # nothing listens there
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


def test_a_throttling_relay_pauses_the_send_which_resumes_slower(
    app, session, smtp_sink, monkeypatch
):
    monkeypatch.setitem(app.config, "MAIL_THROTTLE_PAUSE_SECONDS", 30)
    smtp_sink.throttle_after = 4
    rows = [_queue(app, f"t{i}@example.org") for i in range(10)]
    db.session.commit()
    counts = deliver_due()
    assert counts["sent"] == 4 and counts["retry"] == 6 and counts["failed"] == 0
    state = _service_lane()
    assert state.paused_until > utcnow() and state.rate_per_second > 0
    for row in rows[4:]:
        db.session.refresh(row)
        assert row.status == OutboxStatus.QUEUED and row.next_attempt_at == state.paused_until

    # While paused, nothing is attempted at all.
    smtp_sink.throttle_after = None
    assert deliver_due()["paused"] == 1 and len(smtp_sink.messages) == 4

    # After the pause it resumes, paced at the slower rate, and finishes everything.
    state.paused_until = utcnow()
    state.rate_per_second = 50.0
    for row in rows[4:]:
        row.next_attempt_at = utcnow()
    db.session.commit()
    started = time.monotonic()
    assert deliver_due()["sent"] == 6
    assert time.monotonic() - started >= 5 / 50  # six sends at 50/s need at least 0.1 s
    assert sorted(r[0][0] for r in smtp_sink.messages) == sorted(r.to_addr for r in rows)
    assert _service_lane().rate_per_second == 62.5  # speeding back up


def test_a_repeated_throttle_pauses_longer(app, session, smtp_sink, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_THROTTLE_PAUSE_SECONDS", 30)
    smtp_sink.throttle_after = 0
    _queue(app, "a@example.org")
    db.session.commit()
    deliver_due()
    state = _service_lane()
    first = state.paused_until - utcnow()
    state.paused_until = utcnow()
    db.session.execute(sa.update(OutboxMessage).values(next_attempt_at=utcnow()))
    db.session.commit()
    deliver_due()
    second = _service_lane().paused_until - utcnow()
    assert second > first * 1.5


def test_the_configured_rate_caps_sending(app, session, smtp_sink, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_RATE_PER_SECOND", 20.0)
    for i in range(5):
        _queue(app, f"r{i}@example.org")
    db.session.commit()
    started = time.monotonic()
    deliver_due()
    assert time.monotonic() - started >= 4 / 20


def test_a_permanently_refused_address_is_suppressed_for_its_group(app, session, smtp_sink, make):
    from campaign.people.services import is_suppressed

    group = make.group()
    smtp_sink.refuse["gone@example.org"] = "550 5.1.1 No such user"
    _queue(app, "gone@example.org", group_id=group.id)
    db.session.commit()
    deliver_due()
    assert is_suppressed(group.id, "gone@example.org")


def test_message_bytes_round_trip_through_the_email_parser(app, session):
    from campaign.core.outbox import message_bytes

    row = _queue(app, "ana@example.org")
    row.subject = "Réunion à l'hôpital: Tuesday"
    row.from_addr = "Salud Para Todos — Riverside <noreply@example.org>"
    row.headers = {"List-Id": "Salud Para Todos <salud.example.org>"}
    row.text_body = "Première ligne\nSecond line with = sign\n" + "long " * 400
    raw = message_bytes(row)
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == "Réunion à l'hôpital: Tuesday"
    assert parsed["From"].addresses[0].display_name == "Salud Para Todos — Riverside"
    assert parsed["List-Id"] == "Salud Para Todos <salud.example.org>"
    assert parsed["Message-ID"] == row.message_id
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.strip() == row.text_body.strip()
    html = parsed.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert html.strip() == row.html_body.strip()


def test_line_breaks_in_header_values_cannot_add_headers(app, session):
    from campaign.core.outbox import message_bytes

    row = _queue(app, "ana@example.org")
    row.subject = "Hello\r\nBcc: everyone@example.org"
    parsed = email.message_from_bytes(message_bytes(row), policy=policy.default)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Hello Bcc: everyone@example.org"
