"""Absolute links for mail, exports, calendars and pages meant to be shared.

Every such link is built here from the configured ``BASE_URL`` and nothing else
(DESIGN.md rule 13). ``url_for(..., _external=True)`` takes the scheme and host from
the request, so a forged ``Host`` header would put an attacker's host into a password
reset link, and outside a request it fails altogether. This helper binds the app's URL
map to ``BASE_URL`` itself, so the same link comes out of a view, a Celery task and a
``flask`` command, with only an app context.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

from flask import current_app
from werkzeug.routing import MapAdapter


class BaseURLError(ValueError):
    """``BASE_URL`` cannot be used to build links."""


def parse_base_url(base_url: str | None) -> SplitResult:
    """``BASE_URL`` split into its parts, or :class:`BaseURLError` saying what is wrong.

    It must be ``http`` or ``https`` with a host; an optional port and path prefix (for a
    site served under ``/campaign``) are kept; credentials, a query or a fragment are
    refused, since every link would carry them.
    """
    parts = urlsplit((base_url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BaseURLError(
            f"BASE_URL must be an http:// or https:// address with a host, not {base_url!r}"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise BaseURLError(
            f"BASE_URL must not contain a user name, password, query or fragment: {base_url!r}"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise BaseURLError(f"BASE_URL has an invalid port: {base_url!r}") from exc
    return parts


def _adapter() -> MapAdapter:
    base = parse_base_url(current_app.config["BASE_URL"])
    host = base.netloc
    if base.port == {"http": 80, "https": 443}[base.scheme]:
        host = host.rpartition(":")[0]
    return current_app.url_map.bind(
        host, script_name=base.path.rstrip("/") or "/", url_scheme=base.scheme
    )


def external_url(endpoint: str, /, **values: Any) -> str:
    """The absolute URL of ``endpoint`` under ``BASE_URL``; never from the request.

    Takes the same values as ``url_for`` (the route's arguments, extra ones become the
    query string, ``_anchor`` a fragment); the endpoint must be the full
    ``blueprint.view`` name, since there may be no request to resolve a relative one.
    """
    anchor = values.pop("_anchor", None)
    current_app.inject_url_defaults(endpoint, values)
    url = _adapter().build(endpoint, values, force_external=True)
    if anchor is not None:
        url += "#" + quote(str(anchor), safe="%!#$&'()*+,/:;=?@")
    return url
