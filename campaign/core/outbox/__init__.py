"""The one way mail leaves the platform: rows in an outbox, delivered after commit.

``queue_email()`` writes one ``OutboxMessage`` row per recipient in the caller's
transaction, so a rolled-back change never sends mail. When the transaction commits,
delivery is dispatched (a Celery task on a broker in production; in-process at the end
of the request in the embedded default). ``deliver_due()`` claims rows with a lease,
sends them over one reused connection and marks each one sent straight after the relay
accepts it, so a crash can repeat at most the one message in flight, which carries the
Message-ID fixed at queue time.

The outbox lives in ``core`` because every capability, accounts included, sends mail;
the ``mailing`` capability builds lists and campaigns on top of it.
"""

from __future__ import annotations

from campaign.core.outbox import erasure as _erasure  # noqa: F401 - registers the outbox
from campaign.core.outbox.claim import possible_repeats, stalled_claims
from campaign.core.outbox.deliver import deliver_due
from campaign.core.outbox.mime import message_bytes
from campaign.core.outbox.models import (
    MAX_ATTEMPTS,
    PRIORITY,
    MailCategory,
    OutboxMessage,
    OutboxStatus,
    lane_for,
    permanent_failure,
)
from campaign.core.outbox.queue import (
    PreparedEmail,
    dispatch_if_committed,
    queue_email,
    queue_prepared,
    sender_for,
)
from campaign.core.outbox.throttle import MailThrottle, delivery_problem, delivery_problems
from campaign.core.outbox.transport import mail_file_dir

__all__ = [
    "MAX_ATTEMPTS",
    "PRIORITY",
    "MailCategory",
    "MailThrottle",
    "OutboxMessage",
    "OutboxStatus",
    "PreparedEmail",
    "deliver_due",
    "delivery_problem",
    "delivery_problems",
    "lane_for",
    "possible_repeats",
    "sender_for",
    "stalled_claims",
    "dispatch_if_committed",
    "mail_file_dir",
    "message_bytes",
    "permanent_failure",
    "queue_email",
    "queue_prepared",
]
