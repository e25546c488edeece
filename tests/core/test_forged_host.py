"""A forged Host header never reaches a queued email (DESIGN.md rule 13).

Every form that triggers mail is driven through the test client with ``Host:
evil.example`` and ``X-Forwarded-Host: evil.example`` on every request (logging in
included); nothing queued (subject, bodies, headers, calendar) may name that host, and
every link in it starts with BASE_URL. The forms are listed once, in ``FORMS``; a
second test reads the source and fails when a view that can queue mail is not listed.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask, request, request_started
from sqlalchemy import select
from werkzeug.datastructures import Headers

from campaign.actions.models import Action, ActionSignup, ActionStatus, SignupStatus
from campaign.core.outbox import OutboxMessage
from campaign.extensions import db
from campaign.groups.models import GroupStatus, Role
from campaign.mailing.models import Mailing
from tests import factories
from tests.conftest import Client, links_in, login, mail_to, path_of, post
from tests.mailing.helpers import add_supporter

EVIL = "evil.example"
BASE_URL = "https://campaign.example.org"
SOURCE = Path(__file__).resolve().parents[2] / "campaign"
LINK_RE = re.compile(r"https?://[^\s<>\"')]+")
NEW_PASSWORD = "a new long password"


class ForgedHostClient(Client):
    """Every request claims to be for evil.example, directly and through a proxy header.

    Cookies follow the host the client believes it talks to, so a session made here is
    sent back on the next forged request, as a browser pointed at that host would do.
    """

    def open(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        headers = Headers(kwargs.pop("headers", None) or {})
        headers["Host"] = EVIL
        headers["X-Forwarded-Host"] = EVIL
        return super().open(*args, headers=headers, **kwargs)


@dataclass
class Ctx:
    app: Flask
    client: ForgedHostClient
    state: dict = field(default_factory=dict)


@dataclass
class MailForm:
    """One form that sends mail: how to reach it, what to post, which mail it queues."""

    name: str
    endpoint: str
    prepare: Callable[[Ctx], str]  # logs in as needed, returns the form's URL
    data: dict[str, str] | Callable[[Ctx], dict[str, str]]
    expect: set[str]  # templates (outbox labels) that must be queued
    ok: tuple[int, ...] = (200, 302)
    has_links: bool = True  # some notices carry no link at all


# --- the people and things the forms need ------------------------------------------------------


def _logged_in(ctx: Ctx, **kwargs) -> object:
    user = factories.user(**kwargs)
    login(ctx.client, user)
    ctx.state["user"] = user
    return user


def _organiser_group(ctx: Ctx):
    user = _logged_in(ctx)
    group = factories.group("Riverside Health Justice", organiser=user)
    ctx.state["group"] = group
    return group


def _action(group, *, capacity: int | None = 10, signups: int = 0, waiting: int = 0) -> Action:
    starts = datetime.now(UTC) + timedelta(days=5)
    action = Action(group_id=group.id, title="Visit the Trust board", capacity=capacity,
                    status=ActionStatus.PUBLISHED, starts_at=starts,
                    ends_at=starts + timedelta(hours=2), place_name="Board room",
                    place_public=False, reminder_hours=24)  # fmt: skip
    db.session.add(action)
    db.session.flush()
    for n in range(signups):
        db.session.add(ActionSignup(action_id=action.id, group_id=group.id, name=f"Placed {n}",
                                    email=f"placed{n}@example.org"))  # fmt: skip
    for n in range(waiting):
        db.session.add(ActionSignup(action_id=action.id, group_id=group.id,
                                    email=f"waiting{n}@example.org", name=f"Waiting {n}",
                                    status=SignupStatus.WAITLISTED))  # fmt: skip
    db.session.flush()
    return action


def _manage_path(ctx: Ctx, *, waiting: int = 0) -> str:
    """Sign up through the public form (forged too) and open the emailed link."""
    group = factories.group("Riverside Health Justice")
    action = _action(group, capacity=1, waiting=0)
    post(ctx.client, f"/g/{group.slug}/actions/{action.id}",
         {"name": "Ana", "email": "ana@example.org"})  # fmt: skip
    for n in range(waiting):
        post(ctx.client, f"/g/{group.slug}/actions/{action.id}",
             {"name": f"W{n}", "email": f"waiting{n}@example.org"})  # fmt: skip
    [link] = [u for u in links_in(mail_to("ana@example.org")[-1]) if "/signup/" in u]
    return path_of(link)


def _email_change_confirm_path(ctx: Ctx) -> str:
    user = _logged_in(ctx)
    post(ctx.client, "/account/email", {"em-new_email": "moved@example.org",
                                         "em-password": factories.PASSWORD})  # fmt: skip
    [link] = [u for u in links_in(mail_to("moved@example.org")[-1]) if "/confirm/" in u]
    ctx.state["old_email"] = user.email
    return path_of(link)


def _admin_decides(ctx: Ctx) -> str:
    _logged_in(ctx, admin=True)
    applicant = factories.user()
    pending = factories.group(status=GroupStatus.PENDING)
    pending.applied_by_id = applicant.id
    db.session.flush()
    return f"/admin/groups/{pending.id}/decide"


def _mailing(ctx: Ctx, suffix: str) -> str:
    group = _organiser_group(ctx)
    add_supporter(group, "fan@example.org", first_name="Fan")
    mailing = Mailing(group_id=group.id, subject="Rally on Saturday",
                      body_markdown="Hello {{first_name}}. [Stop](https://campaign.example.org/x) "
                                    "or {{unsubscribe_url}}",
                      segment={"kind": "subscribers"})  # fmt: skip
    db.session.add(mailing)
    db.session.flush()
    return f"/g/{group.slug}/mailings/{mailing.id}/{suffix}"


def _admin_resets_2fa(ctx: Ctx) -> str:
    from tests.accounts.helpers import turn_on_two_factor

    _logged_in(ctx, admin=True)
    user = factories.user("phone-lost@example.org")
    turn_on_two_factor(user)
    return f"/admin/users/{user.id}/two-factor-reset"


def _data_link_path(ctx: Ctx) -> str:
    from campaign.people.services import unsubscribe_token

    supporter = add_supporter(factories.group(), "fan@example.org", first_name="Fan")
    return f"/unsubscribe/{unsubscribe_token(supporter)}/my-data"


def _organiser_action(ctx: Ctx, suffix: str, **kwargs) -> str:
    group = _organiser_group(ctx)
    action = _action(group, **kwargs)
    ctx.state["action"] = action
    return f"/g/{group.slug}/manage/actions/{action.id}{suffix}"


def _organiser_cancels_signup(ctx: Ctx) -> str:
    group = _organiser_group(ctx)
    action = _action(group, capacity=1, signups=1, waiting=1)
    signup = db.session.scalar(
        select(ActionSignup).where(ActionSignup.email == "placed0@example.org")
    )
    return f"/g/{group.slug}/manage/actions/{action.id}/signups/{signup.id}/cancel"


def _edit_data(ctx: Ctx) -> dict[str, str]:
    day = (datetime.now() + timedelta(days=5)).strftime("%Y-%m-%d")
    return {"title": "Visit the Trust board", "kind": "protest", "description": "Meet outside.",
            "start_date": day, "start_time": "12:00", "end_date": day, "end_time": "14:00",
            "place_name": "Board room", "address": "1 River Road", "capacity": "5",
            "reminder_hours": "24"}  # fmt: skip


APPLICATION = {"name": "Riverside Health Justice", "area": "Riverside",
               "description": "We campaign against NHS charging.",
               "contact_email": "contact@riverside.example.org"}  # fmt: skip
REGISTRATION = {"display_name": "Ana", "email": "new@example.org", "password": NEW_PASSWORD,
                "password_again": NEW_PASSWORD}  # fmt: skip


def _with_admin(prepare: Callable[[Ctx], str]) -> Callable[[Ctx], str]:
    def wrapped(ctx: Ctx) -> str:
        factories.user("admin@example.org", admin=True)
        return prepare(ctx)

    return wrapped


FORMS = [
    MailForm("register", "accounts.register", lambda ctx: "/register", REGISTRATION,
             {"confirm_email"}),
    MailForm("register with a taken address", "accounts.register",
             lambda ctx: factories.user("new@example.org") and "/register", REGISTRATION,
             {"account_exists"}),
    MailForm("resend confirmation", "accounts.resend_confirmation",
             lambda ctx: _logged_in(ctx, confirmed=False) and "/confirm/resend", {},
             {"confirm_email"}),
    MailForm("forgot password", "accounts.forgot_password",
             lambda ctx: factories.user("ana@example.org") and "/forgot-password",
             {"email": "ana@example.org"}, {"reset_password"}),
    MailForm("change password", "accounts.change_password",
             lambda ctx: _logged_in(ctx) and "/account/password",
             {"pw-current_password": factories.PASSWORD, "pw-new_password": NEW_PASSWORD,
              "pw-new_password_again": NEW_PASSWORD}, {"password_changed"}, has_links=False),
    MailForm("change email", "accounts.change_email",
             lambda ctx: _logged_in(ctx) and "/account/email",
             {"em-new_email": "moved@example.org", "em-password": factories.PASSWORD},
             {"change_email"}),
    MailForm("change email to a taken address", "accounts.change_email",
             lambda ctx: factories.user("taken@example.org") and _logged_in(ctx)
             and "/account/email",
             {"em-new_email": "taken@example.org", "em-password": factories.PASSWORD},
             {"account_exists"}),
    MailForm("confirm email change", "accounts.confirm_email_change",
             _email_change_confirm_path, {}, {"change_email", "email_changed_notice"}),
    MailForm("group application", "groups.apply",
             _with_admin(lambda ctx: _logged_in(ctx) and "/groups/apply"), APPLICATION,
             {"group_applied"}),
    MailForm("group approval by admin", "groups.admin_decide", _admin_decides,
             {"decision": "approve"}, {"group_approved"}),
    MailForm("group rejection by admin", "groups.admin_decide", _admin_decides,
             {"decision": "reject", "note": "Please tell us more."}, {"group_rejected"},
             has_links=False),
    MailForm("invitation", "groups.invite",
             lambda ctx: f"/g/{_organiser_group(ctx).slug}/members/invite",
             {"email": "friend@example.org", "role": str(Role.VOLUNTEER.value)},
             {"invitation"}),
    MailForm("public subscribe", "people.subscribe",
             lambda ctx: f"/g/{factories.group().slug}/subscribe",
             {"first_name": "Ana", "email": "ana@example.org", "consent": "y"},
             {"subscribe_confirm"}),
    MailForm("public action sign-up with updates", "actions.public_action",
             lambda ctx: (lambda a: f"/g/{a.group.slug}/actions/{a.id}")(
                 _action(factories.group())),
             {"name": "Ana", "email": "ana@example.org", "wants_updates": "y"},
             {"action_signup", "subscribe_confirm"}),
    MailForm("sign-up change of details", "actions.manage_signup", _manage_path,
             {"name": "Ana Maria", "phone": "0123", "access_needs": "Step-free"},
             {"action_signup"}),
    MailForm("sign-up cancel (waitlist moves up)", "actions.manage_signup",
             lambda ctx: _manage_path(ctx, waiting=1), {"cancel": "1"},
             {"action_signup_cancelled", "action_place_offered"}),
    MailForm("organiser cancels a sign-up", "actions.cancel_signup_by_organiser",
             _organiser_cancels_signup, {}, {"action_signup_cancelled", "action_place_offered"}),
    MailForm("organiser adds places", "actions.edit_action",
             lambda ctx: _organiser_action(ctx, "/edit", capacity=1, signups=1, waiting=2),
             _edit_data, {"action_place_offered"}),
    MailForm("organiser cancels the action", "actions.cancel_action",
             lambda ctx: _organiser_action(ctx, "/cancel", signups=2), {}, {"action_cancelled"},
             has_links=False),
    MailForm("organiser emails attendees", "actions.email_attendees",
             lambda ctx: _organiser_action(ctx, "/email", signups=2),
             {"subject": "Bring a banner", "message": "See you **there**."}, {"action_message"},
             has_links=False),
    MailForm("mailing test send", "mailing.test_send", lambda ctx: _mailing(ctx, "test"), {},
             {"mailing_test"}),
    MailForm("mailing send now, confirmed", "mailing.confirm_send",
             lambda ctx: _mailing(ctx, "send-now"), {"expected": "1"}, {"mailing"}),
    MailForm("admin resets someone's two-factor", "admin.reset_two_factor", _admin_resets_2fa,
             {}, {"two_factor_reset"}, has_links=False),
    MailForm("data download link from an email", "mailing.my_data_link", _data_link_path, {},
             {"data_access_link"}),
]  # fmt: skip


@pytest.fixture
def ctx(app, isolated, monkeypatch) -> Ctx:
    monkeypatch.setitem(app.config, "BASE_URL", BASE_URL)
    return Ctx(app, ForgedHostClient(app, app.response_class, use_cookies=True))


def _texts(row: OutboxMessage) -> dict[str, str]:
    return {"subject": row.subject, "text_body": row.text_body, "html_body": row.html_body or "",
            "headers": json.dumps(row.headers), "calendar": row.calendar or "",
            "from": row.from_addr, "message_id": row.message_id}  # fmt: skip


@pytest.mark.parametrize("form", FORMS, ids=[f.name for f in FORMS])
def test_no_queued_mail_names_the_forged_host(ctx, form):
    hosts: list[str] = []

    def seen(sender: Flask, **_extra: object) -> None:
        hosts.append(request.host)

    with request_started.connected_to(seen, ctx.app):
        url = form.prepare(ctx)
        data = form.data(ctx) if callable(form.data) else form.data
        response = post(ctx.client, url, data)
    assert hosts and set(hosts) == {EVIL}  # every request really was for evil.example
    assert response.status_code in form.ok, response.get_data(as_text=True)[:800]
    assert ctx.app.view_functions[form.endpoint]  # the listed endpoint exists

    rows = list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    assert form.expect <= {row.template for row in rows}, [row.template for row in rows]
    for row in rows:
        for part, text in _texts(row).items():
            assert EVIL not in text, f"{row.template} {part}"
            for link in LINK_RE.findall(text):
                assert link.startswith(BASE_URL + "/"), f"{row.template} {part}: {link}"
    if form.has_links:  # the check above had something to check
        assert any(LINK_RE.search(row.text_body) for row in rows), "no link in the mail"


# --- every view that can queue mail is in FORMS -------------------------------------------------

MAIL_FUNCTIONS = {"queue_email", "queue_prepared"}


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
    return names


def _functions(path: Path) -> list[ast.FunctionDef]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]


def _is_view(function: ast.FunctionDef) -> bool:
    return any(
        isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "route"
        for d in function.decorator_list
    )


def views_that_queue_mail() -> set[tuple[str, str]]:
    """(module, view) for every route whose code reaches queue_email/queue_prepared.

    A name-level call graph of the package: a function that calls a mail function, or a
    function that does, sends mail. Coarse (names, not imports), so it errs on the side
    of listing a view, never of missing one.
    """
    calls: dict[str, set[str]] = {}
    views: dict[tuple[str, str], set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        module = ".".join(path.relative_to(SOURCE.parent).with_suffix("").parts)
        for function in _functions(path):
            called = _called_names(function)
            if _is_view(function):
                views[(module, function.name)] = called
            else:
                calls.setdefault(function.name, set()).update(called)
    senders = set(MAIL_FUNCTIONS)
    while True:
        more = {name for name, called in calls.items() if called & senders} - senders
        if not more:
            break
        senders |= more
    return {view for view, called in views.items() if called & senders}


def _view_of(app: Flask, endpoint: str) -> tuple[str, str]:
    view = inspect.unwrap(app.view_functions[endpoint])
    return view.__module__, view.__name__


def test_every_view_that_queues_mail_is_covered(app):
    covered = {_view_of(app, form.endpoint) for form in FORMS}
    found = views_that_queue_mail()
    assert found, "the source scan found no view at all"
    missing = found - covered
    assert not missing, f"add these views to FORMS in {Path(__file__).name}: {sorted(missing)}"


# --- pages and files meant to be shared -------------------------------------------------------


def test_shared_links_on_pages_and_calendars_ignore_the_forged_host(ctx):
    group = _organiser_group(ctx)
    action = _action(group)
    people = ctx.client.get(f"/g/{group.slug}/people").get_data(as_text=True)
    assert f"{BASE_URL}/g/{group.slug}/subscribe" in people  # the link to share
    one = ctx.client.get(f"/g/{group.slug}/actions/{action.id}/calendar.ics")
    feed = ctx.client.get(f"/g/{group.slug}/actions.ics")
    for response in (one, feed):
        assert response.status_code == 200
        body = response.get_data(as_text=True).replace("\r\n ", "")  # unfold long lines
        assert f"{BASE_URL}/g/{group.slug}/actions/{action.id}" in body
        assert "@campaign.example.org" in body  # the event's UID
    for body in (people, one.get_data(as_text=True), feed.get_data(as_text=True)):
        assert EVIL not in body
