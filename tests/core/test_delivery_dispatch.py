"""Dispatch after commit cannot fail the request: with the broker down, a public
sign-up still gets its normal redirect, and the beat job delivers the mail later."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaign import create_app
from campaign.actions.models import Action, ActionStatus
from campaign.core.models import utcnow
from campaign.core.outbox import OutboxStatus
from campaign.extensions import db
from tests.conftest import mail_to, post
from tests.smtp import free_port


def test_a_sign_up_succeeds_with_the_broker_down_and_beat_delivers_later(
    app, client, make, smtp_sink, monkeypatch
):
    from campaign.core.tasks import deliver_outbox

    group = make.group("Riverside Health Justice")
    starts = utcnow() + timedelta(days=3)
    action = Action(
        group_id=group.id, title="Visit the Trust board", status=ActionStatus.PUBLISHED,
        starts_at=starts, ends_at=starts + timedelta(hours=2), place_name="Board room",
        address="1 Hospital Road", place_public=True, capacity=50, area="Riverside",
    )  # fmt: skip
    db.session.add(action)
    db.session.commit()
    # A broker URL where nothing listens: publishing the delivery task fails.
    monkeypatch.setitem(app.config, "CELERY_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    celery = app.extensions["celery"]
    monkeypatch.setitem(celery.conf, "broker_url", app.config["CELERY_BROKER_URL"])
    monkeypatch.setitem(celery.conf, "task_always_eager", False)
    monkeypatch.setattr(celery, "_pool", None)  # connections made for the new URL
    monkeypatch.setattr(celery.amqp, "_producer_pool", None)

    response = post(
        client, f"/g/{group.slug}/actions/{action.id}", {"name": "Ana", "email": "ana@example.org"}
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/actions/{action.id}/signed-up")
    [message] = mail_to("ana@example.org")
    assert message.status == OutboxStatus.QUEUED and smtp_sink.messages == []

    # The beat job's task, run as a worker runs it, delivers the mail.
    monkeypatch.setitem(celery.conf, "task_always_eager", True)
    counts = celery.tasks[deliver_outbox.name].apply().get()  # this app's task
    assert counts["sent"] == 1
    assert [r[0] for r in smtp_sink.messages] == [["ana@example.org"]]


def test_production_refuses_to_start_without_a_broker(monkeypatch, tmp_path):
    monkeypatch.setattr("config.ProductionConfig.SECRET_KEY", "s" * 40)
    monkeypatch.setattr(
        "config.ProductionConfig.SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'p.db'}"
    )
    monkeypatch.setattr("config.ProductionConfig.ENCRYPTION_KEYS", "k1:" + "A" * 43)
    monkeypatch.setattr("config.ProductionConfig.CELERY_BROKER_URL", None)
    monkeypatch.setattr("config.ProductionConfig.BASE_URL", "https://campaign.example.org")
    with pytest.raises(RuntimeError, match="CELERY_BROKER_URL"):
        create_app("production")
