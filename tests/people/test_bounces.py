"""Bounce ingestion from RFC 3464 delivery status notifications."""

from __future__ import annotations

from email.message import EmailMessage

from click.testing import CliRunner
from sqlalchemy import select

from campaign.core.outbox import OutboxMessage, OutboxStatus, queue_email
from campaign.extensions import db
from campaign.people import services
from campaign.people.bounces import ingest_bounce, parse_bounce
from campaign.people.models import Suppression, SuppressionReason


def make_dsn(recipient: str, *, status: str = "5.1.1", action: str = "failed",
             message_id: str | None = None) -> bytes:  # fmt: skip
    """A DSN laid out as a relay writes one (RFC 3464), in our own words."""
    original = (
        "--BOUNDARY\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {message_id}\r\nTo: {recipient}\r\nSubject: Hello\r\n\r\n"
        if message_id
        else ""
    )
    text = (
        "From: MAILER-DAEMON@relay.example.net\r\n"
        "To: noreply@campaign.example.org\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"\r\n'
        "\r\n"
        "--BOUNDARY\r\nContent-Type: text/plain\r\n\r\n"
        "The message below could not be delivered.\r\n\r\n"
        "--BOUNDARY\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; relay.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 mailbox unknown\r\n\r\n"
        f"{original}"
        "--BOUNDARY--\r\n"
    )
    return text.encode()


def _sent_message(app, group, address: str) -> OutboxMessage:
    with app.test_request_context():
        row = queue_email(address, "password_changed", group_id=group.id)
    row.status = OutboxStatus.SENT
    db.session.flush()
    return row


def test_a_dsn_is_parsed_into_recipients_and_the_original_message(app):
    report = parse_bounce(make_dsn("gone@example.org", message_id="<abc@campaign>"))
    assert report.is_dsn and report.original_message_id == "<abc@campaign>"
    [recipient] = report.recipients
    assert recipient.address == "gone@example.org" and recipient.is_hard_bounce


def test_a_hard_bounce_suppresses_the_address_for_the_group_that_mailed_it(app, session, make):
    group, other = make.group(), make.group()
    services.upsert_supporter(other, "gone@example.org")
    row = _sent_message(app, group, "gone@example.org")
    result = ingest_bounce(make_dsn("gone@example.org", message_id=row.message_id))
    assert result.hard_bounces == 1
    [suppression] = db.session.scalars(select(Suppression)).all()
    assert suppression.group_id == group.id and suppression.reason == SuppressionReason.HARD_BOUNCE
    assert row.status == OutboxStatus.FAILED and "5.1.1" in row.last_error


def test_an_unknown_message_suppresses_the_address_wherever_it_is_held(app, session, make):
    group_a, group_b, group_c = make.group(), make.group(), make.group()
    services.upsert_supporter(group_a, "gone@example.org")
    services.upsert_supporter(group_b, "gone@example.org")
    ingest_bounce(make_dsn("gone@example.org", message_id="<unknown@elsewhere>"))
    groups = set(db.session.scalars(select(Suppression.group_id)))
    assert groups == {group_a.id, group_b.id}
    assert group_c.id not in groups


def test_delays_and_ordinary_mail_change_nothing(app, session, make):
    group = make.group()
    services.upsert_supporter(group, "slow@example.org")
    result = ingest_bounce(make_dsn("slow@example.org", status="4.4.7", action="delayed"))
    plain = EmailMessage()
    plain["Subject"] = "Re: your newsletter"
    plain.set_content("Thanks, very useful!")
    result = ingest_bounce(bytes(plain), result)
    assert (result.soft, result.not_dsn, result.hard_bounces) == (1, 1, 0)
    assert db.session.scalars(select(Suppression)).all() == []


def test_the_cli_ingests_a_maildir_and_removes_applied_files(app, make, tmp_path):
    group = make.group()
    services.upsert_supporter(group, "gone@example.org")
    db.session.commit()
    maildir = tmp_path / "new"
    maildir.mkdir()
    (maildir / "1.eml").write_bytes(make_dsn("gone@example.org"))
    (maildir / "2.eml").write_bytes(b"Subject: hello\n\nnot a bounce\n")
    runner = CliRunner()
    result = runner.invoke(app.cli, ["bounces", "ingest", str(maildir)])
    assert result.exit_code == 0, result.output
    assert "1 hard bounce(s) suppressed" in result.output and "1 neither" in result.output
    assert list(maildir.iterdir()) == []
    assert services.is_suppressed(group.id, "gone@example.org")


def test_an_unsubscribe_request_by_email_unsubscribes(app, session, make):
    from campaign.people.models import UpdatesStatus

    group = make.group()
    supporter, _ = services.upsert_supporter(group, "leaving@example.org")
    supporter.updates_status = UpdatesStatus.SUBSCRIBED
    db.session.flush()
    token = services.unsubscribe_token(supporter)
    request = f"To: unsubscribe@campaign.example.org\r\nSubject: Re: unsubscribe-{token}\r\n\r\n"
    result = ingest_bounce(request.encode())
    assert result.unsubscribed == 1
    assert supporter.updates_status == UpdatesStatus.UNSUBSCRIBED
    assert services.is_suppressed(group.id, "leaving@example.org")
    forged = "Subject: unsubscribe-" + "x" * 40 + "\r\n\r\n"
    assert ingest_bounce(forged.encode()).not_dsn == 1
