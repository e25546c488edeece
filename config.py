"""Settings for Campaign, as plain class attributes read from the environment.

Three profiles: ``development`` (the embedded default: SQLite in the instance folder,
mail written to files, no other service), ``testing`` and ``production``. Choose one
with ``CAMPAIGN_ENV``; every secret and URL comes from the environment.
"""

from __future__ import annotations

import os
from datetime import timedelta
from urllib.parse import urlsplit


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str) -> list[str]:
    """A comma-separated setting as a list, blanks dropped."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def trusted_hosts(base_url: str | None, extra: list[str] | None = None) -> list[str]:
    """The host names a request may name in ``Host``: ``BASE_URL``'s, then ``extra``.

    Ports are not part of the check (Werkzeug ignores them); a leading dot allows every
    subdomain, as in Werkzeug. A request naming any other host is refused with a 400.
    """

    hosts = [urlsplit(base_url or "").hostname or ""]
    for item in extra or []:
        host = item.strip().lower()
        if not host or "/" in host or ":" in host or "@" in host:
            raise RuntimeError(
                f"TRUSTED_HOSTS lists host names only (no scheme, port or path): {item!r}"
            )
        hosts.append(host)
    return list(dict.fromkeys(host for host in hosts if host))


# "Remember me" never lasts longer than this, whatever REMEMBER_DAYS says.
REMEMBER_MAX_DAYS = 30


def web_workers() -> int:
    """How many web worker processes run: WEB_WORKERS, else WEB_CONCURRENCY, else 1.

    gunicorn.conf.py starts exactly this many, and create_app() reads the same number
    to refuse per-process (``memory://``) rate-limit storage when there are several.
    """
    return env_int("WEB_WORKERS", env_int("WEB_CONCURRENCY", 1))


class BaseConfig:
    ENV_NAME = "base"
    SECRET_KEY = os.environ.get("SECRET_KEY")
    # Comma-separated "kid:base64key" pairs, the first one encrypts; all decrypt.
    ENCRYPTION_KEYS = os.environ.get("ENCRYPTION_KEYS")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}

    SITE_NAME = os.environ.get("SITE_NAME", "Campaign")
    # Every emailed, exported or calendar link is built from this, never from the request
    # (campaign.core.links.external_url). A path prefix ("https://x.org/campaign") is kept.
    BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:5000")
    # Hosts a request may name besides BASE_URL's own (comma separated). In production
    # create_app() always applies the list (BASE_URL's host first) as Flask's
    # TRUSTED_HOSTS, so a request with any other Host is refused; elsewhere only when set.
    TRUSTED_HOSTS: list[str] | None = env_list("TRUSTED_HOSTS") or None
    TIMEZONE = os.environ.get("TIMEZONE", "Europe/London")

    # Uploads and request bodies: Flask's default is unlimited.
    MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 16 * 1024 * 1024)

    # Mail. MAIL_BACKEND is "smtp" (a relay) or "file" (written to MAIL_FILE_DIR).
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "smtp")
    MAIL_FILE_DIR = os.environ.get("MAIL_FILE_DIR")
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "localhost")
    MAIL_PORT = env_int("MAIL_PORT", 25)
    MAIL_USE_TLS = env_bool("MAIL_USE_TLS")
    MAIL_USE_SSL = env_bool("MAIL_USE_SSL")
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "Campaign <noreply@localhost>")
    # Stranger-triggered mail (confirmations, invitations): at most this many per address a day.
    MAIL_STRANGER_DAILY_LIMIT = env_int("MAIL_STRANGER_DAILY_LIMIT", 5)
    # Delivery: rows claimed per batch (one SMTP connection each), how long a claim lasts
    # before another worker may take it over, and an optional cap in messages a second.
    MAIL_BATCH_SIZE = env_int("MAIL_BATCH_SIZE", 200)
    MAIL_LEASE_SECONDS = env_int("MAIL_LEASE_SECONDS", 300)
    MAIL_RATE_PER_SECOND = float(os.environ.get("MAIL_RATE_PER_SECOND") or 0)
    # First pause when the relay throttles us; doubles on each repeat, up to 16 times.
    MAIL_THROTTLE_PAUSE_SECONDS = env_int("MAIL_THROTTLE_PAUSE_SECONDS", 60)
    # A worker renews its claim (lease and heartbeat) this often while it sends; rows of a
    # worker silent for three intervals are taken over by another.
    MAIL_HEARTBEAT_SECONDS = float(os.environ.get("MAIL_HEARTBEAT_SECONDS") or 2)
    # This many 4xx answers to RCPT in a row in one lane is throttling: the lane pauses.
    MAIL_RCPT_DEFERRALS_TO_PAUSE = env_int("MAIL_RCPT_DEFERRALS_TO_PAUSE", 5)
    # The relay offers SMTPUTF8 (international addresses). Off: addresses with non-ASCII
    # letters before the @ are refused when they are entered.
    MAIL_SMTPUTF8 = env_bool("MAIL_SMTPUTF8", True)

    # Background work. Without a broker, tasks run in-process after the commit.
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL")
    CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND")
    # How often beat delivers due mail and queues due sends, and queues due reminders.
    BEAT_DELIVERY_SECONDS = env_int("BEAT_DELIVERY_SECONDS", 60)
    BEAT_REMINDER_SECONDS = env_int("BEAT_REMINDER_SECONDS", 300)
    # A running background job silent this long lost its worker: beat starts it again
    # (it carries on after its last committed chunk).
    JOB_STALE_SECONDS = env_int("JOB_STALE_SECONDS", 120)

    # Sessions and cookies.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
    PERMANENT_SESSION_LIFETIME = timedelta(hours=env_int("SESSION_HOURS", 12))
    REMEMBER_COOKIE_DURATION = timedelta(
        days=max(1, min(env_int("REMEMBER_DAYS", 14), REMEMBER_MAX_DAYS))
    )
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)

    WTF_CSRF_TIME_LIMIT = 8 * 3600

    RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_HEADERS_ENABLED = True
    # Login attempts per client address (any account).
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "10 per minute;50 per hour")
    # Wrong passwords or two-factor codes for one account from one address before that
    # address is locked out of that account; the lock doubles each time (up to a day).
    LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 6)
    LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15)
    # Failures for one account from all addresses together before the whole account is
    # locked: briefly, a little longer each time (up to 30 minutes), so that strangers
    # cannot keep the owner out for long.
    LOGIN_ACCOUNT_MAX_FAILURES = env_int("LOGIN_ACCOUNT_MAX_FAILURES", 30)
    LOGIN_ACCOUNT_LOCKOUT_MINUTES = env_int("LOGIN_ACCOUNT_LOCKOUT_MINUTES", 2)

    # Reverse proxies in front of the app that add X-Forwarded-For / -Proto (0: none,
    # the headers are ignored). Links never come from the request: see BASE_URL.
    TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)
    # Web worker processes (gunicorn.conf.py starts this many).
    WEB_WORKERS = web_workers()

    PASSWORD_RESET_MAX_AGE = env_int("PASSWORD_RESET_MAX_AGE", 3600)
    EMAIL_CONFIRM_MAX_AGE = env_int("EMAIL_CONFIRM_MAX_AGE", 3 * 24 * 3600)
    INVITATION_DAYS = env_int("INVITATION_DAYS", 14)

    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "UTC"

    # HSTS and other production-only hardening.
    SEND_HSTS = False
    # The development mail outbox page (never in production).
    DEV_OUTBOX_PAGE = False
    PER_PAGE = 25

    # Operations: JSON request logs on stderr; where uploaded files live (default
    # <instance>/uploads).
    REQUEST_LOGS = env_bool("REQUEST_LOGS", False)
    UPLOADS_DIR = os.environ.get("UPLOADS_DIR")


class DevelopmentConfig(BaseConfig):
    """The embedded default: SQLite and files in the instance folder, nothing else to run."""

    ENV_NAME = "development"
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "file")
    DEV_OUTBOX_PAGE = True


class TestingConfig(BaseConfig):
    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "testing-secret-key-not-for-production"  # noqa: S105
    ENCRYPTION_KEYS = "t1:" + "dGVzdGluZy1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcyE="
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL")
    MAIL_BACKEND = "file"
    RATELIMIT_ENABLED = False
    CELERY_BROKER_URL = None
    DEV_OUTBOX_PAGE = True
    BASE_URL = "http://localhost"
    # Fewer argon2 rounds keep the suite fast; production uses the library defaults.
    PASSWORD_HASH_FAST = True


class ProductionConfig(BaseConfig):
    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    REMEMBER_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    SEND_HSTS = env_bool("SEND_HSTS", True)
    PREFERRED_URL_SCHEME = "https"
    REQUEST_LOGS = env_bool("REQUEST_LOGS", True)
    # Required: links in mail, and the hosts requests may name, come from it.
    BASE_URL = os.environ.get("BASE_URL")


CONFIGS: dict[str, type[BaseConfig]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_for(name: str | None) -> type[BaseConfig]:
    """Return the settings class for ``name`` (default: ``CAMPAIGN_ENV`` or development)."""
    name = name or os.environ.get("CAMPAIGN_ENV", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(
            f"Unknown CAMPAIGN_ENV {name!r}; use one of {', '.join(CONFIGS)}"
        ) from None
