"""Transports: an SMTP relay, or .eml files for the embedded default."""

from __future__ import annotations

import smtplib
from email.utils import parseaddr
from pathlib import Path

from flask import current_app

from campaign.core.outbox.models import OutboxMessage
from campaign.extensions import mail


class _FileTransport:
    """Writes each message as an .eml file: the embedded default's 'relay'."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def send(self, row: OutboxMessage, raw: bytes) -> None:
        stamp = row.created_at.strftime("%Y%m%dT%H%M%S")
        path = self.directory / f"{stamp}-{row.id:08d}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(raw)
        tmp.replace(path)

    def close(self) -> None:
        pass


class _SMTPTransport:
    """One reused SMTP connection for a whole batch."""

    def __init__(self) -> None:
        self.connection = mail.connect()
        self.connection.mail.suppress = False
        self.host = self.connection.configure_host()

    def send(self, row: OutboxMessage, raw: bytes) -> None:
        envelope_from = parseaddr(row.from_addr)[1]
        self.host.sendmail(envelope_from, [row.to_addr], raw)

    def close(self) -> None:
        try:
            self.host.quit()
        except smtplib.SMTPException:
            self.host.close()


def mail_file_dir() -> Path:
    configured = current_app.config.get("MAIL_FILE_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "mail"


def _transport() -> _FileTransport | _SMTPTransport:
    if current_app.config["MAIL_BACKEND"] == "file":
        return _FileTransport(mail_file_dir())
    return _SMTPTransport()


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    return isinstance(exc, OSError | smtplib.SMTPServerDisconnected)


def _is_throttling(exc: Exception) -> bool:
    """The relay, not one recipient, says 'not now': 421, a 4xx to MAIL or DATA, or a
    dropped connection. The whole send pauses. (A 4xx to one RCPT, such as greylisting,
    only delays that recipient.)"""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return False
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, OSError | smtplib.SMTPServerDisconnected)
