"""Pagination of a select() for long lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app, request

from campaign.extensions import db


@dataclass
class Page:
    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def requested_page() -> int:
    try:
        return max(1, min(int(request.args.get("page", 1)), 100_000))
    except ValueError:
        return 1


def paginate(
    query: sa.Select,
    page: int | None = None,
    per_page: int | None = None,
    *,
    total: int | None = None,
) -> Page:
    """One page of ``query``. Pass ``total`` when the caller has already counted the rows
    (say, from counts by status it shows anyway): on a long list the count is most of
    the page's cost."""
    page = page or requested_page()
    per_page = per_page or current_app.config["PER_PAGE"]
    if total is None:
        total = db.session.scalar(
            sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
        )
    items = list(db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)))
    return Page(items=items, page=page, per_page=per_page, total=total or 0)
