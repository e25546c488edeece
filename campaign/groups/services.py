"""Group rules: applications, approval, membership, roles and invitations.

A group always keeps at least one organiser: every change that could remove the last
one is refused here, whichever view or command asks.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager

from campaign.accounts.models import User
from campaign.core import audit
from campaign.core.addresses import normalise_email
from campaign.core.links import external_url
from campaign.core.models import utcnow
from campaign.core.outbox import MailCategory, queue_email
from campaign.core.tokens import random_token, token_digest
from campaign.extensions import db
from campaign.groups.access import membership_of
from campaign.groups.models import Group, GroupStatus, Invitation, Membership, Role


class GroupError(Exception):
    """A group rule was broken; the message is safe to show."""


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:50].strip("-") or "group"


def _unique_slug(name: str) -> str:
    base = slugify(name)
    slug, n = base, 2
    while db.session.scalar(select(Group.id).where(Group.slug == slug)) is not None:
        slug = f"{base}-{n}"
        n += 1
    return slug


def groups_of(user: User) -> list[Membership]:
    """The user's memberships, for the navigation and home page."""
    return list(
        db.session.scalars(
            select(Membership)
            .join(Group)
            .options(contains_eager(Membership.group))
            .where(Membership.user_id == user.id, Group.status != GroupStatus.REJECTED)
            .order_by(Group.name)
        )
    )


def apply_for_group(
    user: User, *, name: str, area: str, description: str, contact_email: str
) -> Group:
    """A logged-in user applies; they become its first organiser, pending approval."""
    group = Group(
        slug=_unique_slug(name),
        name=name,
        area=area,
        description=description,
        contact_email=normalise_email(contact_email),
        status=GroupStatus.PENDING,
        applied_by_id=user.id,
    )
    db.session.add(group)
    db.session.flush()
    db.session.add(Membership(group_id=group.id, user_id=user.id, role=Role.ORGANISER))
    audit.record("group.applied", actor_id=user.id, group_id=group.id)
    for admin_email in db.session.scalars(select(User.email).where(User.is_admin.is_(True))):
        queue_email(
            admin_email,
            "group_applied",
            review_url=external_url("groups.admin_applications"),
        )
    db.session.flush()
    return group


def decide_application(admin: User, group: Group, *, approve: bool, note: str = "") -> Group:
    """Approve or reject a pending group and tell the applicant."""
    if group.status != GroupStatus.PENDING:
        raise GroupError(_l("This application has already been decided."))
    group.status = GroupStatus.APPROVED if approve else GroupStatus.REJECTED
    group.decided_by_id = admin.id
    group.decided_at = utcnow()
    group.decision_note = note or None
    audit.record(
        "group.approved" if approve else "group.rejected", actor_id=admin.id, group_id=group.id
    )
    applicant = db.session.get(User, group.applied_by_id) if group.applied_by_id else None
    if applicant is not None:
        queue_email(
            applicant.email,
            "group_approved" if approve else "group_rejected",
            group=group,
            note=note,
            group_url=external_url("groups.dashboard", slug=group.slug),
        )
    return group


def pending_applications() -> list[Group]:
    return list(
        db.session.scalars(
            select(Group).where(Group.status == GroupStatus.PENDING).order_by(Group.created_at)
        )
    )


def directory_query(search: str = "") -> sa.Select:
    """Approved groups matching a search on name or area, for the public directory."""
    query = select(Group).where(Group.status == GroupStatus.APPROVED)
    for word in search.split()[:5]:
        # autoescape: a % or _ typed in the search box matches itself, not everything.
        query = query.where(
            sa.or_(
                Group.name.icontains(word, autoescape=True),
                Group.area.icontains(word, autoescape=True),
            )
        )
    return query.order_by(Group.name)


def update_group(
    actor: User,
    group: Group,
    *,
    name: str,
    area: str,
    description: str,
    contact_email: str,
    require_caseworker_2fa: bool,
) -> Group:
    group.name = name
    group.area = area
    group.description = description
    group.contact_email = normalise_email(contact_email)
    if group.require_caseworker_2fa != require_caseworker_2fa:
        audit.record(
            "group.2fa_policy_changed",
            actor_id=actor.id,
            group_id=group.id,
            required=require_caseworker_2fa,
        )
    group.require_caseworker_2fa = require_caseworker_2fa
    return group


# --- members ------------------------------------------------------------------------------


def members_query(group: Group) -> sa.Select:
    return (
        select(Membership)
        .join(User, Membership.user_id == User.id)
        .where(Membership.group_id == group.id)
        .order_by(Membership.role.desc(), User.email)
    )


def get_membership(group: Group, membership_id: int) -> Membership | None:
    """A membership of this group only: ids from another group find nothing."""
    return db.session.scalar(
        select(Membership).where(Membership.id == membership_id, Membership.group_id == group.id)
    )


def _organiser_count(group: Group) -> int:
    return db.session.scalar(
        select(func.count(Membership.id)).where(
            Membership.group_id == group.id, Membership.role == Role.ORGANISER
        )
    )


def _guard_last_organiser(group: Group, membership: Membership) -> None:
    if membership.role == Role.ORGANISER and _organiser_count(group) <= 1:
        raise GroupError(
            _l("A group needs at least one organiser. Make someone else an organiser first.")
        )


def change_role(actor: User, group: Group, membership: Membership, role: Role) -> Membership:
    if role != Role.ORGANISER:
        _guard_last_organiser(group, membership)
    old = membership.role
    membership.role = role
    audit.record(
        "membership.role_changed",
        actor_id=actor.id,
        group_id=group.id,
        subject_user_id=membership.user_id,
        old=Role(old).name,
        new=role.name,
    )
    return membership


def remove_member(actor: User, group: Group, membership: Membership) -> None:
    _guard_last_organiser(group, membership)
    audit.record(
        "membership.removed" if actor.id != membership.user_id else "membership.left",
        actor_id=actor.id,
        group_id=group.id,
        subject_user_id=membership.user_id,
    )
    db.session.delete(membership)
    db.session.flush()


# --- invitations ----------------------------------------------------------------------------


def invite(actor: User, group: Group, email: str, role: Role) -> Invitation:
    """Email an invitation link. Re-inviting an address replaces its open invitation."""
    if not group.is_approved:
        raise GroupError(_l("You can invite people once the group has been approved."))
    email = normalise_email(email)
    existing_member = db.session.scalar(
        select(Membership.id)
        .join(User, Membership.user_id == User.id)
        .where(Membership.group_id == group.id, User.email == email)
    )
    if existing_member is not None:
        raise GroupError(_l("That person is already a member of this group."))
    now = utcnow()
    for open_invite in db.session.scalars(
        select(Invitation).where(
            Invitation.group_id == group.id,
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
    ):
        open_invite.revoked_at = now
    token = random_token()
    invitation = Invitation(
        group_id=group.id,
        email=email,
        role=role,
        token_digest=token_digest(token),
        invited_by_id=actor.id,
        expires_at=now + timedelta(days=current_app.config["INVITATION_DAYS"]),
    )
    db.session.add(invitation)
    db.session.flush()
    audit.record("invitation.sent", actor_id=actor.id, group_id=group.id, role=role.name)
    sent = queue_email(
        email,
        "invitation",
        category=MailCategory.STRANGER,
        group_id=group.id,
        group=group,
        role=role,
        accept_url=external_url("groups.invitation", token=token),
        days=current_app.config["INVITATION_DAYS"],
    )
    if sent is None:
        # Over the daily limit for this address: refuse, so the caller rolls back and the
        # earlier invitation (whose link the person has) stays valid.
        raise GroupError(
            _l("This address has had several emails from us today. Please try again tomorrow.")
        )
    return invitation


def open_invitations(group: Group) -> list[Invitation]:
    return list(
        db.session.scalars(
            select(Invitation)
            .where(
                Invitation.group_id == group.id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
            .order_by(Invitation.created_at.desc())
        )
    )


def get_invitation(group: Group, invitation_id: int) -> Invitation | None:
    return db.session.scalar(
        select(Invitation).where(Invitation.id == invitation_id, Invitation.group_id == group.id)
    )


def revoke_invitation(actor: User, invitation: Invitation) -> None:
    invitation.revoked_at = utcnow()
    audit.record("invitation.revoked", actor_id=actor.id, group_id=invitation.group_id)


class InvitationProblem(GroupError):
    pass


def find_invitation(token: str) -> Invitation:
    """The open invitation for a token, or an InvitationProblem saying why not."""
    invitation = db.session.scalar(
        select(Invitation).where(Invitation.token_digest == token_digest(token))
    )
    if invitation is None or invitation.revoked_at is not None:
        raise InvitationProblem(
            _l("This invitation is not valid. Ask the organiser for a new one.")
        )
    if invitation.accepted_at is not None:
        raise InvitationProblem(_l("This invitation has already been used."))
    if invitation.expires_at <= utcnow():
        raise InvitationProblem(_l("This invitation has expired. Ask the organiser for a new one."))
    return invitation


def accept_invitation(user: User, token: str) -> Membership:
    """Join the group; only the invited address may use the invitation."""
    invitation = find_invitation(token)
    if user.email != invitation.email:
        raise InvitationProblem(
            _l(
                "This invitation was sent to a different email address. Log in with that "
                "address, or ask the organiser to invite the address you use here."
            )
        )
    invitation.accepted_at = utcnow()
    if user.email_confirmed_at is None:
        # They followed a link sent to this address: that confirms it.
        user.email_confirmed_at = invitation.accepted_at
    membership = membership_of(user.id, invitation.group_id)
    if membership is None:
        membership = Membership(group_id=invitation.group_id, user_id=user.id, role=invitation.role)
        db.session.add(membership)
        db.session.flush()
    audit.record(
        "invitation.accepted",
        actor_id=user.id,
        group_id=invitation.group_id,
        subject_user_id=user.id,
        role=Role(membership.role).name,
    )
    return membership
