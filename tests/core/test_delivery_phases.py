"""SMTP replies read by phase (DESIGN rule 14), lanes, headers and international
addresses, against a real SMTP server (aiosmtpd on a loopback port)."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy
from email.utils import parsedate_to_datetime

import pytest
from sqlalchemy import select

from campaign.core.addresses import address_deliverable, envelope_address
from campaign.core.models import utcnow
from campaign.core.outbox import (
    MailThrottle,
    OutboxMessage,
    OutboxStatus,
    PreparedEmail,
    deliver_due,
    delivery_problem,
    delivery_problems,
    message_bytes,
    queue_email,
    queue_prepared,
)
from campaign.extensions import db
from tests.conftest import post
from tests.smtp import start_sink


def _campaign(app, group, addresses: list[str], **kwargs) -> list[OutboxMessage]:
    with app.test_request_context():
        queue_prepared(
            [
                PreparedEmail(to=a, subject="Save our A&E", text_body=f"Hello {a}")
                for a in addresses
            ],
            template="mailing",
            group_id=group.id,
            **kwargs,
        )
    db.session.commit()
    return _rows(addresses)


def _rows(addresses: list[str]) -> list[OutboxMessage]:
    rows = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.to_addr.in_(addresses))
        .order_by(OutboxMessage.id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


def _suppressed(group, addresses):
    from campaign.people.services import is_suppressed

    return [a for a in addresses if is_suppressed(group.id, a)]


def _reset(app, to: str) -> OutboxMessage:
    with app.test_request_context():
        row = queue_email(to, "password_changed")
    db.session.commit()
    return row


@pytest.fixture
def relay_without_smtputf8(app, monkeypatch):
    """A relay that does not offer SMTPUTF8 (aiosmtpd offers it by default)."""
    handler, controller = start_sink(app, monkeypatch, enable_SMTPUTF8=False)
    yield handler
    controller.stop()


PEOPLE = ["ana@example.org", "ben@example.org", "cai@example.org"]


def test_530_at_mail_from_pauses_the_send_and_suppresses_nobody(app, session, smtp_sink, make):
    group = make.group()
    smtp_sink.mail_reply = "530 5.7.0 Authentication required"
    _campaign(app, group, PEOPLE)
    counts = deliver_due()
    assert counts["sent"] == 0 and counts["failed"] == 0 and counts["paused"] == 1
    for row in _rows(PEOPLE):
        assert row.status == OutboxStatus.QUEUED
        assert "530 5.7.0 Authentication required" in row.last_error
    assert _suppressed(group, PEOPLE) == []
    problem = delivery_problem(group.id)
    assert problem.error_kind == "refused" and problem.paused_until > utcnow()
    assert problem.last_error == "530 5.7.0 Authentication required (in answer to MAIL FROM)"
    assert [p.lane for p in delivery_problems()] == [f"group:{group.id}"]
    assert smtp_sink.messages == []


def test_554_at_data_pauses_the_send_and_suppresses_nobody(app, session, smtp_sink, make):
    group = make.group()
    smtp_sink.data_reply = "554 5.7.1 Message content rejected"
    _campaign(app, group, PEOPLE)
    counts = deliver_due()
    assert counts["sent"] == 0 and counts["failed"] == 0
    assert {row.status for row in _rows(PEOPLE)} == {OutboxStatus.QUEUED}
    assert _suppressed(group, PEOPLE) == []
    problem = delivery_problem(group.id)
    assert problem.last_error == "554 5.7.1 Message content rejected (in answer to DATA)"

    # The relay accepts again: once the pause is over the send goes out and the
    # problem is cleared.
    smtp_sink.data_reply = None
    problem.paused_until = utcnow()
    for row in _rows(PEOPLE):
        row.next_attempt_at = utcnow()
    db.session.commit()
    assert deliver_due()["sent"] == 3
    assert delivery_problem(group.id) is None


def test_550_at_rcpt_suppresses_exactly_that_address_and_the_next_is_delivered(
    app, session, smtp_sink, make
):
    group = make.group()
    smtp_sink.refuse["ben@example.org"] = "550 5.1.1 No such user"
    _campaign(app, group, PEOPLE)
    counts = deliver_due()
    assert counts == {"sent": 2, "retry": 0, "failed": 1, "paused": 0}
    assert _suppressed(group, PEOPLE) == ["ben@example.org"]
    assert sorted(r[0][0] for r in smtp_sink.messages) == ["ana@example.org", "cai@example.org"]
    assert smtp_sink.rsets >= 1  # the session was reset before the next recipient
    ben = _rows(["ben@example.org"])[0]
    assert ben.status == OutboxStatus.FAILED
    assert ben.last_error == "550 5.1.1 No such user (in answer to RCPT TO)"
    assert delivery_problem(group.id) is None


def test_a_python_error_is_retried_with_backoff_and_suppresses_nobody(
    app, session, smtp_sink, make
):
    group = make.group()
    rows = _campaign(app, group, PEOPLE)
    rows[0].headers = {"X-Broken": 12}  # not text: building the message raises
    db.session.commit()
    counts = deliver_due()
    assert counts["sent"] == 2 and counts["retry"] == 1 and counts["failed"] == 0
    broken = _rows([PEOPLE[0]])[0]
    assert broken.status == OutboxStatus.QUEUED and broken.attempts == 1
    assert broken.next_attempt_at > utcnow() + timedelta(minutes=1)
    assert "AttributeError" in broken.last_error
    assert _suppressed(group, PEOPLE) == []


def test_a_single_4xx_at_rcpt_delays_only_that_recipient(app, session, smtp_sink, make):
    group = make.group()
    smtp_sink.refuse["ana@example.org"] = "450 4.2.0 Greylisted, try again"
    _campaign(app, group, PEOPLE)
    counts = deliver_due()
    assert counts == {"sent": 2, "retry": 1, "failed": 0, "paused": 0}
    assert delivery_problem(group.id) is None


def test_many_4xx_at_rcpt_in_a_row_is_throttling_and_pauses_the_lane(app, session, smtp_sink, make):
    group = make.group()
    smtp_sink.rcpt_reply = "451 4.7.1 Rate limit exceeded, slow down"
    addresses = [f"p{i}@example.org" for i in range(12)]
    _campaign(app, group, addresses)
    counts = deliver_due()
    limit = app.config["MAIL_RCPT_DEFERRALS_TO_PAUSE"]
    assert counts["failed"] == 0 and counts["sent"] == 0 and counts["paused"] == 1
    rows = _rows(addresses)
    # Only the run that showed the throttling was attempted; the rest wait for the pause.
    assert sum(row.attempts for row in rows) == limit
    assert {row.status for row in rows} == {OutboxStatus.QUEUED}
    state = delivery_problem(group.id)
    assert state.error_kind == "throttled" and state.rate_per_second > 0
    assert f"{limit} recipients in a row deferred" in state.last_error
    assert _suppressed(group, addresses) == []


def test_a_dropped_connection_is_reconnected_and_not_throttling(app, session, smtp_sink, make):
    group = make.group()
    smtp_sink.drop_after = 2  # the relay hangs up after two messages per connection
    addresses = [f"d{i}@example.org" for i in range(7)]
    _campaign(app, group, addresses)
    counts = deliver_due()
    assert counts == {"sent": 7, "retry": 0, "failed": 0, "paused": 0}
    assert smtp_sink.connections == 4
    assert db.session.scalars(select(MailThrottle.last_error)).all() in ([], [None])


def test_service_mail_is_delivered_while_a_groups_campaign_is_paused(app, session, smtp_sink, make):
    group = make.group()
    smtp_sink.throttle_after = 2  # the relay throttles the campaign after two messages
    addresses = [f"c{i}@example.org" for i in range(10)]
    _campaign(app, group, addresses)
    deliver_due()
    campaign_lane = delivery_problem(group.id)
    assert campaign_lane.paused_until > utcnow() and campaign_lane.error_kind == "throttled"

    smtp_sink.throttle_after = None
    reset = _reset(app, "forgot@example.org")
    counts = deliver_due()
    assert counts["sent"] == 1 and counts["paused"] == 1
    db.session.refresh(reset)
    assert reset.status == OutboxStatus.SENT
    assert smtp_sink.messages[-1][0] == ["forgot@example.org"]
    assert sum(r.status == OutboxStatus.SENT for r in _rows(addresses)) == 2
    assert delivery_problem(None) is None  # the service lane was never held


def test_a_groups_mail_is_from_the_group_via_the_site_with_its_reply_to(app, session):
    with app.test_request_context():
        row = queue_email(
            "ana@example.org",
            "password_changed",
            group_name="Salud Para Todos — Riverside",
            reply_to="Salud Para Todos <contact@salud.example.org>",
        )
    before = utcnow().replace(microsecond=0)
    parsed = email.message_from_bytes(message_bytes(row), policy=policy.default)
    sender = parsed["From"].addresses[0]
    assert sender.display_name == "Salud Para Todos — Riverside via Campaign"
    assert sender.addr_spec == "noreply@localhost"
    assert parsed["Reply-To"].addresses[0].addr_spec == "contact@salud.example.org"
    assert parsed["Auto-Submitted"] == "auto-generated"
    sent_at = parsedate_to_datetime(parsed["Date"])
    assert before <= sent_at <= utcnow() + timedelta(seconds=1)
    assert parsed["Date"].endswith("+0000")


def test_campaign_mail_queued_in_bulk_carries_the_group_name(app, session, make):
    group = make.group("Riverside Health Justice")
    rows = _campaign(app, group, ["ana@example.org"], group_name=group.name)
    raw = message_bytes(rows[0])
    assert b'\r\nFrom: "Riverside Health Justice via Campaign" <noreply@localhost>\r\n' in raw
    assert rows[0].lane == f"group:{group.id}"


def test_an_international_address_is_delivered_with_smtputf8(app, session, smtp_sink):
    row = _reset(app, "josé@example.org")
    counts = deliver_due()
    assert counts["sent"] == 1
    [(recipients, raw)] = smtp_sink.messages
    assert recipients == ["josé@example.org"]
    assert "SMTPUTF8" in smtp_sink.mail_options[0]
    assert b"To: jos\xc3\xa9@example.org\r\n" in raw  # the address as it is
    assert b"=?utf-8?" not in raw.split(b"\r\n\r\n")[0].split(b"To:")[1].split(b"\r\n")[0]
    parsed = email.message_from_string(raw.decode("utf-8"), policy=policy.default)
    assert parsed["To"].addresses[0].addr_spec == "josé@example.org"
    db.session.refresh(row)
    assert row.status == OutboxStatus.SENT


def test_without_smtputf8_an_international_address_fails_clearly_and_is_not_suppressed(
    app,
    session,
    relay_without_smtputf8,
    make,
):
    group = make.group()
    _campaign(app, group, ["josé@example.org", "ana@example.org"])
    counts = deliver_due()
    assert counts["sent"] == 1 and counts["failed"] == 1
    [jose] = _rows(["josé@example.org"])
    assert jose.status == OutboxStatus.FAILED and "SMTPUTF8" in jose.last_error
    assert _suppressed(group, ["josé@example.org"]) == []


def test_an_international_domain_travels_as_idna():
    assert envelope_address("ana@bücher.example") == ("ana@xn--bcher-kva.example", False)
    assert envelope_address("josé@example.org") == ("josé@example.org", True)
    assert address_deliverable("ana@bücher.example", smtputf8=False)
    assert not address_deliverable("josé@example.org", smtputf8=False)
    assert address_deliverable("josé@example.org", smtputf8=True)


def test_with_smtputf8_off_a_form_refuses_an_international_address(client, monkeypatch, app):
    monkeypatch.setitem(app.config, "MAIL_SMTPUTF8", False)
    response = post(client, "/forgot-password", {"email": "josé@example.org"})
    assert response.status_code == 422
    assert "non-English letters before the @" in response.get_data(as_text=True)
    assert db.session.scalars(select(OutboxMessage)).all() == []


def test_with_smtputf8_on_a_form_accepts_an_international_address(client, app, make):
    make.user("josé@example.org")
    db.session.commit()
    response = post(client, "/forgot-password", {"email": "josé@example.org"})
    assert response.status_code == 302
    assert [r.to_addr for r in db.session.scalars(select(OutboxMessage))] == ["josé@example.org"]


def test_the_organisers_report_says_why_a_send_is_paused(app, client, smtp_sink, make):
    from campaign.mailing.models import MailingStatus
    from tests.conftest import login
    from tests.mailing.helpers import add_draft

    organiser = make.user("org@example.org")
    group = make.group(organiser=organiser)
    mailing = add_draft(group)
    mailing.status = MailingStatus.SENDING
    _campaign(app, group, PEOPLE, mailing_id=mailing.id)
    mailing.recipient_count = 3
    db.session.commit()
    smtp_sink.mail_reply = "530 5.7.0 Authentication required"
    deliver_due()
    login(client, organiser)
    page = client.get(f"/g/{group.slug}/mailings/{mailing.id}").get_data(as_text=True)
    assert "Sending is paused. The mail server said: 530 5.7.0 Authentication required" in page
    assert _suppressed(group, PEOPLE) == []


def test_a_line_starting_with_a_dot_arrives_intact(app, session, smtp_sink):
    row = _reset(app, "dots@example.org")
    row.text_body = "first\n.\n.second line\n..third\n"
    db.session.commit()
    assert deliver_due()["sent"] == 1
    parsed = email.message_from_bytes(smtp_sink.messages[0][1], policy=policy.default)
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == row.text_body
