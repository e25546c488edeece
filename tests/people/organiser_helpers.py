"""Shared set-up for the organisers' people pages tests."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Flask
from sqlalchemy import select

from campaign.accounts.models import User
from campaign.core.audit import AuditEvent
from campaign.extensions import db
from campaign.groups.models import Group, Role
from campaign.people import services
from campaign.people.models import (
    ConsentAction,
    ConsentMethod,
    ConsentRecord,
    Supporter,
    UpdatesStatus,
)
from tests import factories
from tests.conftest import login


def text(response) -> str:
    return response.get_data(as_text=True)


def make_team(app: Flask) -> dict[str, Any]:
    """A group with an organiser (logged in on ``client``), a volunteer and a member."""
    organiser = factories.user(name="Olive Organiser")
    group = factories.group("Riverside Health Justice", organiser=organiser)
    volunteer = factories.user()
    member = factories.user()
    factories.member(group, volunteer, Role.VOLUNTEER)
    factories.member(group, member, Role.MEMBER)
    client = app.test_client()
    login(client, organiser)
    return {
        "group": group,
        "organiser": organiser,
        "volunteer": volunteer,
        "member": member,
        "client": client,
        "base": f"/g/{group.slug}/people",
    }


def supporter(
    group: Group,
    email: str,
    *,
    status: UpdatesStatus = UpdatesStatus.NONE,
    tags: list[str] | None = None,
    **details: str,
) -> Supporter:
    """A supporter with a status (and the consent record that status implies) and tags."""
    row, _ = services.upsert_supporter(group, email, source="test", **details)
    if status != UpdatesStatus.NONE:
        row.updates_status = status
        action = {
            UpdatesStatus.PENDING: ConsentAction.GRANTED,
            UpdatesStatus.SUBSCRIBED: ConsentAction.CONFIRMED,
            UpdatesStatus.UNSUBSCRIBED: ConsentAction.WITHDRAWN,
        }[status]
        services.record_consent(row, action, ConsentMethod.FORM, wording=f"Wording seen by {email}")
    if tags:
        row.tags = services.tags_named(group, tags)
    # Committed (into the test's outer transaction) as data the pages find already there,
    # so a view that rolls back a refused change does not roll the test's data back too.
    db.session.commit()
    return row


def reload(row: Supporter) -> Supporter | None:
    """The supporter as the database has it now (None when deleted)."""
    db.session.expire_all()
    return db.session.get(Supporter, row.id)


def consents_of(row_id: int) -> list[ConsentRecord]:
    return list(
        db.session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.supporter_id == row_id)
            .order_by(ConsentRecord.id)
        )
    )


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text(response))))


def audit_rows(event: str, group: Group) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.event == event, AuditEvent.group_id == group.id)
            .order_by(AuditEvent.id)
        )
    )


def user_client(app: Flask, user: User):
    client = app.test_client()
    login(client, user)
    return client
