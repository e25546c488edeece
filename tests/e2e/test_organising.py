"""Journeys of a running group, in a real browser.

- An organiser publishes an action with one place; two supporters sign up on their
  phones (one gets the place, one the waitlist); the first cancels from the emailed
  link and the place goes to the second, who is told.
- A supporter asks for updates and confirms; the organiser emails the list; the
  supporter unsubscribes with one button from the link in that email.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DESKTOP, LiveServer, Mailbox, Screenshots
from tests.e2e.test_journey import flash, log_in

pytestmark = pytest.mark.e2e

ORGANISER = "amara@riverside.example.org"
PASSWORD = "organiser-password-456"
SLUG = "riverside-organising"


def _running_group(live_server: LiveServer) -> None:
    """An approved group with an organiser, straight into the live database."""
    from campaign.accounts.models import User
    from campaign.core.models import utcnow
    from campaign.core.passwords import hash_password
    from campaign.extensions import db
    from campaign.groups.models import Group, GroupStatus, Membership, Role

    def work() -> None:
        if db.session.query(Group).filter_by(slug=SLUG).first():
            return
        user = User(email=ORGANISER, password_hash=hash_password(PASSWORD),
                    email_confirmed_at=utcnow(), display_name="Amara")  # fmt: skip
        group = Group(slug=SLUG, name="Riverside Organising", area="Riverside",
                      description="We organise.", contact_email="hello@riverside.example.org",
                      status=GroupStatus.APPROVED)  # fmt: skip
        db.session.add_all([user, group])
        db.session.flush()
        db.session.add(Membership(group_id=group.id, user_id=user.id, role=Role.ORGANISER))
        db.session.commit()

    live_server.run(work)


def _sign_up(page: Any, url: str, name: str, email: str, button: str) -> None:
    page.goto(url)
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name=button).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("check your email")


def test_an_action_fills_up_and_a_cancellation_promotes_the_waitlist(
    live_server: LiveServer, page: Any, new_page: Any, mailbox: Mailbox, shot: Screenshots
) -> None:
    base = live_server.url
    _running_group(live_server)
    organiser = new_page(DESKTOP)
    log_in(organiser, base, ORGANISER, PASSWORD)
    organiser.goto(f"{base}/g/{SLUG}/manage/actions/new")
    day = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%d")
    organiser.get_by_label("Title").fill("Visit the Trust board together")
    organiser.get_by_label("Description").fill("We go *together*, and ask the board one question.")
    organiser.get_by_label("Start date").fill(day)
    organiser.get_by_label("Start time").fill("14:00")
    organiser.get_by_label("End date").fill(day)
    organiser.get_by_label("End time").fill("16:00")
    organiser.get_by_label("Place name").fill("Trust headquarters")
    organiser.get_by_label("Town or area").fill("Riverside")
    organiser.get_by_label("Number of places (optional)").fill("1")
    organiser.get_by_role("button", name=re.compile("Save|Create", re.I)).first.click()
    organiser.get_by_role("button", name=re.compile("Publish", re.I)).first.click()
    shot(organiser, "organiser published")

    page.goto(f"{base}/actions")
    page.get_by_role("link", name="Visit the Trust board together").first.click()
    action_url = page.url
    shot(page, "action page")
    _sign_up(page, action_url, "Ana", "ana@example.org", "Sign me up")
    assert mailbox.latest("ana@example.org").subject.startswith("You are signed up")
    _sign_up(page, action_url, "Ben", "ben@example.org", "Put me on the waitlist")
    assert mailbox.latest("ben@example.org").subject.startswith("You are on the waitlist")

    before = mailbox.mark()
    page.goto(mailbox.latest_link("ana@example.org", subject_contains="signed up"))
    shot(page, "manage my place")
    page.get_by_role("button", name=re.compile("Cancel my place")).click()
    shot(page, "cancelled")
    offered = mailbox.latest("ben@example.org", subject_contains="place opened", after=before)
    assert "Visit the Trust board together" in offered.subject


def test_a_supporter_subscribes_gets_the_email_and_unsubscribes_in_one_click(
    live_server: LiveServer, page: Any, new_page: Any, mailbox: Mailbox, shot: Screenshots
) -> None:
    base = live_server.url
    _running_group(live_server)
    page.goto(f"{base}/g/{SLUG}")
    page.get_by_role("link", name=re.compile("Get updates")).click()
    page.get_by_label("First name (optional)").fill("Nadia")
    page.get_by_label("Email address").fill("nadia@example.org")
    consent = page.get_by_label(re.compile("Send me email updates"))
    expect(consent).not_to_be_checked()  # never pre-ticked
    consent.check()
    page.get_by_role("button", name="Sign me up").click()
    page.goto(mailbox.latest_link("nadia@example.org", subject_contains="Confirm"))
    page.get_by_role("button", name="Yes, send me updates").click()
    flash(page, "you will get updates")

    organiser = new_page(DESKTOP)
    log_in(organiser, base, ORGANISER, PASSWORD)
    organiser.goto(f"{base}/g/{SLUG}/mailings/new")
    organiser.get_by_label("Subject").fill("Meeting on Thursday")
    organiser.locator("textarea").first.fill("Hello {{first_name}}, see you on **Thursday**.")
    organiser.get_by_role("button", name=re.compile("Save|Create|Continue", re.I)).first.click()
    expect(organiser.get_by_text("Hello Sam").first).to_be_visible()  # the sample name
    shot(organiser, "preview")
    organiser.get_by_role("button", name="Send or schedule").click()
    # Nothing goes before the confirmation, which names the subject and the count.
    expect(organiser.locator("h1")).to_contain_text("Send 'Meeting on Thursday' to 1 person now?")
    shot(organiser, "confirm send")
    organiser.get_by_role("button", name="Send to 1 person now").click()
    expect(organiser.locator("main")).to_contain_text("Queued for 1 person")

    mail = mailbox.latest("nadia@example.org", subject_contains="Meeting on Thursday")
    assert "Hello Nadia" in mail.text
    unsubscribe = next(link for link in mail.links if "/unsubscribe/" in link)
    page.goto(unsubscribe)
    shot(page, "unsubscribe page")
    page.get_by_role("button", name=re.compile("Unsubscribe")).first.click()
    expect(page.locator("main")).to_contain_text("unsubscribed")
    shot(page, "unsubscribed")
