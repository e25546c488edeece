"""Campaign mail as it leaves: MIME structure and list headers, parsed with ``email``."""

from __future__ import annotations

import email
import re
import time
from collections import Counter
from email import policy

import pytest
from sqlalchemy import func, select

from campaign.core.outbox import OutboxMessage, OutboxStatus
from campaign.extensions import db
from campaign.mailing.models import MailingStatus
from campaign.people.models import ConsentMethod, UpdatesStatus
from tests.conftest import login
from tests.mailing.helpers import (
    add_draft,
    add_many_subscribers,
    add_supporter,
    rows_of,
    send_now_through_pages,
)

# RFC 2919: list-id = [phrase] "<" list-label "." list-id-namespace ">", dot-atom-text.
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
LIST_ID = re.compile(rf"^(?:[^<>]*\s)?<{ATEXT}(?:\.{ATEXT})+>$")
LIST_UNSUBSCRIBE = re.compile(r"^<(https?://[^>\s]+)>,\s*<(mailto:[^>\s]+)>$")


def _raw_header(raw: bytes, name: str) -> str:
    """A header exactly as sent, unfolded but not decoded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    match = re.search(rf"^{name}: ([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M | re.I)
    assert match, name
    return re.sub(r"\r\n[ \t]", " ", match.group(1))


def test_delivered_campaign_mail_is_multipart_with_valid_list_headers(
    app, client, group, organiser, smtp_sink
):
    group.name = "Grŵp Iechyd (Riverside), “Health” Justice"
    supporter = add_supporter(group, "ana@example.org", first_name="Ana")
    mailing = add_draft(
        group, body="Hello **{{first_name}}**,\n\n[Stop these]({{unsubscribe_url}})"
    )
    login(client, organiser)
    response = send_now_through_pages(client, group, mailing)
    assert response.status_code == 302

    [(recipients, raw)] = smtp_sink.messages
    assert recipients == ["ana@example.org"]
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hello Ana," in text and "**" not in text
    assert "Hello <strong>Ana</strong>" in html
    # The visible footer: why they get it, and the way out.
    assert "you signed up for updates from Grŵp Iechyd" in " ".join(text.split())
    assert "you signed up for updates from Grŵp Iechyd" in html
    # No tracking: no images, links are not rewritten.
    assert "<img" not in html

    unsubscribe = _raw_header(raw, "List-Unsubscribe")
    assert "=?" not in unsubscribe  # never RFC 2047-encoded: clients would not read it
    match = LIST_UNSUBSCRIBE.match(unsubscribe)
    assert match, unsubscribe
    https_url, mailto = match.groups()
    assert https_url.startswith("http://localhost/unsubscribe/")
    assert mailto.startswith("mailto:unsubscribe@") and "?subject=unsubscribe-" in mailto
    assert https_url in text and f'href="{https_url}"' in html
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert _raw_header(raw, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    list_id = _raw_header(raw, "List-Id")
    assert LIST_ID.match(list_id), list_id
    assert list_id == f"Grwp Iechyd Riverside Health Justice <{group.slug}.localhost>"
    assert str(message["List-Id"]) == list_id
    assert message["Reply-To"].addresses[0].addr_spec == group.contact_email

    # The one-click POST a mail provider would make, from nowhere, with nothing else.
    provider = app.test_client()
    reply = provider.post(https_url.removeprefix("http://localhost"),
                          data={"List-Unsubscribe": "One-Click"})  # fmt: skip
    assert reply.status_code == 200
    db.session.refresh(supporter)
    assert supporter.updates_status == UpdatesStatus.UNSUBSCRIBED
    assert supporter.consents[-1].method == ConsentMethod.ONE_CLICK

    # Delivered in-process after the commit: the mailing is finished.
    client.get(f"/g/{group.slug}/mailings")
    db.session.refresh(mailing)
    assert mailing.status == MailingStatus.SENT


@pytest.mark.slow
def test_a_thousand_recipients_each_get_exactly_one_copy(app, client, group, organiser, smtp_sink):
    add_many_subscribers(group, 1000)
    add_supporter(group, "pending@example.org", status=UpdatesStatus.PENDING)
    mailing = add_draft(group, body="Hello {{first_name}}, see you on Saturday.")
    db.session.commit()
    login(client, organiser)
    started = time.monotonic()
    response = send_now_through_pages(client, group, mailing)
    elapsed = time.monotonic() - started
    assert response.status_code == 302

    addresses = Counter(rcpt for recipients, _raw in smtp_sink.messages for rcpt in recipients)
    assert len(smtp_sink.messages) == 1000
    assert set(addresses.values()) == {1}
    assert set(addresses) == {f"fan{i}@example.org" for i in range(1000)}
    sample = email.message_from_bytes(smtp_sink.messages[500][1], policy=policy.default)
    recipient = sample["To"].addresses[0].addr_spec
    number = recipient.removeprefix("fan").removesuffix("@example.org")
    assert f"Hello Fan{number}," in sample.get_body(("plain",)).get_content()

    assert len(rows_of(mailing)) == 1000
    assert (
        db.session.scalar(
            select(func.count(OutboxMessage.id)).where(
                OutboxMessage.mailing_id == mailing.id, OutboxMessage.status != OutboxStatus.SENT
            )
        )
        == 0
    )
    db.session.refresh(mailing)
    assert mailing.recipient_count == 1000
    assert elapsed < 30, f"queueing and delivering 1,000 took {elapsed:.1f}s"
