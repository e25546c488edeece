"""Deny by default: every view needs a logged-in user unless it is marked ``@public``.

Group-scoped checks live in ``campaign.groups.access.load_group``; platform-wide ones
(``admin_required``) live here. ``enforce_login`` runs before every request, so a new
view that forgets to declare itself is closed, not open.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import abort, current_app, redirect, request, url_for
from flask_login import current_user

F = TypeVar("F", bound=Callable)

# Endpoints Flask itself adds, which serve no data of ours.
_BUILTIN_PUBLIC = {"static"}


def public(view: F) -> F:
    """Mark a view as open to anonymous visitors."""
    view.is_public = True  # type: ignore[attr-defined]
    return view


def is_public_endpoint(endpoint: str | None) -> bool:
    if endpoint is None or endpoint in _BUILTIN_PUBLIC:
        return True
    view = current_app.view_functions.get(endpoint)
    return bool(getattr(view, "is_public", False))


def enforce_login():  # noqa: ANN201 - a before_request hook
    """Send anonymous visitors of non-public views to the login page."""
    if is_public_endpoint(request.endpoint) or current_user.is_authenticated:
        return None
    if request.method == "GET":
        return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))
    abort(401)


def admin_required(view: F) -> F:
    """Only platform admins; everyone else gets a 404, as if the page did not exist."""

    @wraps(view)
    def wrapper(*args, **kwargs):  # noqa: ANN202
        if not (current_user.is_authenticated and current_user.is_admin):
            abort(404)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def confirmed_required(view: F) -> F:
    """Only users who have confirmed their email address."""

    @wraps(view)
    def wrapper(*args, **kwargs):  # noqa: ANN202
        if not current_user.email_confirmed:
            from flask import flash
            from flask_babel import gettext as _

            flash(_("Please confirm your email address first: check your inbox."), "warning")
            return redirect(url_for("accounts.settings"))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
