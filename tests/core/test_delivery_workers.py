"""Exactly-once as far as SMTP allows, with real Celery workers on PostgreSQL.

- two workers whose lease is shorter than one batch's send time: every recipient
  gets exactly one message (claims are renewed as sending goes on);
- two workers and ten SIGKILLs during one send: nobody is missing, and each kill
  costs at most one extra copy, which carries the same Message-ID and is named by
  ``possible_repeat`` on its row;
- a whole worker killed mid-send: sending resumes within 15 s of a new worker starting
  (no beat tick, no waiting out the lease).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
from sqlalchemy import select

from campaign.core.outbox import OutboxMessage
from campaign.extensions import db
from tests.conftest import throwaway_database
from tests.core.test_celery_worker import Harness, _wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def postgres(tmp_path):
    with throwaway_database("postgresql", tmp_path) as url:
        yield url


def _harness(tmp_path, postgres, delay: float, **settings: str) -> Harness:
    return Harness(tmp_path, sink_delay=delay, database=postgres, settings=settings)


def _flagged(harness: Harness) -> set[str]:
    with harness.app.app_context():
        return set(
            db.session.scalars(
                select(OutboxMessage.to_addr).where(OutboxMessage.possible_repeat.is_(True))
            )
        )


def test_two_workers_with_a_lease_shorter_than_a_batch_send_each_recipient_once(tmp_path, postgres):
    # A batch of 40 over a sink taking 50 ms a message needs 2 s: twice the lease.
    harness = _harness(
        tmp_path, postgres, 0.05,
        MAIL_LEASE_SECONDS="1", MAIL_HEARTBEAT_SECONDS="0.3", MAIL_BATCH_SIZE="40",
    )  # fmt: skip
    try:
        harness.start_worker()
        harness.start_worker()
        harness.queue(300)
        harness.dispatch()  # one task for each worker
        assert _wait_for(lambda: harness.unsent() == 0, timeout=120)
        per_recipient = Counter(address for address, _ in harness.sink.received)
        assert len(per_recipient) == 300
        assert set(per_recipient.values()) == {1}
        assert _flagged(harness) == set()
    finally:
        harness.close()


def test_two_workers_and_ten_kills_lose_nobody_and_repeat_at_most_one_each(tmp_path, postgres):
    harness = _harness(tmp_path, postgres, 0.02, MAIL_HEARTBEAT_SECONDS="0.5", MAIL_BATCH_SIZE="50")
    kills = 0
    try:
        alive = [harness.start_worker(), harness.start_worker()]
        harness.queue(3000)
        harness.dispatch()
        while kills < 10:
            before = len(harness.sink.received)
            assert _wait_for(lambda b=before: len(harness.sink.received) >= b + 40, timeout=60)
            victim = alive.pop(0)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            kills += 1
            alive.append(harness.start_worker())
        assert harness.unsent() > 0, "the send finished before the tenth kill"
        last = [0.0]

        def beat() -> None:  # what Celery beat does, every few seconds here
            if time.monotonic() - last[0] > 5:
                harness.dispatch()
                last[0] = time.monotonic()

        assert _wait_for(lambda: harness.unsent() == 0, timeout=180, then=beat)
        per_recipient = Counter(address for address, _ in harness.sink.received)
        assert len(per_recipient) == 3000  # nobody missing
        repeated = {address for address, n in per_recipient.items() if n > 1}
        assert len(repeated) <= kills
        assert all(per_recipient[a] == 2 for a in repeated)
        for address in repeated:  # the extra copy is recognisably the same message
            assert len({mid for a, mid in harness.sink.received if a == address}) == 1
        # The sent-mail report can name everyone who may have had a second copy.
        assert repeated <= _flagged(harness)
        assert len(_flagged(harness)) <= kills
    finally:
        harness.close()


def test_after_a_whole_worker_is_killed_sending_resumes_within_15_s_of_a_new_one(
    tmp_path, postgres
):
    harness = _harness(tmp_path, postgres, 0.01)
    try:
        first = harness.start_worker()
        harness.queue(1500)
        assert _wait_for(lambda: len(harness.sink.received) >= 200, timeout=60)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        time.sleep(1)
        at_kill = len(harness.sink.received)
        assert harness.unsent() > 0
        started = time.monotonic()
        harness.start_worker()  # no beat: the new worker starts delivery by itself
        assert _wait_for(lambda: len(harness.sink.received) > at_kill, timeout=15)
        assert time.monotonic() - started < 15
        # The dead worker's claimed rows come free when its heartbeat is stale (6 s
        # here), not after the 300 s lease.
        assert _wait_for(lambda: harness.unsent() == 0, timeout=60)
        assert len({address for address, _ in harness.sink.received}) == 1500
    finally:
        harness.close()
