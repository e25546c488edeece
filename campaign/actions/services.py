"""Action rules: sign-ups with a capacity and a waitlist, cancellation, reminders.

Places are decided under a lock on the action row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite writers already take the database lock with ``BEGIN IMMEDIATE``),
so sign-ups racing for the last places never overfill an action. Services flush,
never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from campaign.accounts.models import User
from campaign.actions.calendar import action_ics
from campaign.actions.models import Action, ActionSignup, ActionStatus, SignupStatus
from campaign.core import audit
from campaign.core.addresses import normalise_email
from campaign.core.links import external_url
from campaign.core.models import utcnow
from campaign.core.outbox import MailCategory, queue_email
from campaign.core.tokens import TokenError, make_token, read_token
from campaign.extensions import db
from campaign.groups.models import Group
from campaign.people.erasure import forget_erasure
from campaign.people.models import Supporter
from campaign.people.services import (
    blocks_service_mail,
    request_subscription,
    upsert_supporter,
)

MANAGE_LINK_MAX_AGE = 400 * 24 * 3600  # links keep working until well after the action


class ActionError(Exception):
    """A rule was broken; the message is safe to show."""


# --- reading ---------------------------------------------------------------------------------


def get_action(group: Group, action_id: int) -> Action | None:
    """An action of this group only: ids from another group find nothing."""
    return db.session.scalar(
        select(Action).where(Action.id == action_id, Action.group_id == group.id)
    )


def get_signup(action: Action, signup_id: int) -> ActionSignup | None:
    return db.session.scalar(
        select(ActionSignup).where(
            ActionSignup.id == signup_id, ActionSignup.action_id == action.id
        )
    )


def counts(action: Action) -> dict[str, int]:
    """Sign-ups by status, plus attended (checked in) and no-shows once it has ended."""
    rows = db.session.execute(
        select(ActionSignup.status, func.count(ActionSignup.id))
        .where(ActionSignup.action_id == action.id)
        .group_by(ActionSignup.status)
    ).all()
    result = {status.value: 0 for status in SignupStatus} | dict(rows)
    result["attended"] = db.session.scalar(
        select(func.count(ActionSignup.id)).where(
            ActionSignup.action_id == action.id, ActionSignup.checked_in_at.is_not(None)
        )
    )
    confirmed_booked = db.session.scalar(
        select(func.count(ActionSignup.id)).where(
            ActionSignup.action_id == action.id,
            ActionSignup.status == SignupStatus.CONFIRMED,
            ActionSignup.walk_in.is_(False),
            ActionSignup.checked_in_at.is_(None),
        )
    )
    result["no_shows"] = confirmed_booked if action.ends_at < utcnow() else 0
    return result


def places_left(action: Action) -> int | None:
    if action.capacity is None:
        return None
    taken = db.session.scalar(
        select(func.count(ActionSignup.id)).where(
            ActionSignup.action_id == action.id, ActionSignup.status == SignupStatus.CONFIRMED
        )
    )
    return max(0, action.capacity - taken)


# --- sign-up ----------------------------------------------------------------------------------


@dataclass
class SignupResult:
    signup: ActionSignup
    outcome: str  # "confirmed", "waitlisted" or "updated"


def _lock(action: Action) -> Action:
    """Take the action row for the rest of the transaction (serialises place-taking)."""
    query = select(Action).where(Action.id == action.id)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return db.session.execute(query.execution_options(populate_existing=True)).scalar_one()


def _manage_url(signup: ActionSignup) -> str:
    token = make_token("signup", {"s": signup.id, "v": signup.version})
    return external_url("actions.manage_signup", token=token)


def signup_from_token(token: str) -> ActionSignup:
    """The sign-up an emailed link is for, if the link is for its current state."""
    data = read_token("signup", token, MANAGE_LINK_MAX_AGE)
    signup = db.session.get(ActionSignup, data.get("s"))
    if signup is None:
        raise TokenError("invalid")
    if data.get("v") != signup.version:
        raise TokenError("used")
    return signup


def _mail(signup: ActionSignup, template: str, category: MailCategory, **context: object) -> None:
    if not signup.has_email:
        return  # a walk-in recorded without an address
    if category != MailCategory.STRANGER and blocks_service_mail(signup.group_id, signup.email):
        # Service mail ignores unsubscribes but not a dead mailbox. (The acknowledgement
        # of a sign-up just made goes out: the person has just given the address again.)
        return
    action = signup.action
    with_place = signup.status == SignupStatus.CONFIRMED or action.place_public
    queue_email(
        signup.email,
        template,
        category=category,
        group_id=signup.group_id,
        group_name=action.group.name,
        reply_to=action.group.contact_email or None,
        action=action,
        group=action.group,
        status=signup.status,
        with_place=with_place,
        manage_url=_manage_url(signup),
        calendar=action_ics(action, with_place=with_place)
        if signup.status != SignupStatus.CANCELLED
        else None,
        **context,
    )


def sign_up(
    action: Action,
    *,
    email: str,
    name: str,
    phone: str = "",
    access_needs: str = "",
    wants_updates: bool = False,
) -> SignupResult:
    """A supporter signs up (no account). A second sign-up with the same address
    updates the first; a full action puts them on the waitlist, in order."""
    email = normalise_email(email)
    action = _lock(action)
    if action.status != ActionStatus.PUBLISHED:
        raise ActionError(_l("This action is not open for sign-ups."))
    if action.starts_at <= utcnow():
        raise ActionError(_l("This action has already started."))
    signup = db.session.scalar(
        select(ActionSignup).where(ActionSignup.action_id == action.id, ActionSignup.email == email)
    )
    forget_erasure(action.group_id, email)  # the person signed up themself: new consent
    supporter, _ = upsert_supporter(
        action.group, email, first_name=name.split(" ")[0] if name else "",
        source=f"action:{action.id}",
    )  # fmt: skip
    if signup is not None and signup.status != SignupStatus.CANCELLED:
        # Anyone can type anyone's address: only empty details are filled in. The person
        # changes their details through the link emailed to them (change_details).
        if _fill_empty(signup, name=name, phone=phone, access_needs=access_needs):
            signup.version += 1
        outcome = "updated"
    else:
        # Count the places before this row exists (a pending new row would count itself).
        left = places_left(action)
        status = SignupStatus.CONFIRMED if left is None or left > 0 else SignupStatus.WAITLISTED
        if signup is None:
            signup = ActionSignup(
                action_id=action.id, group_id=action.group_id, email=email, version=0
            )
            db.session.add(signup)
        signup.status = status
        if signup.id is None:
            signup.name, signup.phone, signup.access_needs = name, phone, access_needs
        else:  # a cancelled sign-up taken up again keeps what the person gave before
            _fill_empty(signup, name=name, phone=phone, access_needs=access_needs)
        signup.cancelled_at = None
        signup.version += 1
        outcome = status.value
    signup.supporter_id = supporter.id
    db.session.flush()
    # The confirmation carries nothing the visitor typed (a public form is no relay).
    _mail(signup, "action_signup", MailCategory.STRANGER, outcome=outcome)
    if wants_updates:
        request_subscription(action.group, email, source=f"action:{action.id}")
    return SignupResult(signup=signup, outcome=outcome)


def _fill_empty(signup: ActionSignup, **details: str) -> bool:
    """Fill the sign-up's empty details from a public form; True when one was filled."""
    filled = False
    for field, value in details.items():
        if value and not getattr(signup, field):
            setattr(signup, field, value)
            filled = True
    return filled


def change_details(signup: ActionSignup, *, name: str, phone: str, access_needs: str) -> None:
    """The person corrects their details from their link. Older links stop working, so
    a fresh one is emailed (a link in the inbox must keep leading to the place).

    The link proves the person holds the address, so the first name their group's
    mail greets them with follows the new name too.
    """
    signup.name, signup.phone, signup.access_needs = name, phone, access_needs
    supporter = db.session.get(Supporter, signup.supporter_id) if signup.supporter_id else None
    if supporter is not None and supporter.erased_at is None and name.strip():
        supporter.first_name = name.split()[0][:80]
    signup.version += 1
    db.session.flush()
    _mail(signup, "action_signup", MailCategory.TRANSACTIONAL, outcome="updated")


def cancel_signup(signup: ActionSignup, *, actor: User | None = None) -> ActionSignup | None:
    """Cancel a sign-up (by the person's link, or by an organiser). When it freed a
    place, the first person on the waitlist gets it and is told; returns them."""
    action = _lock(signup.action)
    if signup.status == SignupStatus.CANCELLED:
        return None
    freed = signup.status == SignupStatus.CONFIRMED
    signup.status = SignupStatus.CANCELLED
    signup.cancelled_at = utcnow()
    signup.version += 1
    if actor is not None:
        audit.record("signup.cancelled", actor_id=actor.id, group_id=signup.group_id)
    db.session.flush()
    _mail(signup, "action_signup_cancelled", MailCategory.TRANSACTIONAL)
    return promote_from_waitlist(action) if freed else None


def promote_from_waitlist(action: Action) -> ActionSignup | None:
    """Give a free place to the first on the waitlist (call with the action locked)."""
    if action.status != ActionStatus.PUBLISHED or action.starts_at <= utcnow():
        return None
    left = places_left(action)
    if left is not None and left <= 0:
        return None
    first = db.session.scalar(
        select(ActionSignup)
        .where(ActionSignup.action_id == action.id, ActionSignup.status == SignupStatus.WAITLISTED)
        .order_by(ActionSignup.id)
        .limit(1)
    )
    if first is None:
        return None
    first.status = SignupStatus.CONFIRMED
    first.version += 1
    db.session.flush()
    _mail(first, "action_place_offered", MailCategory.TRANSACTIONAL)
    return first


def cancel_action(actor: User, action: Action) -> int:
    """Cancel an action and email everyone signed up or waiting; returns how many."""
    action = _lock(action)
    if action.status == ActionStatus.CANCELLED:
        raise ActionError(_l("This action is already cancelled."))
    action.status = ActionStatus.CANCELLED
    action.cancelled_at = utcnow()
    people = db.session.scalars(
        select(ActionSignup).where(
            ActionSignup.action_id == action.id, ActionSignup.status != SignupStatus.CANCELLED
        )
    ).all()
    for signup in people:
        if not signup.has_email or blocks_service_mail(action.group_id, signup.email):
            continue
        queue_email(
            signup.email,
            "action_cancelled",
            category=MailCategory.TRANSACTIONAL,
            group_id=action.group_id,
            action=action,
            group=action.group,
            calendar=action_ics(action, with_place=False),
        )
    audit.record("action.cancelled", actor_id=actor.id, group_id=action.group_id, told=len(people))
    return len(people)


# --- reminders ---------------------------------------------------------------------------------


def send_due_reminders(now: datetime | None = None) -> int:
    """Queue reminders for confirmed sign-ups whose reminder time has come; each once.

    The claim is one UPDATE ... WHERE reminded_at IS NULL: two runs at the same time
    (beat and a manual command) cannot both claim a sign-up.
    """
    now = now or utcnow()
    due = (
        select(ActionSignup.id)
        .join(Action, Action.id == ActionSignup.action_id)
        .where(
            Action.status == ActionStatus.PUBLISHED,
            Action.starts_at > now,
            ActionSignup.status == SignupStatus.CONFIRMED,
            ActionSignup.reminded_at.is_(None),
        )
    )
    candidates = [
        signup_id
        for signup_id, starts_at, hours in db.session.execute(
            select(ActionSignup.id, Action.starts_at, Action.reminder_hours)
            .join(Action, Action.id == ActionSignup.action_id)
            .where(ActionSignup.id.in_(due.scalar_subquery()))
        )
        if starts_at - timedelta(hours=hours) <= now
    ]
    sent = 0
    for signup_id in candidates:
        claimed = db.session.execute(
            sa.update(ActionSignup)
            .where(ActionSignup.id == signup_id, ActionSignup.reminded_at.is_(None))
            .values(reminded_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed:
            signup = db.session.get(ActionSignup, signup_id)
            db.session.refresh(signup)
            _mail(signup, "action_reminder", MailCategory.TRANSACTIONAL)
            sent += 1
    db.session.flush()
    return sent


from campaign.actions import erasure as _erasure  # noqa: E402, F401 - sign-ups take part in erasure
