"""Structured request logs: one JSON line a request, with nothing about the person.

A line holds a request id, the method, the route's *template* (``/g/<slug>/people/<int:
supporter_id>``, never the filled-in path or the query string, which could name a
person or carry a token), the status and the time taken. The request id comes from the
proxy's ``X-Request-ID`` when it looks like one, so proxy and app logs can be joined,
and is shown on error pages so a user can quote it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
logger = logging.getLogger("campaign.requests")


class _JSONLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record.msg, separators=(",", ":"))


def request_id() -> str:
    """This request's id (made on first use)."""
    if "request_id" not in g:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID_RE.match(given) else uuid.uuid4().hex
    return g.request_id


def init_request_logs(app: Flask) -> None:
    """Log every request as JSON to stderr when ``REQUEST_LOGS`` is on."""
    if app.config.get("REQUEST_LOGS") and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JSONLines())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False

    @app.before_request
    def _start() -> None:
        g.request_started = time.perf_counter()
        request_id()

    @app.after_request
    def _log(response: Response) -> Response:
        response.headers.setdefault("X-Request-ID", request_id())
        if logger.isEnabledFor(logging.INFO):
            started = g.get("request_started", time.perf_counter())
            logger.info(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "request_id": request_id(),
                    "method": request.method,
                    "route": request.url_rule.rule if request.url_rule else None,
                    "status": response.status_code,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                }
            )
        return response

    app.jinja_env.globals["request_id"] = lambda: request_id() if has_request_context() else None
