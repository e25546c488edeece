"""The first journey through a real browser: from a new account to a group with members.

register → confirm by the emailed link → apply for a group → an admin approves it →
the organiser invites a volunteer → the volunteer creates an account and joins.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DESKTOP, MOBILE, LiveServer, Mailbox, Screenshots

pytestmark = pytest.mark.e2e

ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "admin-password-123"
ORGANISER_EMAIL = "organiser@example.org"
ORGANISER_PASSWORD = "organiser-password-123"
MEMBER_EMAIL = "newmember@example.org"
MEMBER_PASSWORD = "member-password-123"
GROUP_NAME = "Southbank Health For All"


def create_platform_admin(live_server: LiveServer) -> None:
    """What ``flask create-admin`` does, straight into the live server's database."""
    from campaign.accounts.services import create_admin
    from campaign.extensions import db

    def work() -> None:
        create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        db.session.commit()

    live_server.run(work)


def flash(page: Any, text: str) -> None:
    """A flash message with this text is shown."""
    expect(page.locator(".flashes")).to_contain_text(text)


def choose(select: Any, label_start: str) -> None:
    """Pick the option whose visible label starts with ``label_start`` (labels may grow)."""
    option = select.locator("option").filter(has_text=re.compile(rf"^\s*{re.escape(label_start)}"))
    expect(option).to_have_count(1)
    select.select_option(value=option.get_attribute("value"))


def register(page: Any, *, name: str, email: str, password: str) -> None:
    """Fill in and send the registration form the page is on."""
    expect(page.get_by_role("heading", name="Create an account", level=1)).to_be_visible()
    page.get_by_label("Your name (optional)").fill(name)
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Type the password again").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your email", level=1)).to_be_visible()
    flash(page, "Check your email: we have sent a link to confirm your address.")


def fill_login_form(page: Any, email: str, password: str) -> None:
    expect(page.get_by_role("heading", name="Log in", level=1)).to_be_visible()
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()
    flash(page, "You are logged in.")


def log_in_if_asked(page: Any, email: str, password: str) -> None:
    """Log in when the page is the login form.

    Whether registering logs the new account in is the app's choice (not logging in
    keeps the answer identical for addresses that already have an account); the
    journey goes on either way.
    """
    if page.get_by_role("heading", name="Log in", level=1).is_visible():
        fill_login_form(page, email, password)


def log_in(page: Any, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/login")
    fill_login_form(page, email, password)


def log_out(page: Any) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("button", name="Log out").click()
    flash(page, "You are logged out.")
    expect(page.get_by_role("link", name="Log in", exact=True)).to_be_visible()


def test_register_apply_approve_invite_join(
    live_server: LiveServer, page: Any, mailbox: Mailbox, shot: Screenshots
) -> None:
    base = live_server.url
    create_platform_admin(live_server)

    # 1. A visitor creates an account from the front page.
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Organise for health care")
    shot(page, "home")
    page.get_by_role("link", name="Create an account", exact=True).click()
    register(page, name="Sam", email=ORGANISER_EMAIL, password=ORGANISER_PASSWORD)
    shot(page, "check email")

    # 2. The emailed link opens a page with one button; only pressing it confirms.
    confirm_mail = mailbox.latest(ORGANISER_EMAIL, subject_contains="confirm")
    assert "Sam" not in confirm_mail.text, "stranger-triggered mail must carry nothing typed"
    page.goto(confirm_mail.first_link)
    expect(page.get_by_role("heading", name="Confirm your email address")).to_be_visible()
    expect(page.get_by_text(ORGANISER_EMAIL)).to_be_visible()
    shot(page, "confirm page")
    page.get_by_role("button", name="Confirm my address").click()
    flash(page, "Thank you, your email address is confirmed.")
    log_in_if_asked(page, ORGANISER_EMAIL, ORGANISER_PASSWORD)
    expect(page.get_by_role("heading", name="Your groups", level=1)).to_be_visible()
    shot(page, "confirmed")

    # 3. The confirmed organiser applies to register a group.
    page.get_by_role("link", name="Register a group").click()
    expect(page.get_by_role("heading", name="Register a local group")).to_be_visible()
    page.get_by_label("Group name").fill(GROUP_NAME)
    page.get_by_label("Area or town").fill("Southwark and Lambeth")
    page.get_by_label("What the group does").fill(
        "We go with people to appointments and campaign against *charging for NHS care*."
    )
    page.get_by_label("Public contact email").fill("southbank@example.org")
    shot(page, "apply form")
    page.get_by_role("button", name="Send the application").click()
    flash(page, "Your application is with the platform team")
    expect(page.get_by_role("heading", name=GROUP_NAME, level=1)).to_be_visible()
    expect(page.locator(".notice")).to_contain_text("waiting for the platform team")
    expect(page.get_by_text("Your role: Organiser")).to_be_visible()
    shot(page, "pending dashboard")
    log_out(page)

    # 4. The platform admin approves the application.
    log_in(page, base, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Applications").click()
    application = page.locator("section.card").filter(
        has=page.get_by_role("heading", name=GROUP_NAME)
    )
    expect(application).to_contain_text("Southwark and Lambeth")
    expect(application).to_contain_text("southbank@example.org")
    shot(page, "applications")
    application.get_by_role("button", name="Approve").click()
    flash(page, f"{GROUP_NAME} approved.")
    expect(page.get_by_text("No applications are waiting.")).to_be_visible()
    shot(page, "approved")
    log_out(page)

    # 5. The organiser, back again, invites a volunteer.
    approved_mail = mailbox.latest(ORGANISER_EMAIL, subject_contains="approved")
    assert GROUP_NAME in approved_mail.text
    log_in(page, base, ORGANISER_EMAIL, ORGANISER_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name=GROUP_NAME).click()
    expect(page.get_by_role("heading", name=GROUP_NAME, level=1)).to_be_visible()
    expect(page.locator(".notice")).to_have_count(0)
    page.get_by_role("link", name="Members and invitations").click()
    expect(page.get_by_role("heading", name="Members", level=1)).to_be_visible()
    before_invite = mailbox.mark()
    page.get_by_label("Their email address").fill(MEMBER_EMAIL)
    choose(page.get_by_label("Role", exact=True), "Volunteer")
    shot(page, "invite form")
    page.get_by_role("button", name="Send invitation").click()
    flash(page, f"Invitation sent to {MEMBER_EMAIL}.")
    expect(page.get_by_role("heading", name="Invitations not yet accepted")).to_be_visible()
    expect(page.get_by_role("listitem").filter(has_text=MEMBER_EMAIL)).to_contain_text("Volunteer")
    shot(page, "invitation sent")
    log_out(page)

    # 6. The invitee opens the link, creates an account with that address, and joins.
    invite_link = mailbox.latest_link(MEMBER_EMAIL, after=before_invite)
    assert invite_link.startswith(f"{base}/invitations/")
    page.goto(invite_link)
    expect(page.get_by_role("heading", name=f"Join {GROUP_NAME}")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("as a volunteer")
    expect(page.get_by_role("main")).to_contain_text(MEMBER_EMAIL)
    shot(page, "invitation logged out")
    page.get_by_role("main").get_by_role("link", name="Create an account").click()
    register(page, name="Alex", email=MEMBER_EMAIL, password=MEMBER_PASSWORD)
    page.goto(invite_link)
    expect(page.get_by_role("heading", name=f"Join {GROUP_NAME}")).to_be_visible()
    join = page.get_by_role("button", name="Join the group")
    if not join.is_visible():
        # Not logged in by registering: the invitation's own "Log in" comes back here.
        page.get_by_role("main").get_by_role("link", name="Log in").click()
        fill_login_form(page, MEMBER_EMAIL, MEMBER_PASSWORD)
        expect(page).to_have_url(invite_link)
    expect(join).to_be_visible()
    shot(page, "invitation logged in")
    join.click()
    flash(page, f"Welcome to {GROUP_NAME}.")
    expect(page).to_have_url(re.compile(r"/g/[^/]+/dashboard$"))
    expect(page.get_by_role("heading", name=GROUP_NAME, level=1)).to_be_visible()
    expect(page.get_by_text("Your role: Volunteer")).to_be_visible()
    expect(page.get_by_role("link", name="Members and invitations")).to_have_count(0)
    shot(page, "member dashboard")

    assert page.log.problems == [], page.log.problems


@pytest.mark.parametrize("viewport", [MOBILE, DESKTOP], ids=["mobile", "desktop"])
def test_public_pages_load_nothing_from_elsewhere(
    live_server: LiveServer, new_page: Any, shot: Screenshots, viewport: dict[str, int]
) -> None:
    """No third-party request, no console error (CSP violations are console errors)."""
    page = new_page(viewport)
    for path, heading in (
        ("/", "Organise for health care"),
        ("/groups", "Local groups"),
        ("/login", "Log in"),
    ):
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 200, path
        expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {viewport}"
        shot(page, path.strip("/") or "home")

    elsewhere = [url for url in page.log.requests if not url.startswith(f"{live_server.url}/")]
    assert elsewhere == [], f"requests to other origins: {elsewhere}"
    assert page.log.console_errors == [], page.log.console_errors
    assert page.log.page_errors == [], page.log.page_errors


def test_form_fields_are_not_announced_as_invalid_before_use(
    live_server: LiveServer, page: Any
) -> None:
    """Screen readers take any aria-invalid value but "false" as invalid (WCAG 4.1.2)."""
    for path in ("/login", "/register"):
        page.goto(f"{live_server.url}{path}")
        broken = page.evaluate(
            """() => [...document.querySelectorAll('[aria-invalid], [aria-describedby]')]
              .filter(el => {
                const invalid = el.getAttribute('aria-invalid');
                const ids = (el.getAttribute('aria-describedby') || '').split(/\\s+/);
                return (invalid !== null && !['true', 'false'].includes(invalid))
                  || ids.some(id => id && !document.getElementById(id));
              })
              .map(el => el.outerHTML.slice(0, 160))"""
        )
        assert broken == [], f"{path}: {broken}"
