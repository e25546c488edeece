"""Transports: an SMTP relay read phase by phase, or .eml files for the embedded default.

The SMTP transport drives one transaction at a time with smtplib's own steps (MAIL,
RCPT, DATA) so that every reply is read knowing which command it answers (DESIGN rule
14): only a 5xx to RCPT is about the recipient; a 5xx to the greeting, AUTH, MAIL FROM
or DATA is about us or the message; a 4xx is "not now". After any failed transaction
the session is reset (RSET) before the next recipient.
"""

from __future__ import annotations

import enum
import re
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app

from campaign.extensions import mail


class Outcome(enum.StrEnum):
    SENT = "sent"
    RECIPIENT_REFUSED = "recipient-refused"  # 5xx to RCPT: this address, for good
    RECIPIENT_DEFERRED = "recipient-deferred"  # 4xx to RCPT: this address, not now
    REFUSED = "refused"  # 5xx to the greeting, AUTH, MAIL FROM or DATA
    THROTTLED = "throttled"  # 421 anywhere, 4xx to the greeting, MAIL FROM or DATA
    DISCONNECTED = "disconnected"  # the relay hung up (per-connection caps do)
    UNREACHABLE = "unreachable"  # no connection could be made
    NEEDS_SMTPUTF8 = "needs-smtputf8"  # non-ASCII address, relay without SMTPUTF8
    ERROR = "error"  # anything else: retried with backoff, never suppresses


@dataclass(slots=True)
class Result:
    outcome: Outcome
    phase: str = ""
    code: int = 0
    reply: str = ""

    def describe(self) -> str:
        """What the relay said, in its words, and to which command."""
        said = f"{self.code} {self.reply}".strip() if self.code else self.reply
        return f"{said} (in answer to {self.phase})" if self.phase else said


SENT = Result(Outcome.SENT)
_LEADING_DOT = re.compile(rb"(?m)^\.")


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return " ".join(reply.split())


def _classify(phase: str, code: int, reply: bytes | str) -> Result:
    """A refusal of the session or the message (not of one recipient)."""
    if code == 421 or 400 <= code < 500:
        return Result(Outcome.THROTTLED, phase, code, _text(reply))
    if 500 <= code < 600:
        return Result(Outcome.REFUSED, phase, code, _text(reply))
    return Result(Outcome.ERROR, phase, code, _text(reply))


def _classify_rcpt(code: int, reply: bytes | str) -> Result:
    if code == 421:  # the relay is closing the session: about us, not the recipient
        return Result(Outcome.THROTTLED, "RCPT TO", code, _text(reply))
    if code == 530:  # "authentication required" is about our account, not the address
        return Result(Outcome.REFUSED, "RCPT TO", code, _text(reply))
    if code == 503:  # bad sequence: our session is confused; reset and retry
        return Result(Outcome.ERROR, "RCPT TO", code, _text(reply))
    if 400 <= code < 500:
        return Result(Outcome.RECIPIENT_DEFERRED, "RCPT TO", code, _text(reply))
    if 500 <= code < 600:
        return Result(Outcome.RECIPIENT_REFUSED, "RCPT TO", code, _text(reply))
    return Result(Outcome.ERROR, "RCPT TO", code, _text(reply))


class FileTransport:
    """Writes each message as an .eml file: the embedded default's 'relay'."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def send(
        self,
        row: Any,
        envelope_from: str,
        to: str,
        raw: bytes,
        utf8: bool,
        while_waiting: Callable[[], None] | None = None,
    ) -> Result:
        stamp = row.created_at.strftime("%Y%m%dT%H%M%S")
        path = self.directory / f"{stamp}-{row.id:08d}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(raw)
        tmp.replace(path)
        return SENT

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


class SMTPTransport:
    """One SMTP connection, reused, reopened when the relay hangs up."""

    def __init__(self) -> None:
        self.smtp: smtplib.SMTP | None = None

    def _open(self) -> Result | None:
        """Connect, greet, STARTTLS and log in as configured; a Result on failure."""
        state = current_app.extensions["mail"]
        phase = "the connection"
        try:
            connection = mail.connect()
            connection.mail.suppress = False
            phase = "AUTH" if state.username and state.password else "the greeting"
            self.smtp = connection.configure_host()
            self.smtp.ehlo_or_helo_if_needed()
        except smtplib.SMTPResponseException as exc:
            self.close()
            return _classify(phase, exc.smtp_code, exc.smtp_error)
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            return Result(Outcome.UNREACHABLE, "", 0, f"{type(exc).__name__}: {exc}")
        return None

    def send(
        self,
        row: Any,
        envelope_from: str,
        to: str,
        raw: bytes,
        utf8: bool,
        while_waiting: Callable[[], None] | None = None,
    ) -> Result:
        """One transaction, each reply read against its command. ``while_waiting`` runs
        while the relay takes in the message and before its reply is read (the next
        message is built then, instead of after)."""
        if self.smtp is None:
            problem = self._open()
            if problem is not None:
                return problem
        smtp = self.smtp
        options: list[str] = []
        if utf8:
            if not smtp.has_extn("smtputf8"):
                return Result(
                    Outcome.NEEDS_SMTPUTF8,
                    "",
                    0,
                    "This address needs SMTPUTF8 (international email) and the relay "
                    "does not offer it.",
                )
            options = ["SMTPUTF8"]
            if smtp.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
        phase = "MAIL FROM"
        try:
            code, reply = smtp.mail(envelope_from, options)
            if code != 250:
                self.reset()
                return _classify(phase, code, reply)
            phase = "RCPT TO"
            code, reply = smtp.rcpt(to)
            if code not in (250, 251):
                self.reset()
                return _classify_rcpt(code, reply)
            phase = "DATA"
            code, reply = smtp.docmd("data")
            if code != 354:
                self.reset()
                return _classify(phase, code, reply)
            body = _LEADING_DOT.sub(b"..", raw)  # RFC 5321 4.5.2
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            smtp.send(body + b".\r\n")
            if while_waiting is not None:
                while_waiting()
            code, reply = smtp.getreply()
            if code != 250:
                self.reset()
                return _classify(phase, code, reply)
        except smtplib.SMTPResponseException as exc:
            self.close()
            return _classify(phase, exc.smtp_code, exc.smtp_error)
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self.close()
            return Result(Outcome.DISCONNECTED, phase, 0, f"{type(exc).__name__}: {exc}")
        return SENT

    def reset(self) -> None:
        """RSET after a failed transaction, so the next recipient starts clean; a relay
        that will not reset is hung up on (the next send reconnects)."""
        if self.smtp is None:
            return
        try:
            code, _reply = self.smtp.rset()
        except (OSError, smtplib.SMTPException):
            self.close()
            return
        if code != 250:
            self.close()

    def close(self) -> None:
        if self.smtp is None:
            return
        smtp, self.smtp = self.smtp, None
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def mail_file_dir() -> Path:
    configured = current_app.config.get("MAIL_FILE_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "mail"


def make_transport() -> FileTransport | SMTPTransport:
    if current_app.config["MAIL_BACKEND"] == "file":
        return FileTransport(mail_file_dir())
    return SMTPTransport()
