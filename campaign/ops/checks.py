"""What `flask check` looks at: is this configuration fit to run in production?

Each check returns a list of findings, one line each, saying exactly what is wrong and
what to set. Configuration checks read only the settings; connection checks reach the
database, the broker and the mail relay with short timeouts, so a wrong host fails in
seconds rather than hanging the command.
"""

from __future__ import annotations

import base64
import smtplib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

CONNECT_TIMEOUT = 5


@dataclass(frozen=True)
class Finding:
    """One check's outcome: ``ok`` False means the deployment should not go live."""

    check: str
    ok: bool
    message: str


def _key_lengths(spec: str) -> list[tuple[str, int | None]]:
    """``kid:base64`` pairs → (kid, decoded length or None when it does not decode)."""
    pairs = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kid, _, encoded = item.partition(":")
        padded = encoded + "=" * (-len(encoded) % 4)
        try:
            pairs.append((kid, len(base64.urlsafe_b64decode(padded))))
        except ValueError:
            pairs.append((kid, None))
    return pairs


def worker_count(config: Mapping[str, Any]) -> int:
    """How many web worker processes this deployment runs (WEB_WORKERS, which
    gunicorn.conf.py starts)."""
    value = config.get("WEB_WORKERS") or "1"
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


def config_findings(config: Mapping[str, Any]) -> list[Finding]:
    """Problems visible in the settings alone (no connections made)."""
    findings: list[Finding] = []

    def add(check: str, ok: bool, message: str) -> None:
        findings.append(Finding(check, ok, message))

    secret = config.get("SECRET_KEY") or ""
    if not secret:
        add("secret key", False, "SECRET_KEY is not set.")
    elif len(secret) < 32:
        add("secret key", False, f"SECRET_KEY is {len(secret)} characters; use at least 32.")
    else:
        add("secret key", True, "SECRET_KEY is set and long enough.")

    keys = _key_lengths(config.get("ENCRYPTION_KEYS") or "")
    if not keys:
        add("encryption keys", False, "ENCRYPTION_KEYS is not set.")
    else:
        bad = [kid or "(no id)" for kid, length in keys if length != 32]
        if bad:
            add(
                "encryption keys",
                False,
                "ENCRYPTION_KEYS: key " + ", ".join(bad) + " is not 32 bytes of base64.",
            )
        else:
            add("encryption keys", True, f"{len(keys)} encryption key(s), 32 bytes each.")

    base_url = config.get("BASE_URL") or ""
    parts = urlsplit(base_url)
    if parts.scheme != "https" or not parts.hostname:
        add(
            "base URL",
            False,
            f"BASE_URL is {base_url or 'not set'}; emailed links need https://your.host.",
        )
    else:
        add("base URL", True, f"Links in mail point at {base_url}.")

    trusted = config.get("TRUSTED_HOSTS")
    if not trusted:
        add("trusted hosts", False, "TRUSTED_HOSTS is empty: requests for any Host are served.")
    else:
        add("trusted hosts", True, "Requests are served for " + ", ".join(trusted) + ".")

    hops = config.get("TRUSTED_PROXY_HOPS")
    if hops is None:
        add("proxy", False, "TRUSTED_PROXY_HOPS is not configured.")
    elif int(hops) < 1:
        add(
            "proxy",
            False,
            "TRUSTED_PROXY_HOPS is 0: behind a reverse proxy every visitor shares one "
            "address for rate limits. Set it to the number of proxies in front (usually 1).",
        )
    else:
        add("proxy", True, f"Client addresses are read through {hops} trusted proxy hop(s).")

    storage = config.get("RATELIMIT_STORAGE_URI") or "memory://"
    workers = worker_count(config)
    if storage.startswith("memory://") and workers > 1 and config.get("RATELIMIT_ENABLED", True):
        add(
            "rate limits",
            False,
            f"RATELIMIT_STORAGE_URI is memory:// with {workers} web workers (WEB_WORKERS / "
            "WEB_CONCURRENCY): each would count login and sign-up attempts on its own. "
            "Use a redis:// URL (docs/operations.md, 'Limits behind a proxy').",
        )
    else:
        add("rate limits", True, f"Rate limits are kept in {urlsplit(storage).scheme}://.")

    if not config.get("CELERY_BROKER_URL"):
        add(
            "broker",
            False,
            "CELERY_BROKER_URL is not set: production needs a broker (e.g. redis://) "
            "for mail delivery, reminders and long jobs.",
        )
    return findings


# Findings so serious that production refuses to start (``flask check`` still lists them).
STARTUP_CHECKS = {"secret key", "encryption keys", "rate limits", "broker"}


def startup_problems(config: Mapping[str, Any]) -> list[str]:
    """The reasons production must not start with these settings (empty: it may)."""
    return [f.message for f in config_findings(config) if not f.ok and f.check in STARTUP_CHECKS]


def _database(app: Any) -> Finding:
    from campaign.core.migrations import current_revision, head_revision
    from campaign.extensions import db

    try:
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return Finding("database", False, f"Database unreachable: {type(exc).__name__}.")
    current, head = current_revision(), head_revision()
    if current != head:
        return Finding(
            "database",
            False,
            f"Database schema is at {current or 'nothing'}, code expects {head}: "
            "run `flask db upgrade`.",
        )
    return Finding("database", True, f"Database reachable, schema at {head}.")


def broker_reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when the broker answers; otherwise why not."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


def _broker(app: Any) -> Finding | None:
    url = app.config.get("CELERY_BROKER_URL")
    if not url:
        return None
    problem = broker_reachable(url)
    if problem:
        return Finding("broker", False, f"Broker {_safe_url(url)} unreachable: {problem}")
    return Finding("broker", True, f"Broker {_safe_url(url)} answers.")


def _mail_relay(app: Any) -> Finding:
    config = app.config
    if config.get("MAIL_BACKEND") != "smtp":
        return Finding(
            "mail relay",
            False,
            f"MAIL_BACKEND is {config.get('MAIL_BACKEND')}: no mail leaves this server.",
        )
    host, port = config.get("MAIL_SERVER"), int(config.get("MAIL_PORT") or 25)
    smtp_class = smtplib.SMTP_SSL if config.get("MAIL_USE_SSL") else smtplib.SMTP
    try:
        with smtp_class(host, port, timeout=CONNECT_TIMEOUT) as relay:
            relay.ehlo()
            if config.get("MAIL_USE_TLS"):
                relay.starttls()
                relay.ehlo()
            if config.get("MAIL_USERNAME"):
                relay.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
            code, _ = relay.noop()
    except (OSError, smtplib.SMTPException) as exc:
        return Finding("mail relay", False, f"Mail relay {host}:{port} did not answer: {exc}"[:300])
    if code != 250:
        return Finding("mail relay", False, f"Mail relay {host}:{port} answered {code}.")
    return Finding("mail relay", True, f"Mail relay {host}:{port} answers.")


def _safe_url(url: str) -> str:
    """A URL without its password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


CONNECTION_CHECKS: list[Callable[[Any], Finding | None]] = [_database, _broker, _mail_relay]


def run_checks(app: Any) -> list[Finding]:
    """Every check, in order; call inside an app context."""
    findings = config_findings(app.config)
    for check in CONNECTION_CHECKS:
        try:
            finding = check(app)
        except (TimeoutError, OSError) as exc:  # a check must never crash the command
            finding = Finding(check.__name__.strip("_"), False, str(exc))
        if finding is not None:
            findings.append(finding)
    return findings
