"""Inviting people by email, and accepting (or failing to accept) an invitation."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy import text as sql

from campaign.core.models import utcnow
from campaign.extensions import db
from campaign.groups.models import GroupStatus, Invitation, Role
from tests.conftest import links_in, login, mail_to, path_of, post
from tests.groups.helpers import audit_rows, client_for, membership, text

INVITEE = "new.person@example.org"


@pytest.fixture
def organised(app, make):
    organiser = make.user()
    group = make.group("Riverside Health Justice", organiser=organiser)
    return group, organiser, client_for(app, organiser)


def invitations_to(email: str) -> list[Invitation]:
    return list(
        db.session.scalars(
            select(Invitation).where(Invitation.email == email).order_by(Invitation.id)
        )
    )


def send_invite(client, group, email=INVITEE, role=Role.MEMBER):
    return post(
        client, f"/g/{group.slug}/members/invite", {"email": email, "role": str(role.value)}
    )


def invitation_path(email=INVITEE) -> str:
    """The accept link from the newest invitation mailed to ``email``."""
    mail = [m for m in mail_to(email) if m.template == "invitation"][-1]
    [link] = [link for link in links_in(mail) if "/invitations/" in link]
    return path_of(link)


# --- sending -------------------------------------------------------------------------------


def test_organiser_invites_someone(organised):
    group, organiser, client = organised

    response = send_invite(client, group, "New.Person@Example.org", Role.VOLUNTEER)

    assert response.status_code == 302
    assert response.location.endswith(f"/g/{group.slug}/members")
    [invitation] = invitations_to(INVITEE)
    assert invitation.group_id == group.id
    assert invitation.role == Role.VOLUNTEER
    assert invitation.invited_by_id == organiser.id
    assert invitation.accepted_at is None and invitation.revoked_at is None
    assert invitation.expires_at > utcnow() + timedelta(days=13)

    [mail] = mail_to(INVITEE)
    assert mail.template == "invitation"
    assert "Riverside Health Justice" in mail.text_body
    path = invitation_path()
    assert path.startswith("/invitations/")
    token = path.removeprefix("/invitations/")
    assert len(token) >= 32

    # Only a sha256 digest of the token is stored, nowhere the token itself.
    assert invitation.token_digest == hashlib.sha256(token.encode()).hexdigest()
    stored = db.session.execute(sql("SELECT * FROM invitations")).all()
    assert stored
    assert all(token not in str(value) for row in stored for value in row)
    assert len(audit_rows("invitation.sent", group.id)) == 1

    members_page = text(client.get(f"/g/{group.slug}/members"))
    assert INVITEE in members_page


def test_inviting_an_existing_member_is_422(organised, make):
    group, _organiser, client = organised
    existing = make.user("already@example.org")
    make.member(group, existing, Role.MEMBER)

    response = send_invite(client, group, "Already@Example.org")

    assert response.status_code == 422
    assert "That person is already a member of this group." in text(response)
    assert invitations_to("already@example.org") == []
    assert mail_to("already@example.org") == []


def test_inviting_from_a_pending_group_is_422(app, make):
    organiser = make.user()
    group = make.group(organiser=organiser, status=GroupStatus.PENDING)

    response = send_invite(client_for(app, organiser), group)

    assert response.status_code == 422
    assert "You can invite people once the group has been approved." in text(response)
    assert invitations_to(INVITEE) == []
    assert mail_to(INVITEE) == []


def test_an_invalid_address_is_422(organised):
    group, _organiser, client = organised
    response = send_invite(client, group, "not-an-address")
    assert response.status_code == 422
    assert "Enter an email address like name@example.org." in text(response)
    assert invitations_to("not-an-address") == []


def test_reinviting_revokes_the_earlier_invitation(organised, client, make):
    group, _organiser, organiser_client = organised
    send_invite(organiser_client, group, role=Role.MEMBER)
    first_path = invitation_path()
    send_invite(organiser_client, group, role=Role.CASEWORKER)
    second_path = invitation_path()
    assert first_path != second_path

    first, second = invitations_to(INVITEE)
    db.session.refresh(first)
    assert first.revoked_at is not None
    assert second.revoked_at is None
    assert second.role == Role.CASEWORKER

    assert client.get(first_path).status_code == 400
    invitee = make.user(INVITEE)
    login(client, invitee)
    assert post(client, first_path).status_code == 400
    assert membership(group, invitee) is None
    assert post(client, second_path).status_code == 302
    assert membership(group, invitee).role == Role.CASEWORKER


# --- accepting -----------------------------------------------------------------------------


def test_opening_the_link_shows_the_invitation_and_changes_nothing(organised, client):
    group, _organiser, organiser_client = organised
    send_invite(organiser_client, group, role=Role.VOLUNTEER)
    path = invitation_path()

    response = client.get(path)

    assert response.status_code == 200
    body = text(response)
    assert "Join Riverside Health Justice" in body
    assert "as a volunteer" in body
    [invitation] = invitations_to(INVITEE)
    db.session.refresh(invitation)
    assert invitation.accepted_at is None
    assert audit_rows("invitation.accepted") == []


def test_opening_the_link_while_logged_in_as_the_invitee_does_not_join(app, organised, make):
    group, _organiser, organiser_client = organised
    send_invite(organiser_client, group)
    invitee = make.user(INVITEE)
    response = client_for(app, invitee).get(invitation_path())
    assert response.status_code == 200
    assert "Join the group" in text(response)
    assert membership(group, invitee) is None


def test_accepting_while_anonymous_redirects_to_login(organised, client):
    group, _organiser, organiser_client = organised
    send_invite(organiser_client, group)
    path = invitation_path()

    response = post(client, path)

    assert response.status_code == 302
    assert "/login" in response.location
    assert f"next={path}" in response.location.replace("%2F", "/")
    [invitation] = invitations_to(INVITEE)
    db.session.refresh(invitation)
    assert invitation.accepted_at is None


def test_accepting_as_someone_else_is_403(app, organised, make):
    group, _organiser, organiser_client = organised
    send_invite(organiser_client, group)
    other = make.user("someone.else@example.org")

    response = post(client_for(app, other), invitation_path())

    assert response.status_code == 403
    assert "sent to a different email address" in text(response)
    assert membership(group, other) is None
    [invitation] = invitations_to(INVITEE)
    db.session.refresh(invitation)
    assert invitation.accepted_at is None


def test_the_invitee_accepts(app, organised, make):
    group, _organiser, organiser_client = organised
    send_invite(organiser_client, group, role=Role.VOLUNTEER)
    invitee = make.user(INVITEE, confirmed=False)
    client = client_for(app, invitee)

    response = post(client, invitation_path())

    assert response.status_code == 302
    assert response.location.endswith(f"/g/{group.slug}/dashboard")
    joined = membership(group, invitee)
    assert joined is not None
    assert joined.role == Role.VOLUNTEER
    [invitation] = invitations_to(INVITEE)
    db.session.refresh(invitation)
    assert invitation.accepted_at is not None
    db.session.refresh(invitee)
    assert invitee.email_confirmed_at is not None
    [event] = audit_rows("invitation.accepted", group.id)
    assert event.subject_user_id == invitee.id
    assert client.get(f"/g/{group.slug}/dashboard").status_code == 200


def test_a_used_link_cannot_be_used_again(app, organised, make):
    group, _organiser, organiser_client = organised
    send_invite(organiser_client, group)
    path = invitation_path()
    client = client_for(app, make.user(INVITEE))
    assert post(client, path).status_code == 302

    for response in (client.get(path), post(client, path)):
        assert response.status_code == 400
        assert "This invitation has already been used." in text(response)
    assert len(audit_rows("invitation.accepted", group.id)) == 1


def test_a_revoked_invitation_is_400(app, organised, make):
    group, _organiser, organiser_client = organised
    send_invite(organiser_client, group)
    path = invitation_path()
    [invitation] = invitations_to(INVITEE)

    revoke = post(organiser_client, f"/g/{group.slug}/invitations/{invitation.id}/revoke")
    assert revoke.status_code == 302
    db.session.refresh(invitation)
    assert invitation.revoked_at is not None

    invitee = make.user(INVITEE)
    client = client_for(app, invitee)
    for response in (client.get(path), post(client, path)):
        assert response.status_code == 400
        assert "This invitation is not valid." in text(response)
    assert membership(group, invitee) is None


def test_an_expired_invitation_is_400(app, organised, make):
    group, _organiser, organiser_client = organised
    send_invite(organiser_client, group)
    path = invitation_path()
    [invitation] = invitations_to(INVITEE)
    invitation.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()

    invitee = make.user(INVITEE)
    client = client_for(app, invitee)
    for response in (client.get(path), post(client, path)):
        assert response.status_code == 400
        assert "This invitation has expired." in text(response)
    assert membership(group, invitee) is None


def test_an_unknown_token_is_400(client):
    response = client.get("/invitations/not-a-real-token")
    assert response.status_code == 400
    assert "This invitation is not valid." in text(response)


def test_invitation_ids_from_another_group_are_404(organised, make):
    group, _organiser, organiser_client = organised
    other_organiser = make.user()
    other_group = make.group(organiser=other_organiser)
    other_client = client_for(organiser_client.application, other_organiser)
    send_invite(other_client, other_group)
    [foreign] = invitations_to(INVITEE)

    response = post(organiser_client, f"/g/{group.slug}/invitations/{foreign.id}/revoke")

    assert response.status_code == 404
    db.session.refresh(foreign)
    assert foreign.revoked_at is None
    assert audit_rows("invitation.revoked") == []
