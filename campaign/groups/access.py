"""Authorisation for everything that belongs to a group, in one place.

Every group-scoped view starts with ``load_group(slug, role=...)``:
- a visitor who is not a member gets a 404 for anything that is not public, so the
  existence of private pages is not revealed;
- a member without the role gets a 403;
- a casework page (``role=Role.CASEWORKER``) in a group that requires two-factor gets
  a 403 until the user turns it on, whatever their role.
Platform admins get no special access to a group's people: they approve groups, they
do not read casework.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort
from flask_login import current_user
from sqlalchemy import select

from campaign.extensions import db
from campaign.groups.models import Group, GroupStatus, Membership, Role


@dataclass
class GroupAccess:
    group: Group
    membership: Membership

    @property
    def role(self) -> Role:
        return self.membership.role_enum

    @property
    def is_organiser(self) -> bool:
        return self.role >= Role.ORGANISER

    @property
    def is_volunteer(self) -> bool:
        """Volunteer or higher: may run door check-in where the organiser allows it."""
        return self.role >= Role.VOLUNTEER


def membership_of(user_id: int, group_id: int) -> Membership | None:
    return db.session.scalar(
        select(Membership).where(Membership.user_id == user_id, Membership.group_id == group_id)
    )


def find_group(slug: str) -> Group | None:
    return db.session.scalar(select(Group).where(Group.slug == slug))


def load_group(slug: str, role: Role = Role.MEMBER) -> GroupAccess:
    """The group and the current user's membership, or abort (404/403)."""
    group = find_group(slug)
    if group is None or not current_user.is_authenticated:
        abort(404)
    membership = membership_of(current_user.id, group.id)
    if membership is None:
        abort(404)
    if group.status == GroupStatus.REJECTED:
        abort(404)
    if membership.role < role:
        abort(403)
    if role == Role.CASEWORKER and group.require_caseworker_2fa and not current_user.totp_enabled:
        abort(403, description="two-factor-required")
    return GroupAccess(group=group, membership=membership)


def load_public_group(slug: str) -> Group:
    """An approved group for public pages; pending ones only for their members and admins."""
    group = find_group(slug)
    if group is None:
        abort(404)
    if group.status == GroupStatus.APPROVED:
        return group
    if current_user.is_authenticated and (
        current_user.is_admin or membership_of(current_user.id, group.id)
    ):
        return group
    abort(404)
