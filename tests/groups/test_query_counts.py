"""Pages an organiser opens run the same number of queries whatever their number of groups
(the navigation once ran one query per membership)."""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa

from campaign.extensions import db
from tests.conftest import login


@contextmanager
def counting():
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)


def queries_for(client, path: str) -> int:
    client.get(path)
    with counting() as seen:
        assert client.get(path).status_code == 200
    return len(seen)


def test_an_organisers_pages_cost_the_same_for_5_groups_and_for_40(client, make):
    organiser = make.user()
    groups = [make.group(organiser=organiser) for _ in range(5)]
    login(client, organiser)
    paths = ["/", f"/g/{groups[0].slug}", f"/g/{groups[0].slug}/members", "/groups"]
    few = {path: queries_for(client, path) for path in paths}
    for _ in range(35):
        make.group(organiser=organiser)
    many = {path: queries_for(client, path) for path in paths}
    assert many == few
