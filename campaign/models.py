"""Import every capability's models, so ``Base.metadata`` knows every table.

Alembic's env.py, the drift test and ``create_all`` in tests import this module.
"""

from campaign.accounts.models import LoginThrottle, RecoveryCode, User, UserSession
from campaign.actions.models import Action, ActionSignup
from campaign.core.audit import AuditEvent
from campaign.core.jobs import BackgroundJob
from campaign.core.models import Base
from campaign.core.outbox import MailThrottle, OutboxMessage
from campaign.groups.models import Group, Invitation, Membership
from campaign.mailing.models import BounceEvent, Mailing
from campaign.people.models import ConsentRecord, ErasedAddress, Supporter, Suppression, Tag

metadata = Base.metadata

__all__ = [
    "Action",
    "ActionSignup",
    "AuditEvent",
    "BounceEvent",
    "BackgroundJob",
    "Base",
    "ConsentRecord",
    "ErasedAddress",
    "Group",
    "Invitation",
    "LoginThrottle",
    "MailThrottle",
    "Mailing",
    "Membership",
    "OutboxMessage",
    "RecoveryCode",
    "Supporter",
    "Suppression",
    "Tag",
    "User",
    "UserSession",
]
