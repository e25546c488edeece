"""Campaign: an organising platform for grassroots health-justice groups.

``create_app()`` builds the application: settings, extensions, blueprints, security
headers, error pages and CLI commands.
"""

from __future__ import annotations

import inspect
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, render_template, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from config import config_for

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent


def resource_dir(name: str) -> Path:
    """``templates``, ``static`` or ``migrations``: beside the package in a checkout,
    bundled inside it in an installed wheel."""
    bundled = PACKAGE_DIR / "_bundled" / name
    return bundled if bundled.is_dir() else SOURCE_ROOT / name


def create_app(config_name: str | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    settings = config_for(config_name)
    app = Flask(
        __name__,
        instance_path=os.environ.get("CAMPAIGN_INSTANCE_PATH") or None,
        instance_relative_config=True,
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
    )
    app.config.from_object(settings)
    if test_config:
        app.config.update(test_config)
    _prepare_instance(app)
    _check_settings(app)

    _init_extensions(app)
    _register_blueprints(app)
    _register_hooks(app)
    _register_error_pages(app)

    from campaign.cli import register_cli

    register_cli(app)
    return app


def _prepare_instance(app: Flask) -> None:
    """The embedded default keeps its database, secrets and mail in the instance folder."""
    if app.config["ENV_NAME"] == "production":
        return
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'campaign.db'}"
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(instance / "secret_key", secrets.token_hex(32))
    if not app.config.get("ENCRYPTION_KEYS"):
        from campaign.core.crypto import new_key_spec

        app.config["ENCRYPTION_KEYS"] = _instance_secret(
            instance / "encryption_keys", new_key_spec("dev1")
        )


def _instance_secret(path: Path, fresh: str) -> str:
    """Read a secret kept in the instance folder, creating it (mode 0600) the first time."""
    if path.exists():
        return path.read_text().strip()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(fresh)
    return fresh


def _check_settings(app: Flask) -> None:
    missing = [
        name
        for name in ("SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "ENCRYPTION_KEYS")
        if not app.config.get(name)
    ]
    if missing:
        env_names = {"SQLALCHEMY_DATABASE_URI": "DATABASE_URL"}
        raise RuntimeError(
            "Campaign cannot start: set "
            + ", ".join(env_names.get(name, name) for name in missing)
            + " in the environment (see README, 'Configuration')."
        )
    if app.config["ENV_NAME"] == "production" and len(app.config["SECRET_KEY"]) < 32:
        raise RuntimeError("SECRET_KEY must be at least 32 characters in production.")
    if app.config["ENV_NAME"] == "production" and not app.config.get("CELERY_BROKER_URL"):
        # Without a broker, mail would be sent inside the web request.
        raise RuntimeError(
            "Campaign cannot start in production without CELERY_BROKER_URL (the Redis "
            "that carries delivery and other background work; see README, 'Configuration')."
        )
    app.config["SQLALCHEMY_ENGINES"] = {
        "default": {
            "url": app.config["SQLALCHEMY_DATABASE_URI"],
            **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
        }
    }
    app.debug = app.debug and app.config["ENV_NAME"] != "production"


def _init_extensions(app: Flask) -> None:
    from campaign.accounts.services import user_by_session_token
    from campaign.core.tasks import celery_init_app
    from campaign.extensions import babel, csrf, db, limiter, login_manager, mail

    db.init_app(app)
    # We use no async sessions; dropping the async teardown keeps every teardown plain
    # (and independent of any event loop a test harness may be running).
    app.teardown_appcontext_funcs[:] = [
        func for func in app.teardown_appcontext_funcs if not inspect.iscoroutinefunction(func)
    ]
    with app.app_context():
        _tune_engine(db.engine)
    csrf.init_app(app)
    mail.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=lambda: "en")
    celery_init_app(app)

    login_manager.init_app(app)
    login_manager.session_protection = "strong"
    login_manager.login_view = "accounts.login"
    login_manager.login_message = _("Please log in to see that page.")
    login_manager.login_message_category = "info"
    login_manager.user_loader(user_by_session_token)


def _tune_engine(engine: Any) -> None:
    """SQLite: WAL, a busy timeout, foreign keys, and writers taking the lock up front."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        from flask import has_request_context

        reading = has_request_context() and request.method in ("GET", "HEAD")
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


class _RowId(IntegerConverter):
    """``<int:...>`` in our URLs is a row id: 1 to 2**31-1. Anything larger is a 404,
    not a database overflow error."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def _register_blueprints(app: Flask) -> None:
    app.url_map.converters["int"] = _RowId
    from campaign.accounts.views import bp as accounts_bp
    from campaign.actions import tasks as action_tasks  # noqa: F401 - the reminder task
    from campaign.actions.views import bp as actions_bp
    from campaign.admin.views import bp as admin_bp
    from campaign.groups.views import bp as groups_bp
    from campaign.mailing.views import bp as mailing_bp
    from campaign.people import bounces  # noqa: F401 - suppresses refused addresses
    from campaign.people.views import bp as people_bp

    app.register_blueprint(accounts_bp)
    app.register_blueprint(groups_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(people_bp)
    app.register_blueprint(mailing_bp)
    app.register_blueprint(actions_bp)


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _register_hooks(app: Flask) -> None:
    from campaign.core.outbox import dispatch_if_committed
    from campaign.core.permissions import enforce_login
    from campaign.core.text import local_time, render_markdown

    app.before_request(enforce_login)

    @app.after_request
    def _after(response):  # noqa: ANN001, ANN202
        dispatch_if_committed()
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if app.config["SEND_HSTS"]:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if current_user and current_user.is_authenticated:
            headers.setdefault("Cache-Control", "no-store")
        return response

    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.filters["markdown"] = render_markdown
    # Delivery state for the sent-mail report: why a send is paused, who may have had
    # a second copy.
    from campaign.core.outbox import delivery_problem, possible_repeats

    app.jinja_env.globals.update(
        delivery_problem=delivery_problem, possible_repeats=possible_repeats
    )

    @app.context_processor
    def _navigation() -> dict[str, Any]:
        from campaign.groups.services import groups_of

        memberships = groups_of(current_user) if current_user.is_authenticated else []
        return {
            "nav_memberships": memberships,
            "site_name": app.config["SITE_NAME"],
            "dev_outbox": app.config.get("DEV_OUTBOX_PAGE")
            and app.config["MAIL_BACKEND"] == "file",
        }


ERROR_TEXT = {
    400: ("Something was wrong with that request", "Please go back and try again."),
    401: ("Please log in", "You need to be logged in to do that."),
    403: ("Not allowed", "Your role in this group does not allow that."),
    404: ("Page not found", "There is nothing here, or you do not have access to it."),
    405: ("Not allowed", "That page cannot be used this way."),
    413: ("Too large", "What you sent is too large. Try a smaller file or shorter text."),
    429: ("Too many attempts", "Please wait a few minutes and try again."),
    500: ("Something went wrong", "The problem is ours. Please try again in a little while."),
}


def _register_error_pages(app: Flask) -> None:
    def render_error(code: int, detail: str | None = None) -> tuple[str, int]:
        title, text = ERROR_TEXT.get(code, ERROR_TEXT[400])
        return render_template(
            "errors/error.html", code=code, title=_(title), text=detail or _(text)
        ), code

    @app.errorhandler(CSRFError)
    def _csrf(_exc: CSRFError) -> tuple[str, int]:
        return render_error(
            400, _("The form had expired or was not sent from this site. Please try again.")
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if exc.code is None or exc.code < 400:
            return exc
        detail = None
        if exc.code == 403 and exc.description == "two-factor-required":
            detail = _(
                "This group requires two-factor authentication for casework. "
                "Turn it on in your account settings."
            )
        return render_error(exc.code, detail)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[str, int]:
        app.logger.exception("unhandled error")
        from campaign.extensions import db

        db.session.rollback()
        return render_error(500)
