"""Claim ownership: every write to a row being sent is conditional on the claim that
owns it, so a worker that lost its rows changes nothing."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import select

from campaign.core.models import utcnow
from campaign.core.outbox import (
    OutboxMessage,
    OutboxStatus,
    PreparedEmail,
    deliver_due,
    possible_repeats,
    queue_prepared,
)
from campaign.core.outbox.claim import claim_batch, mark_sent, release, release_lane, renew
from campaign.extensions import db


def _queue(app, group, count: int, mailing_id: int | None = 7) -> None:
    with app.test_request_context():
        queue_prepared(
            [
                PreparedEmail(to=f"p{i}@example.org", subject="Hi", text_body="Hello")
                for i in range(count)
            ],
            template="mailing",
            group_id=group.id,
            mailing_id=mailing_id,
        )
    db.session.commit()


def _row(row_id: int) -> OutboxMessage:
    return db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.id == row_id)
        .execution_options(populate_existing=True)
    ).one()


def _silence(claim) -> None:
    """The claimant stops renewing (as a killed worker does): its heartbeat grows old."""
    old = utcnow() - timedelta(minutes=5)
    db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.claim_token == claim.token)
        .values(heartbeat_at=old)
    )
    db.session.commit()


def test_a_claim_is_a_token_on_each_row(app, session, make):
    _queue(app, make.group(), 3)
    claim = claim_batch(db.session, 10)
    assert len(claim.rows) == 3 and len(claim.token) == 32
    for row in claim.rows:
        stored = _row(row.id)
        assert stored.status == OutboxStatus.SENDING and stored.claim_token == claim.token
        assert stored.claimed_by and stored.heartbeat_at and stored.lease_until
    # Nothing is left to claim while the claim is alive.
    assert claim_batch(db.session, 10).rows == []


def test_a_silent_claimant_loses_its_rows_and_changes_nothing_afterwards(app, session, make):
    _queue(app, make.group(), 3)
    first = claim_batch(db.session, 10)
    _silence(first)
    second = claim_batch(db.session, 10)
    assert [r.id for r in second.rows] == [r.id for r in first.rows]
    in_flight, other, third = (r.id for r in first.rows)
    # The row that was in flight when the first worker went quiet may have been sent.
    assert _row(in_flight).possible_repeat and not _row(other).possible_repeat

    # The first worker wakes up: its writes are conditional on its claim, so none lands.
    assert not mark_sent(db.session, first, other)
    assert not release(db.session, first, third, status=OutboxStatus.FAILED.value, error="x")
    assert release_lane(db.session, first, None, until=utcnow(), error="paused") == 0
    db.session.commit()
    assert _row(third).status == OutboxStatus.SENDING and _row(third).last_error is None
    # ... and the row it did send after losing the claim is flagged, still owned by the
    # second worker, who marks it sent.
    assert _row(other).possible_repeat and _row(other).claim_token == second.token
    assert mark_sent(db.session, second, other)
    db.session.commit()
    assert _row(other).status == OutboxStatus.SENT


def test_a_pause_never_returns_a_row_another_worker_sent(app, session, make):
    _queue(app, make.group(), 2)
    first = claim_batch(db.session, 10)
    _silence(first)
    second = claim_batch(db.session, 10)
    for row in second.rows:
        assert mark_sent(db.session, second, row.id)
    db.session.commit()
    # The first worker's pause path runs with its old view of the batch.
    assert release_lane(db.session, first, first.rows[0].lane, until=utcnow(), error="451") == 0
    db.session.commit()
    assert {_row(r.id).status for r in first.rows} == {OutboxStatus.SENT}


def test_renewing_extends_the_lease_and_notices_lost_rows(app, session, make):
    _queue(app, make.group(), 3)
    claim = claim_batch(db.session, 10)
    before = _row(claim.rows[0].id).lease_until
    lost = claim.rows[2].id
    db.session.execute(
        sa.update(OutboxMessage).where(OutboxMessage.id == lost).values(claim_token="someone-else")
    )
    db.session.commit()
    renew(db.session, claim, unsent=3)
    assert _row(claim.rows[0].id).lease_until >= before
    assert lost not in claim.owned and len(claim.owned) == 2


def test_a_claim_whose_lease_ran_out_is_taken_over(app, session, make, monkeypatch):
    _queue(app, make.group(), 1)
    first = claim_batch(db.session, 10)
    db.session.execute(sa.update(OutboxMessage).values(lease_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    second = claim_batch(db.session, 10)
    assert [r.id for r in second.rows] == [first.rows[0].id]


def test_possible_repeats_names_recipients_of_a_mailing(app, session, make, smtp_sink):
    group = make.group()
    _queue(app, group, 3, mailing_id=41)
    first = claim_batch(db.session, 1)
    _silence(first)
    assert deliver_due()["sent"] == 3
    assert possible_repeats(41) == ["p0@example.org"]
    assert possible_repeats(42) == []


def test_a_batch_is_sized_to_its_lease_at_a_slow_rate(app, session, make, monkeypatch):
    from campaign.core.outbox.deliver import _batch_limit

    monkeypatch.setitem(app.config, "MAIL_RATE_PER_SECOND", 0.2)
    monkeypatch.setitem(app.config, "MAIL_LEASE_SECONDS", 300)
    assert _batch_limit(db.session, 200) == 30  # half a lease's worth at 0.2/s
    monkeypatch.setitem(app.config, "MAIL_RATE_PER_SECOND", 0)
    assert _batch_limit(db.session, 200) == 200
