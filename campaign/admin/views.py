"""The audit log for platform admins, and the development-only mail outbox."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from flask import Blueprint, abort, current_app, render_template
from sqlalchemy import select

from campaign.core.audit import AuditEvent
from campaign.core.outbox import mail_file_dir
from campaign.core.pagination import paginate
from campaign.core.permissions import admin_required

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
