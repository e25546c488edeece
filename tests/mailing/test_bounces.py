"""Bounces and complaints: real-world report formats, matched to the message we sent.

The samples in bounce_samples/ are written by us in the layouts of many mail servers
(see its README.md). Each quotes the Message-ID ``<name.sample@campaign.example.org>``
of the message it reports on; a test "sends" that message by adding the outbox row.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from campaign import create_app
from campaign.core import migrations
from campaign.core.models import utcnow
from campaign.core.outbox import MailCategory, OutboxMessage, OutboxStatus
from campaign.extensions import db
from campaign.groups.models import Group
from campaign.mailing.bounces import ingest_bounce, parse_bounce
from campaign.mailing.models import BounceEvent, BounceKind
from campaign.people import services
from campaign.people.models import (
    ConsentAction,
    ConsentMethod,
    ConsentRecord,
    Supporter,
    Suppression,
    SuppressionReason,
    UpdatesStatus,
)
from tests.conftest import links_in, login, mail_to, path_of, post, throwaway_database

SAMPLES_DIR = Path(__file__).parent / "bounce_samples"
ROOT = Path(__file__).resolve().parents[2]

# file: (permanent, temporary, complaints, Message-ID of the original)
SAMPLES = {
    "postfix.eml": ({"gone@example.org"}, set(), set(), "postfix"),
    "postfix-alias.eml": ({"jo@example.org"}, set(), set(), "postfix-alias"),
    "exim.eml": ({"nobody-here@example.org"}, set(), set(), "exim"),
    "qmail.eml": ({"closed@example.org"}, set(), set(), "qmail"),
    "sendmail.eml": ({"moved@example.org"}, {"busy@example.org"}, set(), "sendmail"),
    "office365.eml": ({"left.job@example.org"}, set(), set(), "office365"),
    "exchange-legacy.eml": ({"old.staff@example.org"}, set(), set(), "exchange-legacy"),
    "gmail.eml": ({"no.such.user@example.org"}, set(), set(), "gmail"),
    "yahoo.eml": ({"quit@example.org"}, set(), set(), "yahoo"),
    "aol.eml": ({"screen.name@example.org"}, set(), set(), "aol"),
    "groupwise.eml": ({"former.member@example.org"}, set(), set(), "groupwise"),
    "microsoft-arf.eml": (set(), set(), set(), "microsoft-arf"),
    "arf-rfc5965.eml": (set(), set(), {"annoyed@example.org"}, "arf"),
    "delayed.eml": (set(), {"slow@example.org"}, set(), "delayed"),
    "expired-4xx.eml": (set(), {"slow@example.org"}, set(), "expired"),
    "no-report-type.eml": ({"unknown.person@example.org"}, set(), set(), "no-report-type"),
    "multipart-mixed.eml": ({"wrapped@example.org"}, set(), set(), "multipart-mixed"),
    "out-of-office.eml": (set(), set(), set(), "out-of-office"),
}
PERMANENT_SAMPLES = [name for name, (permanent, *_) in SAMPLES.items() if permanent]


def sample(name: str) -> bytes:
    return (SAMPLES_DIR / name).read_bytes()


def sample_id(name: str) -> str:
    return f"<{SAMPLES[name][3]}.sample@campaign.example.org>"


def sent(
    group: Group | None, address: str, message_id: str | None = None, *,
    when: datetime | None = None, supporter: Supporter | None = None,
) -> OutboxMessage:  # fmt: skip
    """A message the group sent to the address (delivered to the relay)."""
    when = when or utcnow() - timedelta(minutes=5)
    row = OutboxMessage(
        to_addr=address,
        from_addr="noreply@campaign.example.org",
        subject="Save our A&E",
        text_body="Dear supporter",
        html_body=None,
        headers={},
        message_id=message_id or f"<{os.urandom(6).hex()}@campaign.example.org>",
        category=MailCategory.MARKETING,
        template="mailing",
        priority=50,
        status=OutboxStatus.SENT,
        attempts=1,
        next_attempt_at=when,
        sent_at=when,
        group_id=group.id if group else None,
        supporter_id=supporter.id if supporter else None,
    )
    db.session.add(row)
    db.session.flush()
    return row


def subscriber(group: Group, address: str) -> Supporter:
    supporter, _ = services.upsert_supporter(group, address)
    supporter.updates_status = UpdatesStatus.SUBSCRIBED
    supporter.updates_confirmed_at = utcnow() - timedelta(days=60)
    db.session.flush()
    return supporter


def suppressions() -> set[tuple[int, str, str]]:
    return {
        (row.group_id, row.email, row.reason) for row in db.session.scalars(select(Suppression))
    }


def dsn(address: str, message_id: str | None, *, action: str = "failed",
        status: str = "5.1.1", original_recipient: str | None = None) -> bytes:  # fmt: skip
    """A minimal RFC 3464 report, for tests that need many of them."""
    headers = (
        f"--B\nContent-Type: text/rfc822-headers\n\nMessage-ID: {message_id}\nTo: {address}\n\n"
        if message_id
        else ""
    )
    original = f"Original-Recipient: rfc822; {original_recipient}\n" if original_recipient else ""
    return (
        "From: MAILER-DAEMON@relay.example.net\nTo: bounces@campaign.example.org\n"
        "Subject: Delivery Status Notification\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nSee below.\n\n"
        "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; relay.example.net\n\n"
        f"Final-Recipient: rfc822; {address}\n{original}Action: {action}\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; {status[0]}50 {status} mailbox problem\n\n"
        f"{headers}--B--\n"
    ).encode()


# --- reading -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_reads_as_its_server_meant_it(name):
    permanent, temporary, complaints, _ = SAMPLES[name]
    report = parse_bounce(sample(name))
    assert (report.permanent, report.temporary, report.complaints) == (
        permanent,
        temporary,
        complaints,
    )
    assert report.message_id == sample_id(name)
    for address in permanent | temporary:
        assert report.reasons[address]  # the server's words, for organisers


def test_the_corpus_covers_every_sample_file():
    assert {path.name for path in SAMPLES_DIR.glob("*.eml")} == set(SAMPLES)
    readme = (SAMPLES_DIR / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in SAMPLES)


def test_a_delayed_dsn_is_never_a_permanent_failure():
    for name in ("delayed.eml", "expired-4xx.eml"):
        assert parse_bounce(sample(name)).permanent == set()
    # "failed" with a 4.x.x status, or "delayed" with a 5.x.x one, is still not permanent.
    assert parse_bounce(dsn("a@example.org", None, status="4.4.7")).permanent == set()
    assert parse_bounce(dsn("a@example.org", None, action="delayed", status="5.0.0")).temporary


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(SAMPLES)),
    cut=st.integers(min_value=0, max_value=6000),
    at=st.integers(min_value=0, max_value=6000),
    junk=st.binary(max_size=40),
)
def test_a_damaged_report_is_read_without_crashing(name, cut, at, junk):
    """Truncated or garbled reports (a full disk, a broken relay) never stop the reader."""
    raw = sample(name)[:cut]
    report = parse_bounce(raw[:at] + junk + raw[at:])
    addresses = report.permanent | report.temporary | report.complaints
    assert all("@" in address and address == address.lower() for address in addresses)
    assert not report.permanent & report.temporary
    if name in ("delayed.eml", "expired-4xx.eml"):
        assert not report.permanent  # a warning cut short is still only a warning


@pytest.mark.parametrize("name", ["delayed.eml", "expired-4xx.eml"])
def test_a_delay_notice_stripped_of_its_report_part_is_still_not_permanent(name):
    raw = sample(name)
    report = parse_bounce(raw[: raw.index(b"Content-Description: Delivery report")])
    assert report.permanent == set()


def test_a_report_in_an_unknown_charset_is_still_read():
    raw = sample("qmail.eml").replace(
        b"Subject: failure notice",
        b"Subject: failure notice\nContent-Type: text/plain; charset=us-asgcii",
    )
    assert parse_bounce(raw).permanent == {"closed@example.org"}


def test_a_failure_is_permanent_only_on_a_5xx_status_or_reply():
    no_status = dsn("a@example.org", None).replace(b"Status: 5.1.1\n", b"")
    assert parse_bounce(no_status).permanent == {"a@example.org"}  # "550 5.1.1 ..." says so
    cut_short = no_status.replace(b"Diagnostic-Code: smtp; 550 5.1.1 mailbox problem\n", b"")
    report = parse_bounce(cut_short)
    assert (report.permanent, report.temporary) == (set(), {"a@example.org"})


def test_original_recipient_beats_final_recipient():
    report = parse_bounce(
        dsn("internal.alias@mail.example.net", None, original_recipient="public@example.org")
    )
    assert report.permanent == {"public@example.org"}


# --- acting on reports ---------------------------------------------------------------------


@pytest.mark.parametrize("name", PERMANENT_SAMPLES)
def test_a_permanent_failure_suppresses_the_address_for_the_group_that_sent_it(
    app, session, make, name
):
    group, other = make.group(), make.group()
    [address] = SAMPLES[name][0]
    supporter = subscriber(group, address)
    subscriber(other, address)
    row = sent(group, address, sample_id(name), supporter=supporter)
    result = ingest_bounce(sample(name))
    # (sendmail.eml also reports a delay for an address the quoted message did not go to)
    assert (result.permanent, result.suppressed) == (1, 1)
    assert result.unmatched == len(SAMPLES[name][1])
    assert suppressions() == {(group.id, address, SuppressionReason.HARD_BOUNCE)}
    [bounce] = db.session.scalars(select(BounceEvent)).all()
    assert (bounce.group_id, bounce.supporter_id, bounce.kind) == (
        group.id,
        supporter.id,
        BounceKind.PERMANENT,
    )
    assert bounce.message_id == row.message_id and bounce.reason
    assert row.status == OutboxStatus.FAILED
    # Reading the same report again (a re-run of the mailbox) records nothing new.
    ingest_bounce(sample(name))
    assert db.session.scalar(select(func.count(BounceEvent.id))) == 1


def test_an_unknown_message_id_suppresses_nobody(app, session, make):
    group = make.group()
    subscriber(group, "gone@example.org")
    sent(group, "gone@example.org")  # we did mail them, but not the message reported
    result = ingest_bounce(sample("postfix.eml"))
    assert (result.permanent, result.unmatched) == (0, 1)
    assert suppressions() == set()
    assert db.session.scalars(select(BounceEvent)).all() == []


def test_an_address_we_never_mailed_is_not_suppressed(app, session, make):
    group = make.group()
    subscriber(group, "gone@example.org")
    result = ingest_bounce(dsn("gone@example.org", None))
    assert result.unmatched == 1 and suppressions() == set()


def test_the_final_recipient_alias_is_never_suppressed(app, session, make):
    group = make.group()
    subscriber(group, "jo@example.org")
    subscriber(group, "j.okafor@staff.example.net")
    sent(group, "j.okafor@staff.example.net")
    sent(group, "jo@example.org", sample_id("postfix-alias.eml"))
    ingest_bounce(sample("postfix-alias.eml"))
    assert suppressions() == {(group.id, "jo@example.org", SuppressionReason.HARD_BOUNCE)}


def test_a_forged_dsn_for_an_address_in_two_groups_suppresses_at_most_the_matched_group(
    app, session, make
):
    group_a, group_b = make.group(), make.group()
    for group in (group_a, group_b):
        subscriber(group, "both@example.org")
    row_a = sent(group_a, "both@example.org", when=utcnow() - timedelta(days=2))
    sent(group_b, "both@example.org", when=utcnow() - timedelta(hours=1))

    # Quoting group A's message: only group A.
    ingest_bounce(dsn("both@example.org", row_a.message_id))
    assert suppressions() == {(group_a.id, "both@example.org", SuppressionReason.HARD_BOUNCE)}

    # Quoting group A's message but naming another address: nobody.
    subscriber(group_a, "victim@example.org")
    sent(group_a, "victim@example.org")
    assert ingest_bounce(dsn("victim@example.org", row_a.message_id)).unmatched == 1
    assert not services.is_suppressed(group_a.id, "victim@example.org")

    # No Message-ID at all: the latest message to the address, so group B only.
    ingest_bounce(dsn("both@example.org", None))
    assert {g for g, address, _ in suppressions() if address == "both@example.org"} == {
        group_a.id,
        group_b.id,
    }
    third = make.group()
    subscriber(third, "both@example.org")
    assert not services.is_suppressed(third.id, "both@example.org")


def test_a_forged_dsn_with_no_message_id_suppresses_one_group_never_every_group(app, session, make):
    groups = [make.group() for _ in range(3)]
    for number, group in enumerate(groups):
        subscriber(group, "many@example.org")
        sent(group, "many@example.org", when=utcnow() - timedelta(hours=10 - number))
    ingest_bounce(dsn("many@example.org", None))
    assert suppressions() == {(groups[-1].id, "many@example.org", SuppressionReason.HARD_BOUNCE)}


def test_an_old_message_is_not_what_a_bounce_without_message_id_is_about(app, session, make):
    group = make.group()
    subscriber(group, "old@example.org")
    sent(group, "old@example.org", when=utcnow() - timedelta(days=40))
    assert ingest_bounce(dsn("old@example.org", None)).unmatched == 1
    assert suppressions() == set()


def test_an_arf_complaint_unsubscribes_from_that_group_only(app, session, make):
    group, other = make.group(), make.group()
    supporter = subscriber(group, "annoyed@example.org")
    elsewhere = subscriber(other, "annoyed@example.org")
    sent(other, "annoyed@example.org")
    sent(group, "annoyed@example.org", sample_id("arf-rfc5965.eml"), supporter=supporter)
    result = ingest_bounce(sample("arf-rfc5965.eml"))
    assert (result.complaints, result.suppressed) == (1, 1)
    assert supporter.updates_status == UpdatesStatus.UNSUBSCRIBED
    record = db.session.scalars(
        select(ConsentRecord).where(ConsentRecord.supporter_id == supporter.id)
    ).all()[-1]
    assert (record.action, record.method) == (ConsentAction.WITHDRAWN, ConsentMethod.COMPLAINT)
    assert suppressions() == {(group.id, "annoyed@example.org", SuppressionReason.COMPLAINT)}
    assert elsewhere.updates_status == UpdatesStatus.SUBSCRIBED
    [bounce] = db.session.scalars(select(BounceEvent)).all()
    assert bounce.kind == BounceKind.COMPLAINT


def test_a_redacted_arf_complaint_is_matched_by_its_message_id(app, session, make):
    group = make.group()
    supporter = subscriber(group, "hidden@example.org")
    sent(group, "hidden@example.org", sample_id("microsoft-arf.eml"), supporter=supporter)
    assert ingest_bounce(sample("microsoft-arf.eml")).complaints == 1
    assert supporter.updates_status == UpdatesStatus.UNSUBSCRIBED
    assert services.is_suppressed(group.id, "hidden@example.org")


def test_a_complaint_about_a_message_we_did_not_send_changes_nothing(app, session, make):
    group = make.group()
    supporter = subscriber(group, "annoyed@example.org")
    sent(group, "annoyed@example.org")
    assert ingest_bounce(sample("arf-rfc5965.eml")).unmatched == 1
    assert supporter.updates_status == UpdatesStatus.SUBSCRIBED and suppressions() == set()


def test_an_out_of_office_reply_is_not_a_bounce(app, session, make):
    group = make.group()
    for address in ("away@example.org", "office@example.org"):
        subscriber(group, address)
        sent(group, address, sample_id("out-of-office.eml") if address[0] == "a" else None)
    result = ingest_bounce(sample("out-of-office.eml"))
    assert (result.neither, result.unmatched) == (1, 0) and suppressions() == set()


# --- temporary failures: the policy --------------------------------------------------------


def _soft_bounce(group, address, day: float, start: datetime):
    when = start + timedelta(days=day)
    row = sent(group, address, when=when - timedelta(minutes=10))
    return ingest_bounce(dsn(address, row.message_id, action="delayed", status="4.2.2"), now=when)


def test_repeated_temporary_failures_over_days_suppress_the_address(app, session, make):
    group = make.group()
    subscriber(group, "full@example.org")
    start = utcnow() - timedelta(days=10)
    for day in (0, 1, 2):
        assert _soft_bounce(group, "full@example.org", day, start).suppressed == 0
    # Three failing messages, but only two days apart: not yet.
    assert not services.is_suppressed(group.id, "full@example.org")
    assert _soft_bounce(group, "full@example.org", 3.5, start).suppressed == 1
    [suppression] = db.session.scalars(select(Suppression)).all()
    assert suppression.reason == SuppressionReason.HARD_BOUNCE
    assert "temporary failures on 4 messages" in suppression.detail


def test_one_message_delayed_many_times_never_suppresses(app, session, make):
    group = make.group()
    subscriber(group, "slow@example.org")
    start = utcnow() - timedelta(days=6)
    row = sent(group, "slow@example.org", sample_id("delayed.eml"), when=start)
    for day in range(6):
        ingest_bounce(sample("delayed.eml"), now=start + timedelta(days=day, hours=4))
    ingest_bounce(sample("expired-4xx.eml").replace(b"expired.sample", b"delayed.sample"))
    assert row.status == OutboxStatus.SENT and suppressions() == set()


def test_a_delivery_in_between_starts_the_count_again(app, session, make):
    group = make.group()
    subscriber(group, "flaky@example.org")
    start = utcnow() - timedelta(days=20)
    _soft_bounce(group, "flaky@example.org", 0, start)
    _soft_bounce(group, "flaky@example.org", 2, start)
    sent(group, "flaky@example.org", when=start + timedelta(days=3))  # no report: delivered
    _soft_bounce(group, "flaky@example.org", 5, start)
    _soft_bounce(group, "flaky@example.org", 6, start)
    assert not services.is_suppressed(group.id, "flaky@example.org")
    assert _soft_bounce(group, "flaky@example.org", 9, start).suppressed == 1


def test_temporary_failures_in_another_group_do_not_count(app, session, make):
    group, other = make.group(), make.group()
    start = utcnow() - timedelta(days=10)
    for day, target in ((0, group), (2, other), (4, group)):
        subscriber(target, "shared@example.org")
        _soft_bounce(target, "shared@example.org", day, start)
    assert suppressions() == set()


# --- what organisers and supporters see ----------------------------------------------------


def test_the_supporter_page_shows_each_delivery_problem_and_its_reason(app, make):
    organiser = make.user(name="Olive Organiser")
    group = make.group(organiser=organiser)
    other = make.group()
    supporter = subscriber(group, "gone@example.org")
    subscriber(other, "gone@example.org")
    sent(group, "gone@example.org", sample_id("postfix.eml"), supporter=supporter)
    ingest_bounce(sample("postfix.eml"))
    sent(other, "gone@example.org", sample_id("gmail.eml"))
    ingest_bounce(sample("gmail.eml"))  # another group's problem: not on this page
    db.session.commit()
    client = app.test_client()
    login(client, organiser)
    page = client.get(f"/g/{group.slug}/people/{supporter.id}").get_data(as_text=True)
    assert "Delivery problems" in page
    assert "Could not be delivered (permanent)" in page
    assert "User unknown in virtual mailbox table" in page
    assert "The email account that you tried to reach does not exist" not in page

    annoyed = subscriber(group, "annoyed@example.org")
    sent(group, "annoyed@example.org", sample_id("arf-rfc5965.eml"), supporter=annoyed)
    ingest_bounce(sample("arf-rfc5965.eml"))
    quiet = subscriber(group, "fine@example.org")
    db.session.commit()
    page = client.get(f"/g/{group.slug}/people/{annoyed.id}").get_data(as_text=True)
    # Once as the delivery problem, once as how the consent was withdrawn.
    assert page.count("Marked the group's email as spam") == 2
    page = client.get(f"/g/{group.slug}/people/{quiet.id}").get_data(as_text=True)
    assert "No delivery problems reported for this address." in page


def test_a_bounced_supporter_comes_back_by_confirming_again(app, client, make):
    group = make.group()
    supporter = subscriber(group, "back@example.org")
    sent(group, "back@example.org", supporter=supporter)
    ingest_bounce(dsn("back@example.org", None))
    db.session.commit()
    assert services.is_suppressed(group.id, "back@example.org")
    assert services.count_recipients(group) == 0

    data = {"first_name": "", "email": "back@example.org", "consent": "y"}
    assert post(client, f"/g/{group.slug}/subscribe", data).status_code == 302
    [message] = [m for m in mail_to("back@example.org") if m.template == "subscribe_confirm"]
    [link] = [u for u in links_in(message) if "/subscribe/confirm/" in u]
    assert services.is_suppressed(group.id, "back@example.org")  # not before the click
    assert post(client, path_of(link)).status_code == 302
    assert not services.is_suppressed(group.id, "back@example.org")
    assert services.count_recipients(group) == 1


def test_erasing_a_supporter_removes_their_delivery_problems(app, session, make):
    user = make.user()
    group = make.group(organiser=user)
    supporter = subscriber(group, "gone@example.org")
    sent(group, "gone@example.org", sample_id("postfix.eml"), supporter=supporter)
    ingest_bounce(sample("postfix.eml"))
    services.erase_supporter(user, supporter)
    db.session.flush()
    assert db.session.scalars(select(BounceEvent)).all() == []


def test_an_unsubscribe_request_by_email_unsubscribes(app, session, make):
    group = make.group()
    supporter = subscriber(group, "leaving@example.org")
    token = services.unsubscribe_token(supporter)
    request = f"To: unsubscribe@campaign.example.org\r\nSubject: Re: unsubscribe-{token}\r\n\r\n"
    assert ingest_bounce(request.encode()).unsubscribed == 1
    assert supporter.updates_status == UpdatesStatus.UNSUBSCRIBED
    assert services.is_suppressed(group.id, "leaving@example.org")
    forged = "Subject: unsubscribe-" + "x" * 40 + "\r\n\r\n"
    assert ingest_bounce(forged.encode()).neither == 1


# --- the command, as the mail system runs it -----------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def bounce_database(request, tmp_path):
    with throwaway_database(request.param, tmp_path) as url:
        yield url


def test_flask_bounces_ingest_runs_as_a_real_command(bounce_database, tmp_path):
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": bounce_database,
                                 "MAIL_FILE_DIR": str(tmp_path / "mail")})  # fmt: skip
    with app.app_context():
        migrations.upgrade("head")
        group = Group(slug="riverside", name="Riverside", area="Riverside",
                      contact_email="group@example.org", status="approved")  # fmt: skip
        db.session.add(group)
        db.session.flush()
        for address in ("gone@example.org", "slow@example.org"):
            subscriber(group, address)
        sent(group, "gone@example.org", sample_id("postfix.eml"))
        sent(group, "slow@example.org", sample_id("delayed.eml"))
        annoyed = subscriber(group, "annoyed@example.org")
        sent(group, "annoyed@example.org", sample_id("arf-rfc5965.eml"), supporter=annoyed)
        db.session.commit()
        group_id = group.id
    maildir = tmp_path / "new"
    maildir.mkdir()
    for name in ("postfix.eml", "delayed.eml", "out-of-office.eml", "gmail.eml"):
        (maildir / name).write_bytes(sample(name))
    env = os.environ | {
        "CAMPAIGN_ENV": "development",
        "CAMPAIGN_INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": bounce_database,
        "SECRET_KEY": "s" * 40,
        "ENCRYPTION_KEYS": "w1:" + "A" * 43,
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "campaign", "bounces", "ingest", str(maildir)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "4 message(s): 1 permanent failure(s), 1 temporary failure(s)" in done.stdout
    assert "1 address(es) suppressed" in done.stdout
    assert "1 about no message we sent (ignored); 1 neither." in done.stdout
    assert list(maildir.iterdir()) == []
    with app.app_context():
        assert services.is_suppressed(group_id, "gone@example.org")
        assert not services.is_suppressed(group_id, "slow@example.org")
        kinds = sorted(db.session.scalars(select(BounceEvent.kind)))
        assert kinds == [BounceKind.PERMANENT, BounceKind.TEMPORARY]
        db.session.close()
        db.engine.dispose()

    # One message on stdin, as a mail alias pipes it.
    piped = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "campaign", "bounces", "ingest", "-"],
        env=env, cwd=tmp_path, input=sample("arf-rfc5965.eml"), capture_output=True, timeout=120,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert b"1 message(s): 0 permanent failure(s), 0 temporary failure(s), 1 complaint(s)" in (
        piped.stdout
    )
    with app.app_context():
        supporter = db.session.scalar(
            select(Supporter).where(Supporter.email == "annoyed@example.org")
        )
        assert supporter.updates_status == UpdatesStatus.UNSUBSCRIBED
        db.session.close()
        db.engine.dispose()

    missing = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "campaign", "bounces", "ingest",
         str(tmp_path / "nowhere")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr


def test_a_refusal_at_send_time_is_shown_with_the_relays_words(app, session, make):
    """The outbox's permanent_failure signal (a 5xx to RCPT): suppressed for that group,
    and the reply is a delivery problem on the supporter's page."""
    from campaign.core.outbox import permanent_failure

    group, other = make.group(), make.group()
    supporter = subscriber(group, "refused@example.org")
    subscriber(other, "refused@example.org")
    row = sent(group, "refused@example.org", supporter=supporter)
    row.status, row.last_error = OutboxStatus.FAILED, "550 5.1.1 <refused@example.org> unknown"
    permanent_failure.send(app, row=row)
    assert suppressions() == {(group.id, "refused@example.org", SuppressionReason.HARD_BOUNCE)}
    [bounce] = db.session.scalars(select(BounceEvent)).all()
    assert (bounce.supporter_id, bounce.kind) == (supporter.id, BounceKind.PERMANENT)
    assert bounce.reason == "550 5.1.1 <refused@example.org> unknown"
