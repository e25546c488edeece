"""Applying to register a group, and the platform admins' decision on it."""

from __future__ import annotations

from sqlalchemy import func, select

from campaign.extensions import db
from campaign.groups.models import Group, GroupStatus, Role
from tests.conftest import links_in, login, mail_to, path_of, post
from tests.groups.helpers import audit_rows, client_for, membership, pending_group, text

APPLICATION = {
    "name": "Riverside Health Justice",
    "area": "Riverside",
    "description": "We campaign against *NHS charging*.",
    "contact_email": "Contact@Riverside.example.org",
}


def group_count() -> int:
    return db.session.scalar(select(func.count(Group.id)))


def groups_named(name: str) -> list[Group]:
    return list(db.session.scalars(select(Group).where(Group.name == name).order_by(Group.id)))


# --- applying ------------------------------------------------------------------------------


def test_anonymous_visitor_is_sent_to_login(client):
    response = client.get("/groups/apply")
    assert response.status_code == 302
    assert "/login" in response.location
    assert "next=/groups/apply" in response.location


def test_unconfirmed_user_is_redirected_with_a_message(client, make):
    user = make.user(confirmed=False)
    login(client, user)

    response = client.get("/groups/apply")
    assert response.status_code == 302
    assert response.location.endswith("/account")

    page = client.get("/account")
    assert "Please confirm your email address first" in text(page)


def test_unconfirmed_user_cannot_apply_by_posting(client, make):
    user = make.user(confirmed=False)
    login(client, user)
    before = group_count()

    response = post(client, "/groups/apply", APPLICATION)

    assert response.status_code == 302
    assert response.location.endswith("/account")
    assert group_count() == before


def test_confirmed_user_sees_the_form(client, make):
    login(client, make.user())
    response = client.get("/groups/apply")
    assert response.status_code == 200
    assert 'name="contact_email"' in text(response)


def test_application_creates_a_pending_group_with_its_applicant_as_organiser(client, make):
    admins = [make.user(admin=True), make.user(admin=True)]
    applicant = make.user()
    login(client, applicant)

    response = post(client, "/groups/apply", APPLICATION)

    assert response.status_code == 302
    [group] = groups_named("Riverside Health Justice")
    assert response.location.endswith(f"/g/{group.slug}/dashboard")
    assert group.slug == "riverside-health-justice"
    assert group.status == GroupStatus.PENDING
    assert group.area == "Riverside"
    assert group.description == "We campaign against *NHS charging*."
    assert group.contact_email == "contact@riverside.example.org"
    assert group.applied_by_id == applicant.id
    assert membership(group, applicant).role == Role.ORGANISER

    [event] = audit_rows("group.applied", group.id)
    assert event.actor_id == applicant.id

    for admin in admins:
        [mail] = mail_to(admin.email)
        assert mail.template == "group_applied"
        assert any(path_of(link) == "/admin/groups" for link in links_in(mail))
    assert mail_to(applicant.email) == []


def test_the_applicant_sees_a_thank_you_on_the_dashboard(client, make):
    login(client, make.user())
    response = post(client, "/groups/apply", APPLICATION, follow_redirects=True)
    assert response.status_code == 200
    assert "Your application is with the platform team" in text(response)


def test_two_groups_with_the_same_name_get_different_slugs(client, make):
    login(client, make.user())
    post(client, "/groups/apply", APPLICATION)
    post(client, "/groups/apply", APPLICATION)

    groups = groups_named("Riverside Health Justice")
    assert len(groups) == 2
    assert groups[0].slug != groups[1].slug
    assert [g.slug for g in groups] == ["riverside-health-justice", "riverside-health-justice-2"]


def test_invalid_application_is_refused_with_422(client, make):
    login(client, make.user())
    before = group_count()

    response = post(
        client, "/groups/apply", {**APPLICATION, "name": "<b>Bold</b>", "contact_email": "nope"}
    )

    assert response.status_code == 422
    body = text(response)
    assert "Please remove the" in body
    assert "Enter an email address like name@example.org." in body
    assert group_count() == before


# --- visibility of a pending group ---------------------------------------------------------


def test_pending_group_is_not_in_the_directory(client, make):
    group = pending_group(make.user(), "Hidden Pending Group")
    response = client.get("/groups")
    assert response.status_code == 200
    assert group.name not in text(response)
    assert group.name not in text(client.get("/groups?q=Hidden"))


def test_pending_group_page_is_404_for_anonymous_and_other_users(app, client, make):
    group = pending_group(make.user(), "Hidden Pending Group")
    assert client.get(f"/g/{group.slug}").status_code == 404

    stranger = client_for(app, make.user())
    assert stranger.get(f"/g/{group.slug}").status_code == 404


def test_pending_group_page_is_visible_to_members_and_admins(app, make):
    organiser = make.user()
    group = pending_group(organiser, "Hidden Pending Group")
    plain_member = make.user()
    make.member(group, plain_member, Role.MEMBER)

    for user in (organiser, plain_member, make.user(admin=True)):
        response = client_for(app, user).get(f"/g/{group.slug}")
        assert response.status_code == 200, user.email
        assert "Hidden Pending Group" in text(response)
        assert "waiting for approval" in text(response)


# --- the admin page ------------------------------------------------------------------------


def test_admin_page_redirects_anonymous_visitors_to_login(client):
    response = client.get("/admin/groups")
    assert response.status_code == 302
    assert "/login" in response.location


def test_admin_page_is_404_for_non_admins(app, make):
    organiser = make.user()
    pending_group(organiser)
    assert client_for(app, organiser).get("/admin/groups").status_code == 404


def test_admin_page_lists_pending_applications_only(app, make):
    pending = pending_group(make.user(), "Waiting Group")
    make.group("Already Approved Group")
    response = client_for(app, make.user(admin=True)).get("/admin/groups")
    assert response.status_code == 200
    assert pending.name in text(response)
    assert f"/admin/groups/{pending.id}/decide" in text(response)
    assert "Already Approved Group" not in text(response)


def test_non_admin_cannot_decide(app, make):
    applicant = make.user()
    group = pending_group(applicant)
    response = post(
        client_for(app, applicant), f"/admin/groups/{group.id}/decide", {"decision": "approve"}
    )
    assert response.status_code == 404
    db.session.refresh(group)
    assert group.status == GroupStatus.PENDING
    assert audit_rows("group.approved", group.id) == []


def test_admin_approves_a_group(app, make):
    applicant = make.user()
    admin = make.user(admin=True)
    group = pending_group(applicant, "Northbridge Patients Not Passports")
    admin_client = client_for(app, admin)

    response = post(admin_client, f"/admin/groups/{group.id}/decide", {"decision": "approve"})

    assert response.status_code == 302
    assert response.location.endswith("/admin/groups")
    db.session.refresh(group)
    assert group.status == GroupStatus.APPROVED
    assert group.decided_by_id == admin.id
    assert group.decided_at is not None
    [event] = audit_rows("group.approved", group.id)
    assert event.actor_id == admin.id

    [mail] = mail_to(applicant.email)
    assert mail.template == "group_approved"
    assert "Northbridge Patients Not Passports" in mail.text_body
    assert any(f"/g/{group.slug}" in path_of(link) for link in links_in(mail))

    assert "Northbridge Patients Not Passports approved." in text(admin_client.get("/admin/groups"))
    # Now public.
    anonymous = app.test_client()
    assert anonymous.get(f"/g/{group.slug}").status_code == 200
    assert group.name in text(anonymous.get("/groups"))


def test_rejecting_without_a_note_is_422(app, make):
    applicant = make.user()
    group = pending_group(applicant)

    response = post(
        client_for(app, make.user(admin=True)),
        f"/admin/groups/{group.id}/decide",
        {"decision": "reject", "note": "   "},
    )

    assert response.status_code == 422
    assert "Tell the applicant why, so they can apply again." in text(response)
    db.session.refresh(group)
    assert group.status == GroupStatus.PENDING
    assert mail_to(applicant.email) == []
    assert audit_rows("group.rejected", group.id) == []


def test_rejecting_with_a_note_tells_the_applicant_why(app, make):
    applicant = make.user()
    group = pending_group(applicant)
    note = "Please give a contact address the group shares."

    response = post(
        client_for(app, make.user(admin=True)),
        f"/admin/groups/{group.id}/decide",
        {"decision": "reject", "note": note},
    )

    assert response.status_code == 302
    db.session.refresh(group)
    assert group.status == GroupStatus.REJECTED
    assert group.decision_note == note
    assert len(audit_rows("group.rejected", group.id)) == 1
    [mail] = mail_to(applicant.email)
    assert mail.template == "group_rejected"
    assert note in mail.text_body
    assert app.test_client().get(f"/g/{group.slug}").status_code == 404
    assert group.name not in text(app.test_client().get("/groups"))


def test_deciding_twice_is_refused_and_sends_no_second_mail(app, make):
    applicant = make.user()
    group = pending_group(applicant)
    admin_client = client_for(app, make.user(admin=True))
    url = f"/admin/groups/{group.id}/decide"
    post(admin_client, url, {"decision": "approve"})

    response = post(admin_client, url, {"decision": "reject", "note": "Changed my mind"})

    assert response.status_code == 302
    assert "This application has already been decided." in text(admin_client.get("/admin/groups"))
    db.session.refresh(group)
    assert group.status == GroupStatus.APPROVED
    assert [m.template for m in mail_to(applicant.email)] == ["group_approved"]
    assert audit_rows("group.rejected", group.id) == []


def test_a_bad_decision_value_is_422(app, make):
    applicant = make.user()
    group = pending_group(applicant)

    response = post(
        client_for(app, make.user(admin=True)),
        f"/admin/groups/{group.id}/decide",
        {"decision": "maybe"},
    )

    assert response.status_code == 422
    assert "Choose approve or reject." in text(response)
    db.session.refresh(group)
    assert group.status == GroupStatus.PENDING
    assert mail_to(applicant.email) == []


def test_deciding_an_unknown_group_is_404(app, make):
    response = post(
        client_for(app, make.user(admin=True)),
        "/admin/groups/999999/decide",
        {"decision": "approve"},
    )
    assert response.status_code == 404
