"""Bad input on every form: a clear message and a 4xx, never a 500.

Each form is described once (how to reach it, valid data, which fields are text,
email or choice fields); the attacks are generated from that description.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign.accounts import services as account_services
from campaign.actions import models as action_models
from campaign.core.models import utcnow
from campaign.core.tokens import fingerprint, make_token
from campaign.extensions import db
from campaign.groups.models import GroupStatus, Role
from campaign.mailing.models import Mailing
from campaign.people import services as people_services
from campaign.people.models import Supporter
from tests import factories
from tests.conftest import csrf_token, login

SCRIPT = "<script>alert('x')</script>"
HUGE = "x" * 20_000


@dataclass
class FormCase:
    name: str
    valid: dict[str, str]
    required: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)  # short plain text: no markup allowed
    emails: list[str] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    checkboxes: list[str] = field(default_factory=list)  # any value means ticked
    long_text: list[str] = field(default_factory=list)  # limit above HUGE: sent 3 × HUGE


def _prepare(case: str, client, app) -> str:
    """Log in as needed and return the form's URL."""
    user = factories.user()
    if case == "register":
        return "/register"
    if case == "login":
        return "/login"
    if case == "forgot":
        return "/forgot-password"
    if case == "mailing_preferences":
        reader, _ = people_services.upsert_supporter(factories.group(), "reader@example.org")
        return f"/unsubscribe/{people_services.unsubscribe_token(reader)}/preferences"
    if case == "reset":
        with app.test_request_context():
            token = make_token("reset", {"u": user.id, "f": fingerprint(user.password_hash)})
        return f"/reset-password/{token}"
    if case == "two_factor_login":
        with app.test_request_context():
            account_services.begin_totp_setup(user)
        user.totp_enabled = True
        db.session.flush()
        with client.session_transaction() as session:
            session["2fa_user"] = user.id
            session["2fa_until"] = time.time() + 300
        return "/login/two-factor"
    login(client, user)
    if case == "change_password":
        return "/account/password"
    if case == "change_email":
        return "/account/email"
    if case == "setup_two_factor":
        client.get("/account/two-factor")
        return "/account/two-factor"
    if case == "disable_two_factor":
        with app.test_request_context():
            account_services.begin_totp_setup(user)
        user.totp_enabled = True
        db.session.flush()
        return "/account/two-factor/disable"
    if case == "recovery_codes":
        with app.test_request_context():
            account_services.begin_totp_setup(user)
        user.totp_enabled = True
        db.session.flush()
        return "/account/two-factor/recovery-codes"
    if case == "apply":
        return "/groups/apply"
    if case == "subscribe":
        client.post("/logout", data={"csrf_token": csrf_token(client)})
        return f"/g/{factories.group().slug}/subscribe"
    group = factories.group(organiser=user)
    if case == "group_settings":
        return f"/g/{group.slug}/settings"
    if case == "invite":
        return f"/g/{group.slug}/members/invite"
    if case == "change_role":
        other = factories.member(group, factories.user(), Role.MEMBER)
        return f"/g/{group.slug}/members/{other.id}/role"
    if case == "new_supporter":
        return f"/g/{group.slug}/people/new"
    if case == "import_upload":
        return f"/g/{group.slug}/people/import"
    if case == "import_map":
        data = {
            "csrf_token": csrf_token(client),
            "file": (io.BytesIO(b"Email\na@example.org\n"), "a.csv"),
        }
        upload = client.post(f"/g/{group.slug}/people/import", data=data,
                             content_type="multipart/form-data")  # fmt: skip
        return upload.headers["Location"]
    if case == "edit_supporter":
        supporter, _ = people_services.upsert_supporter(group, "before@example.org")
        return f"/g/{group.slug}/people/{supporter.id}"
    if case == "merge_supporters":
        # The form names the supporter to merge into by id: a fixed one, so FORMS can say it.
        db.session.add(Supporter(id=MERGE_TARGET_ID, group_id=group.id, email="keep@example.org"))
        people_services.upsert_supporter(group, "twin@example.org")
        return f"/g/{group.slug}/people/merge"
    if case == "compose_mailing":
        return f"/g/{group.slug}/mailings/new"
    if case == "confirm_send":
        draft = Mailing(group_id=group.id, subject="Draft", body_markdown="Hello",
                        segment={"kind": "subscribers"})  # fmt: skip
        db.session.add(draft)
        db.session.add(
            Supporter(
                group_id=group.id,
                email="fan@example.org",
                updates_status="subscribed",
                updates_confirmed_at=utcnow(),
            )
        )
        db.session.flush()
        return f"/g/{group.slug}/mailings/{draft.id}/send-now"
    if case in ("edit_mailing", "send_mailing"):
        draft = Mailing(group_id=group.id, subject="Draft", body_markdown="Hello",
                        segment={"kind": "subscribers"})  # fmt: skip
        db.session.add(draft)
        db.session.flush()
        suffix = "/send" if case == "send_mailing" else ""
        return f"/g/{group.slug}/mailings/{draft.id}{suffix}"
    if case in ("new_action", "edit_action", "add_walk_in", "email_attendees"):
        if case == "new_action":
            return f"/g/{group.slug}/manage/actions/new"
        action = action_models.Action(
            group_id=group.id, title="Rally", status=action_models.ActionStatus.PUBLISHED,
            starts_at=datetime.now(UTC) + timedelta(days=30),
            ends_at=datetime.now(UTC) + timedelta(days=30, hours=2), place_name="Hall",
        )  # fmt: skip
        db.session.add(action)
        db.session.flush()
        suffix = {"edit_action": "/edit", "add_walk_in": "/check-in/walk-in",
                  "email_attendees": "/email"}[case]  # fmt: skip
        return f"/g/{group.slug}/manage/actions/{action.id}{suffix}"
    if case == "decide":
        user.is_admin = True
        pending = factories.group(status=GroupStatus.PENDING)
        db.session.flush()
        return f"/admin/groups/{pending.id}/decide"
    if case in ("action_signup", "manage_signup"):
        group = factories.group()
        starts = datetime.now(UTC) + timedelta(days=5)
        action = action_models.Action(
            group_id=group.id, title="Stall", status=action_models.ActionStatus.PUBLISHED,
            starts_at=starts, ends_at=starts + timedelta(hours=1), capacity=50,
        )  # fmt: skip
        db.session.add(action)
        db.session.flush()
        if case == "action_signup":
            return f"/g/{group.slug}/actions/{action.id}"
        signup = action_models.ActionSignup(
            action_id=action.id, group_id=group.id, email="s@example.org", name="Ana", version=0
        )
        db.session.add(signup)
        db.session.flush()
        with app.test_request_context():
            token = make_token("signup", {"s": signup.id, "v": signup.version})
        return f"/signup/{token}"
    raise AssertionError(case)


NEW_PASSWORD = "a new long password"
MERGE_TARGET_ID = 990_001
SUPPORTER = {"first_name": "Ana", "last_name": "Silva", "email": "ana@example.org",
             "phone": "+44 7700 900123", "postcode": "E1 6AN", "tags": "nurses, stall",
             "agreed_in_person": "y"}  # fmt: skip
MAILING = {"subject": "Rally on Saturday", "body": "Hello {{first_name}}, see you there.",
           "segment": "subscribers"}  # fmt: skip
IN_A_MONTH = (datetime.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
IN_A_MONTH_DAY = (datetime.now() + timedelta(days=30)).strftime("%Y-%m-%d")
ACTION = {"title": "Save our A&E", "kind": "protest", "description": "Meet at the front.",
          "start_date": IN_A_MONTH_DAY, "start_time": "12:00", "end_date": IN_A_MONTH_DAY,
          "end_time": "14:00", "place_name": "Riverside Hospital", "address": "1 River Road",
          "area": "Riverside", "accessibility": "Step-free.", "capacity": "20",
          "reminder_hours": "24", "place_public": "y"}  # fmt: skip
ACTION_CASE = {"required": ["title", "start_date", "start_time", "end_date", "end_time",
                            "reminder_hours", "place_name"],
               "text": ["title", "place_name", "address", "area"], "choices": ["kind"],
               "checkboxes": ["place_public"], "long_text": ["description"]}  # fmt: skip
FORMS = [
    FormCase(
        "register",
        {"display_name": "Ana", "email": "new@example.org", "password": NEW_PASSWORD,
         "password_again": NEW_PASSWORD},
        required=["email", "password", "password_again"], text=["display_name"], emails=["email"],
    ),
    FormCase("login", {"email": "a@example.org", "password": "whatever"},
             required=["email", "password"], emails=["email"]),
    FormCase("forgot", {"email": "a@example.org"}, required=["email"], emails=["email"]),
    FormCase("reset", {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
             required=["password", "password_again"]),
    FormCase("two_factor_login", {"code": "123456"}, required=["code"]),
    FormCase(
        "change_password",
        {"current_password": factories.PASSWORD, "new_password": NEW_PASSWORD,
         "new_password_again": NEW_PASSWORD},
        required=["current_password", "new_password", "new_password_again"],
    ),
    FormCase("change_email", {"new_email": "other@example.org", "password": factories.PASSWORD},
             required=["new_email", "password"], emails=["new_email"]),
    FormCase("setup_two_factor", {"code": "123456"}, required=["code"]),
    FormCase("disable_two_factor", {"password": factories.PASSWORD}, required=["password"]),
    FormCase("recovery_codes", {"rc-password": factories.PASSWORD}, required=["rc-password"]),
    FormCase(
        "apply",
        {"name": "Hillside Care", "area": "Hillside", "description": "We meet weekly.",
         "contact_email": "hillside@example.org"},
        required=["name", "area", "description", "contact_email"], text=["name", "area"],
        emails=["contact_email"],
    ),
    FormCase(
        "group_settings",
        {"name": "Hillside Care", "area": "Hillside", "description": "We meet weekly.",
         "contact_email": "hillside@example.org"},
        required=["name", "area", "description", "contact_email"], text=["name", "area"],
        emails=["contact_email"],
    ),
    FormCase("invite", {"email": "friend@example.org", "role": "10"}, required=["email"],
             emails=["email"], choices=["role"]),
    FormCase("change_role", {"role": "20"}, required=["role"], choices=["role"]),
    FormCase("subscribe", {"first_name": "Ana", "email": "ana@example.org", "consent": "y"},
             required=["email", "consent"], text=["first_name"], emails=["email"],
             checkboxes=["consent"]),
    FormCase("decide", {"decision": "reject", "note": "Please tell us more."},
             text=["note"], choices=["decision"]),
    FormCase("compose_mailing", MAILING, required=["subject", "body"], text=["subject"],
             choices=["segment"], long_text=["body"]),
    FormCase("edit_mailing", MAILING, required=["subject", "body"], text=["subject"],
             choices=["segment"], long_text=["body"]),
    FormCase("send_mailing", {"when": "later", "send_at": IN_A_MONTH}, required=["when"],
             choices=["when"]),
    FormCase("confirm_send", {"expected": "1"}, required=["expected"], choices=["expected"]),
    FormCase("mailing_preferences", {"scope": "group"}, required=["scope"], choices=["scope"]),
    FormCase("new_supporter", SUPPORTER, required=["email"], emails=["email"],
             text=["first_name", "last_name", "phone", "postcode", "tags"],
             checkboxes=["agreed_in_person"]),
    FormCase("edit_supporter", SUPPORTER, required=["email"], emails=["email"],
             text=["first_name", "last_name", "phone", "postcode", "tags"],
             checkboxes=["agreed_in_person"]),
    FormCase("merge_supporters",
             {"target_id": str(MERGE_TARGET_ID), "other_email": "twin@example.org"},
             required=["target_id", "other_email"], emails=["other_email"]),
    FormCase("import_upload", {"file": "not a file upload"}, required=["file"]),
    FormCase("import_map", {"column-0": "email", "agreed": "y", "statement": "Paper sheet, May"},
             text=["statement"], choices=["column-0"], checkboxes=["agreed"]),
    FormCase("action_signup",
             {"name": "Ana", "email": "ana@example.org", "phone": "0770 900 123",
              "access_needs": "Step-free", "wants_updates": "y"},
             required=["name", "email"], text=["name", "phone"], emails=["email"],
             checkboxes=["wants_updates"]),
    FormCase("manage_signup", {"name": "Ana", "phone": "0770 900 123", "access_needs": ""},
             required=["name"], text=["name", "phone"]),
    FormCase("new_action", ACTION, **ACTION_CASE),
    FormCase("edit_action", ACTION, **ACTION_CASE),
    FormCase("add_walk_in", {"name": "Dee", "email": "dee@example.org"}, required=["name"],
             text=["name"], emails=["email"]),
    FormCase("email_attendees", {"subject": "Bring a banner", "message": "See you there."},
             required=["subject", "message"], text=["subject"], long_text=["message"]),
]  # fmt: skip


def _attacks(case: FormCase):
    for name in case.required:
        yield f"{name}-empty", {name: ""}
    for name in case.valid:
        if name not in case.choices and name not in case.checkboxes:
            yield f"{name}-huge", {name: HUGE * 3 if name in case.long_text else HUGE}
    for name in case.text:
        yield f"{name}-script", {name: SCRIPT}
    for name in case.emails:
        yield f"{name}-invalid", {name: "not an email"}
        yield f"{name}-script", {name: f"{SCRIPT}@example.org"}
    for name in case.choices:
        yield f"{name}-wrong-type", {name: "abc"}
        yield f"{name}-unknown", {name: "999"}


CASES = [
    pytest.param(case, attack, id=f"{case.name}:{label}")
    for case in FORMS
    for label, attack in _attacks(case)
]


def _assert_refused_clearly(response) -> None:
    body = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, response.status_code
    assert 'class="error' in body or "error-summary" in body or "flash-error" in body
    assert SCRIPT not in body  # never echoed unescaped


@pytest.mark.parametrize(("case", "attack"), CASES)
def test_bad_input_gets_a_clear_4xx(case: FormCase, attack: dict, app, client, make):
    url = _prepare(case.name, client, app)
    data = case.valid | attack | {"csrf_token": csrf_token(client)}
    _assert_refused_clearly(client.post(url, data=data))


@pytest.mark.parametrize("case", FORMS, ids=[c.name for c in FORMS])
def test_wrong_or_missing_csrf_token_is_refused(case: FormCase, app, client, make):
    url = _prepare(case.name, client, app)
    for token in ("forged-token", None):
        data = dict(case.valid)
        if token:
            data["csrf_token"] = token
        response = client.post(url, data=data)
        assert response.status_code == 400
        assert "The form had expired or was not sent from this site" in response.get_data(
            as_text=True
        )


def test_the_attack_list_covers_every_form_with_fields(app):
    """A new form view must be added to FORMS above."""
    with app.test_request_context():
        form_endpoints = {
            rule.endpoint for rule in app.url_map.iter_rules() if "POST" in rule.methods
        }
    # One-button forms carry no fields to attack; their CSRF check is tested elsewhere.
    buttons = {
        "accounts.confirm_email", "accounts.resend_confirmation", "accounts.logout",
        "accounts.confirm_email_change", "accounts.logout_everywhere",
        "accounts.logout_other_devices", "admin.reset_two_factor",
        "groups.remove_member", "groups.revoke_invitation", "groups.leave", "groups.invitation",
        "people.confirm_subscription",
        "people.unsubscribe_supporter", "people.erase_supporter",
        "mailing.test_send", "mailing.unschedule", "mailing.delete", "mailing.unsubscribe",
        "mailing.my_data_link", "mailing.download_my_data", "mailing.erase_me",
        "actions.publish_action", "actions.cancel_action", "actions.cancel_signup_by_organiser",
        "actions.mark_attended",
    }  # fmt: skip
    covered = {
        "accounts.register", "accounts.login", "accounts.forgot_password",
        "accounts.reset_password", "accounts.two_factor", "accounts.change_password",
        "accounts.change_email", "accounts.setup_two_factor", "accounts.disable_two_factor",
        "accounts.regenerate_recovery_codes",
        "groups.apply", "groups.settings", "groups.invite", "groups.change_role",
        "groups.admin_decide", "people.subscribe",
        "people.new_supporter", "people.supporter", "people.merge_supporters",
        "people.import_upload", "people.import_map",
        "mailing.new", "mailing.mailing", "mailing.send", "mailing.preferences",
        "mailing.confirm_send",
        "actions.public_action", "actions.manage_signup",
        "actions.new_action", "actions.edit_action", "actions.add_walk_in",
        "actions.email_attendees",
    }  # fmt: skip
    assert form_endpoints == buttons | covered
    assert len(FORMS) == len(covered)


def test_directory_search_too_long_is_a_clear_400(client, make):
    response = client.get("/groups", query_string={"q": "y" * 500})
    assert response.status_code == 400
    assert "under 100 characters" in response.get_data(as_text=True)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(max_size=300),
    area=st.text(max_size=300),
    email=st.text(max_size=300),
    description=st.text(max_size=6000),
)
def test_group_application_never_fails_with_a_500(
    app, client, make, name, area, email, description
):
    """Whatever arrives in the application form, the answer is a page, not a crash."""
    if not getattr(client, "_logged_in", False):
        login(client, factories.user())
        client._logged_in = True
    response = client.post(
        "/groups/apply",
        data={"name": name, "area": area, "description": description, "contact_email": email,
              "csrf_token": csrf_token(client)},
    )  # fmt: skip
    assert response.status_code in (302, 422), response.status_code


def test_totp_codes_with_letters_are_refused(app, client, make):
    user = make.user()
    login(client, user)
    client.get("/account/two-factor")
    db.session.refresh(user)
    with app.test_request_context():
        secret = account_services.totp_secret_for_display(user)
    code = pyotp.TOTP(secret).now()
    response = client.post(
        "/account/two-factor",
        data={"code": code[:3] + "abc", "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 422
    assert not db.session.get(type(user), user.id).totp_enabled
