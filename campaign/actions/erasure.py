"""The actions capability's part in erasure and the data download: sign-ups.

A sign-up holds an address, a name, a phone number and access needs (health data).
Erased, it keeps only what the group's counts need (which action, status, attended),
is unlinked from the supporter, and a place at an action still to come is given up,
so the next person on the waitlist gets it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import select

from campaign.actions.models import ERASED_DOMAIN, Action, ActionSignup, SignupStatus
from campaign.core import erasure
from campaign.core.erasure import ErasureSubject
from campaign.core.models import utcnow
from campaign.extensions import db


def _signups_of(subject: ErasureSubject) -> sa.Select:
    return (
        select(ActionSignup)
        .where(
            ActionSignup.group_id == subject.group_id,
            sa.or_(
                ActionSignup.supporter_id == subject.supporter_id,
                ActionSignup.email == subject.email,
            ),
        )
        .order_by(ActionSignup.id)
    )


def _erase_signups(subject: ErasureSubject) -> None:
    from campaign.actions.services import _lock, promote_from_waitlist

    now = utcnow()
    freed: list[Action] = []
    for signup in db.session.scalars(_signups_of(subject)).all():
        action = signup.action
        if action.starts_at > now and signup.status != SignupStatus.CANCELLED:
            if signup.status == SignupStatus.CONFIRMED:
                freed.append(action)
            signup.status = SignupStatus.CANCELLED
            signup.cancelled_at = now
        signup.email = f"erased-signup-{signup.id}{ERASED_DOMAIN}"
        signup.name = signup.phone = signup.access_needs = ""
        signup.supporter_id = None
        signup.version += 1
    db.session.flush()
    for action in freed:
        promote_from_waitlist(_lock(action))


def _export_signups(subject: ErasureSubject) -> dict[str, Any]:
    return {
        "action_signups": [
            {
                "action": signup.action.title,
                "starts": signup.action.starts_at.isoformat(),
                "status": signup.status,
                "name": signup.name,
                "email": signup.email if signup.has_email else "",
                "phone": signup.phone,
                "access_needs": signup.access_needs,
                "signed_up": signup.created_at.isoformat(),
                "checked_in": signup.checked_in_at.isoformat() if signup.checked_in_at else None,
            }
            for signup in db.session.scalars(_signups_of(subject))
        ]
    }


erasure.register(
    "actions", models=[ActionSignup], erase=_erase_signups, export=_export_signups, order=20
)
