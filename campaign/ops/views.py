"""``/healthz`` for load balancers and monitors: up or not, never details."""

from __future__ import annotations

import time

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from campaign.core.permissions import public
from campaign.extensions import db

bp = Blueprint("ops", __name__)

# A monitor polls every few seconds; asking the broker each time would cost a connection
# per poll per worker, so its answer is kept briefly.
_BROKER_CACHE_SECONDS = 10.0
_broker_state: dict[str, float | bool] = {"checked": 0.0, "ok": True}


def _broker_ok() -> bool:
    url = current_app.config.get("CELERY_BROKER_URL")
    if not url:
        return True
    now = time.monotonic()
    if now - float(_broker_state["checked"]) > _BROKER_CACHE_SECONDS:
        from campaign.ops.checks import broker_reachable

        _broker_state["ok"] = broker_reachable(url, timeout=2) is None
        _broker_state["checked"] = now
    return bool(_broker_state["ok"])


@bp.get("/healthz")
@public
def healthz():  # noqa: ANN201
    """200 when the database (and broker, if any) answer; 503 otherwise. Anyone may ask."""
    try:
        db.session.execute(sa.text("SELECT 1"))
        database = True
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        database = False
    healthy = database and _broker_ok()
    response = jsonify(status="ok" if healthy else "unavailable")
    response.headers["Cache-Control"] = "no-store"
    return response, 200 if healthy else 503
