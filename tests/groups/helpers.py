"""Small helpers shared by the group tests."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.accounts.models import User
from campaign.core.audit import AuditEvent
from campaign.extensions import db
from campaign.groups.models import Group, GroupStatus, Membership
from tests import factories
from tests.conftest import login


def text(response) -> str:
    return response.get_data(as_text=True)


def client_for(app: Flask, user: User) -> FlaskClient:
    """A separate browser, logged in as ``user``."""
    client = app.test_client()
    login(client, user)
    return client


def audit_rows(event: str, group_id: int | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.event == event)
    if group_id is not None:
        query = query.where(AuditEvent.group_id == group_id)
    return list(db.session.scalars(query.order_by(AuditEvent.id)))


def pending_group(applicant: User, name: str | None = None) -> Group:
    """A pending application by ``applicant``, who is its organiser."""
    group = factories.group(name, organiser=applicant, status=GroupStatus.PENDING)
    group.applied_by_id = applicant.id
    db.session.flush()
    return group


def membership(group: Group, user: User) -> Membership | None:
    return db.session.scalar(
        select(Membership).where(Membership.group_id == group.id, Membership.user_id == user.id)
    )
