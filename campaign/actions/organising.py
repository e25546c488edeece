"""Organisers' rules for actions: create, edit, publish, the sign-up list, check-in on
the day, walk-ins and a message to the people coming.

Every function takes the group and touches only its rows. Services flush, views commit.

Walk-ins: a person who turns up without signing up may have no email address, but a
sign-up row needs a unique one per action. A walk-in without an address is stored as
``walk-in-<random hex>@walk-in.invalid`` (the ``.invalid`` top-level domain can never
be delivered, RFC 2606). Addresses ending in ``@walk-in.invalid`` are never mailed:
``is_placeholder_email()`` says which, and every sender here skips them; they are shown
to organisers as "no email".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from campaign.accounts.models import User
from campaign.actions import services
from campaign.actions.models import WALK_IN_DOMAIN, Action, ActionSignup, ActionStatus, SignupStatus
from campaign.core import audit
from campaign.core.addresses import normalise_email
from campaign.core.models import utcnow
from campaign.core.outbox import MailCategory, queue_email
from campaign.core.text import markdown_to_text, render_markdown
from campaign.extensions import db
from campaign.groups.models import Group
from campaign.people.services import blocks_service_mail

ActionError = services.ActionError


def is_placeholder_email(email: str) -> bool:
    """A walk-in's stand-in address: never mailed, shown as 'no email'."""
    return email.lower().endswith(WALK_IN_DOMAIN)


# --- time --------------------------------------------------------------------------------------


class NonExistentTime(ValueError):
    """A wall-clock time skipped when the clocks go forward."""


def local_to_utc(day: date, at: time, zone_name: str) -> datetime:
    """A date and time as read on a clock in ``zone_name``, as UTC.

    A time the clocks skip (spring) is refused; a time that happens twice (autumn) is
    taken at its first occurrence (``fold=0``).
    """
    zone = ZoneInfo(zone_name)
    local = datetime.combine(day, at).replace(tzinfo=zone, fold=0)
    as_utc = local.astimezone(UTC)
    if as_utc.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise NonExistentTime(local.isoformat())
    return as_utc


# --- actions -----------------------------------------------------------------------------------

ACTION_FIELDS = (
    "title", "kind", "description", "starts_at", "ends_at", "is_online", "online_url",
    "place_name", "address", "area", "place_public", "accessibility", "capacity",
    "reminder_hours", "volunteers_check_in",
)  # fmt: skip


def list_actions(group: Group) -> list[Action]:
    """The group's actions: upcoming first (soonest first), then past (latest first)."""
    now = utcnow()
    upcoming = db.session.scalars(
        select(Action)
        .where(Action.group_id == group.id, Action.ends_at >= now)
        .order_by(Action.starts_at, Action.id)
    ).all()
    past = db.session.scalars(
        select(Action)
        .where(Action.group_id == group.id, Action.ends_at < now)
        .order_by(Action.starts_at.desc(), Action.id.desc())
    ).all()
    return [*upcoming, *past]


def volunteers_may_check_in(action: Action) -> bool:
    """Whether the organiser opened this action's door check-in to volunteers."""
    return action.volunteers_check_in and action.status == ActionStatus.PUBLISHED


def door_actions(group: Group) -> list[Action]:
    """Published actions whose door volunteers may run: not ended more than a day ago."""
    return list(
        db.session.scalars(
            select(Action)
            .where(
                Action.group_id == group.id,
                Action.status == ActionStatus.PUBLISHED,
                Action.volunteers_check_in.is_(True),
                Action.ends_at >= utcnow() - timedelta(days=1),
            )
            .order_by(Action.starts_at, Action.id)
        )
    )


def status_counts(group: Group, action_ids: list[int]) -> dict[int, dict[str, int]]:
    """Confirmed and waitlisted counts for many actions of this group in one query."""
    result = {action_id: {s.value: 0 for s in SignupStatus} for action_id in action_ids}
    if not action_ids:
        return result
    rows = db.session.execute(
        select(ActionSignup.action_id, ActionSignup.status, func.count(ActionSignup.id))
        .where(ActionSignup.group_id == group.id, ActionSignup.action_id.in_(action_ids))
        .group_by(ActionSignup.action_id, ActionSignup.status)
    )
    for action_id, status, count in rows:
        result[action_id][status] = count
    return result


def _apply(action: Action, data: dict[str, object]) -> None:
    for name in ACTION_FIELDS:
        if name in data:
            setattr(action, name, data[name])
    if action.is_online:
        action.place_name, action.address = "", ""
    else:
        action.online_url = ""


def create_action(actor: User, group: Group, data: dict[str, object]) -> Action:
    """An organiser drafts a new action for their group."""
    action = Action(group_id=group.id, status=ActionStatus.DRAFT)
    _apply(action, data)
    db.session.add(action)
    db.session.flush()
    audit.record("action.created", actor_id=actor.id, group_id=group.id, action_id=action.id)
    return action


def update_action(actor: User, group: Group, action: Action, data: dict[str, object]) -> int:
    """Change an action; when more places opened, the waitlist moves up (each person is
    mailed by ``promote_from_waitlist``). Returns how many were given a place."""
    if action.group_id != group.id:
        raise ActionError(_l("This action belongs to another group."))
    if action.status == ActionStatus.CANCELLED:
        raise ActionError(_l("A cancelled action cannot be changed."))
    _apply(action, data)
    db.session.flush()
    audit.record("action.updated", actor_id=actor.id, group_id=group.id, action_id=action.id)
    promoted = 0
    while services.promote_from_waitlist(action) is not None:
        promoted += 1
    return promoted


def publish_action(actor: User, group: Group, action: Action) -> Action:
    """A draft goes public: it shows on the group's pages and takes sign-ups."""
    if action.group_id != group.id:
        raise ActionError(_l("This action belongs to another group."))
    if action.status != ActionStatus.DRAFT:
        raise ActionError(_l("Only a draft can be published."))
    if action.starts_at <= utcnow():
        raise ActionError(_l("This action has already started; change its date first."))
    action.status = ActionStatus.PUBLISHED
    action.published_at = utcnow()
    db.session.flush()
    audit.record("action.published", actor_id=actor.id, group_id=group.id, action_id=action.id)
    return action


def people_to_tell_if_cancelled(group: Group, action: Action) -> int:
    """How many sign-ups (confirmed or waiting) a cancellation emails."""
    return db.session.scalar(
        select(func.count(ActionSignup.id)).where(
            ActionSignup.group_id == group.id,
            ActionSignup.action_id == action.id,
            ActionSignup.status != SignupStatus.CANCELLED,
        )
    )


# --- sign-ups ----------------------------------------------------------------------------------


def signups_query(group: Group, action: Action, *, search: str = "", status: str = "") -> sa.Select:
    """The sign-up list of an action, filtered by name or email and by status."""
    query = select(ActionSignup).where(
        ActionSignup.group_id == group.id, ActionSignup.action_id == action.id
    )
    if search:
        query = query.where(
            sa.or_(
                ActionSignup.name.icontains(search, autoescape=True),
                ActionSignup.email.icontains(search, autoescape=True),
            )
        )
    if status in {s.value for s in SignupStatus}:
        query = query.where(ActionSignup.status == status)
    return query.order_by(ActionSignup.id)


def get_signup(group: Group, action: Action, signup_id: int) -> ActionSignup | None:
    """A sign-up of this action of this group only."""
    return db.session.scalar(
        select(ActionSignup).where(
            ActionSignup.id == signup_id,
            ActionSignup.action_id == action.id,
            ActionSignup.group_id == group.id,
        )
    )


def export_signups(actor: User, group: Group, action: Action) -> list[ActionSignup]:
    """Every sign-up for the CSV download; the download is audit-logged."""
    rows = db.session.scalars(signups_query(group, action)).all()
    audit.record(
        "signups.exported_csv",
        actor_id=actor.id,
        group_id=group.id,
        action_id=action.id,
        rows=len(rows),
    )
    return list(rows)


# --- on the day --------------------------------------------------------------------------------


def check_in_list(group: Group, action: Action) -> list[ActionSignup]:
    """Confirmed sign-ups and walk-ins, alphabetically, for the door."""
    return list(
        db.session.scalars(
            select(ActionSignup)
            .where(
                ActionSignup.group_id == group.id,
                ActionSignup.action_id == action.id,
                ActionSignup.status == SignupStatus.CONFIRMED,
            )
            .order_by(func.lower(ActionSignup.name), ActionSignup.id)
        )
    )


def toggle_check_in(actor: User, group: Group, signup: ActionSignup) -> ActionSignup:
    """Mark someone as here, or undo a mistaken tap."""
    if signup.group_id != group.id:
        raise ActionError(_l("This sign-up belongs to another group."))
    if signup.status != SignupStatus.CONFIRMED:
        raise ActionError(_l("Only people with a place can be checked in."))
    signup.checked_in_at = None if signup.checked_in_at else utcnow()
    db.session.flush()
    return signup


def add_walk_in(
    actor: User, group: Group, action: Action, *, name: str, email: str = ""
) -> ActionSignup:
    """Someone who came without signing up: confirmed and checked in at once, even past
    capacity (they are there). Without an email a placeholder address is stored (see the
    module docstring); with one that already signed up, that sign-up is checked in."""
    if action.group_id != group.id:
        raise ActionError(_l("This action belongs to another group."))
    if action.status == ActionStatus.CANCELLED:
        raise ActionError(_l("This action is cancelled."))
    address = normalise_email(email) if email else f"walk-in-{uuid4().hex}{WALK_IN_DOMAIN}"
    signup = db.session.scalar(
        select(ActionSignup).where(
            ActionSignup.action_id == action.id, ActionSignup.email == address
        )
    )
    now = utcnow()
    if signup is None:
        signup = ActionSignup(
            action_id=action.id, group_id=group.id, email=address, name=name, walk_in=True,
            status=SignupStatus.CONFIRMED, version=1,
        )  # fmt: skip
        db.session.add(signup)
    elif not signup.name:
        signup.name = name
    if signup.status != SignupStatus.CONFIRMED:
        signup.status = SignupStatus.CONFIRMED
        signup.cancelled_at = None
        signup.version += 1
    signup.checked_in_at = signup.checked_in_at or now
    db.session.flush()
    audit.record("action.walk_in", actor_id=actor.id, group_id=group.id, action_id=action.id)
    return signup


def walk_in_count(group: Group, action: Action) -> int:
    return db.session.scalar(
        select(func.count(ActionSignup.id)).where(
            ActionSignup.group_id == group.id,
            ActionSignup.action_id == action.id,
            ActionSignup.walk_in.is_(True),
        )
    )


# --- a message to the people coming -------------------------------------------------------------


def attendee_recipients(group: Group, action: Action) -> list[str]:
    """Addresses of confirmed sign-ups that can be mailed: no walk-in placeholders, none
    whose address bounced for good or was blocked. A service message (DESIGN rule 15):
    no marketing consent is needed, and unsubscribing from updates does not stop it."""
    emails = db.session.scalars(
        select(ActionSignup.email)
        .where(
            ActionSignup.group_id == group.id,
            ActionSignup.action_id == action.id,
            ActionSignup.status == SignupStatus.CONFIRMED,
        )
        .order_by(ActionSignup.id)
    ).all()
    return [
        email
        for email in emails
        if not is_placeholder_email(email) and not blocks_service_mail(group.id, email)
    ]


def email_attendees(actor: User, group: Group, action: Action, *, subject: str, body: str) -> int:
    """One service email (category TRANSACTIONAL) per person with a place; returns how
    many were queued."""
    if action.group_id != group.id:
        raise ActionError(_l("This action belongs to another group."))
    body_html = render_markdown(body)
    body_text = markdown_to_text(body)
    sent = 0
    for email in attendee_recipients(group, action):
        queued = queue_email(
            email,
            "action_message",
            category=MailCategory.TRANSACTIONAL,
            group_id=group.id,
            group_name=group.name,
            reply_to=group.contact_email or None,
            action=action,
            group=group,
            subject_line=subject,
            body_html=body_html,
            body_text=body_text,
        )
        sent += queued is not None
    audit.record(
        "action.emailed_attendees",
        actor_id=actor.id,
        group_id=group.id,
        action_id=action.id,
        recipients=sent,
    )
    return sent
