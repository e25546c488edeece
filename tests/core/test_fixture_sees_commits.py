"""The test fixture must show a view that forgets to commit (a change lost in production).

A second app on the same test database gets two throwaway views, one that commits and
one that forgets to; the shared app's URL map (walked by the access test) is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from campaign import create_app
from campaign.core.permissions import public
from campaign.extensions import db
from campaign.groups.models import Group
from tests import factories
from tests.conftest import Client, rolled_back_transaction


@pytest.fixture
def checked_app(app: Flask) -> Iterator[Flask]:
    other = create_app(
        "testing", {"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]}
    )
    other.test_client_class = Client

    def rename(commit: bool) -> str:
        group = db.session.scalar(select(Group).where(Group.slug == "fixture-check"))
        group.name = "Renamed"
        db.session.flush()
        if commit:
            db.session.commit()
        return "ok"

    other.add_url_rule("/_t/commit", "t_commit", public(lambda: rename(True)))
    other.add_url_rule("/_t/forget", "t_forget", public(lambda: rename(False)))
    with other.app_context(), rolled_back_transaction():
        yield other
    with other.app_context():
        db.engine.dispose()


@pytest.mark.parametrize(("path", "committed"), [("/_t/commit", True), ("/_t/forget", False)])
def test_a_view_that_does_not_commit_loses_its_change(checked_app, path, committed):
    group = factories.group(name="Original")
    group.slug = "fixture-check"
    db.session.flush()
    response = checked_app.test_client().get(path)
    assert response.status_code == 200
    name = db.session.scalar(select(Group.name).where(Group.id == group.id))
    assert (name == "Renamed") is committed
