"""The audit log for platform admins, and the development-only mail outbox."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from campaign.accounts import services as account_services
from campaign.accounts.forms import ConfirmForm
from campaign.accounts.models import User
from campaign.core.addresses import normalise_email
from campaign.core.audit import AuditEvent
from campaign.core.outbox import mail_file_dir
from campaign.core.pagination import paginate
from campaign.core.permissions import admin_required
from campaign.extensions import db

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/audit")
@admin_required
def audit_log() -> str:
    """Security-relevant events, newest first."""
    page = paginate(select(AuditEvent).order_by(AuditEvent.id.desc()), per_page=50)
    return render_template("admin/audit.html", page=page)


def _read_mail(limit: int = 50) -> list[dict]:
    directory = mail_file_dir()
    if not directory.is_dir():
        return []
    files = sorted(directory.glob("*.eml"), reverse=True)[:limit]
    messages = []
    for path in files:
        msg: EmailMessage = message_from_bytes(path.read_bytes(), policy=policy.default)
        body = msg.get_body(preferencelist=("plain",))
        messages.append(
            {
                "name": path.name,
                "to": msg["To"],
                "subject": msg["Subject"],
                "date": msg["Date"],
                "text": body.get_content() if body else "",
            }
        )
    return messages


@bp.route("/outbox")
@admin_required
def dev_outbox() -> str:
    """Development only: the mail the embedded default wrote to files, to click links."""
    if (
        not current_app.config.get("DEV_OUTBOX_PAGE")
        or current_app.config["MAIL_BACKEND"] != "file"
    ):
        abort(404)
    return render_template("admin/outbox.html", messages=_read_mail())


@bp.route("/users")
@admin_required
def users() -> tuple[str, int]:
    """Find one account by its exact email address (to help someone locked out of 2FA)."""
    query = (request.args.get("email") or "").strip()
    found, problem = None, None
    if len(query) > 320:
        problem = _("That is too long to be an email address.")
    elif query:
        try:
            found = account_services.user_by_email(normalise_email(query))
        except ValueError:
            problem = _("Enter an email address like name@example.org.")
        else:
            if found is None:
                problem = _("No account uses that address.")
    return render_template(
        "admin/users.html",
        query=query,
        found=found,
        problem=problem,
        codes_left=account_services.recovery_codes_left(found) if found else 0,
    ), (400 if len(query) > 320 else 200)


@bp.route("/users/<int:user_id>/two-factor-reset", methods=["GET", "POST"])
@admin_required
def reset_two_factor(user_id: int) -> Response | str:
    """Turn off someone's two-factor after checking who they are: a page, then a POST."""
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            account_services.reset_two_factor_by_admin(current_user, user)
        except account_services.AccountError as exc:
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(
                _("Two-factor authentication is off for %(email)s; they have been emailed.",
                  email=user.email),
                "success",
            )  # fmt: skip
        return redirect(url_for("admin.users", email=user.email))
    return render_template("admin/reset_two_factor.html", form=form, user=user)
