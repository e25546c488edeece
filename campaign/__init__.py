"""Campaign: an organising platform for grassroots health-justice groups.

``create_app()`` builds the application: settings, extensions, blueprints, security
headers, error pages and CLI commands.
"""

from __future__ import annotations

import inspect
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from flask import Flask, Response, render_template, request
from flask.globals import request_ctx
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from werkzeug.exceptions import HTTPException, SecurityError
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
    _check_limits(app)
    trust_proxies(app)

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
    from campaign.core.links import BaseURLError, parse_base_url
    from config import trusted_hosts

    missing = [
        name
        for name in ("SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "ENCRYPTION_KEYS", "BASE_URL")
        if not app.config.get(name)
    ]
    if missing:
        env_names = {"SQLALCHEMY_DATABASE_URI": "DATABASE_URL"}
        raise RuntimeError(
            "Campaign cannot start: set "
            + ", ".join(env_names.get(name, name) for name in missing)
            + " in the environment (see README, 'Configuration')."
        )
    if app.config["ENV_NAME"] == "production":
        from campaign.ops.checks import startup_problems

        problems = startup_problems(app.config)
        if problems and not _running_flask_check():
            raise RuntimeError(
                "Campaign cannot start in production:\n  - " + "\n  - ".join(problems)
            )
    try:
        parse_base_url(app.config["BASE_URL"])
    except BaseURLError as exc:
        raise RuntimeError(f"Campaign cannot start: {exc}.") from None
    if app.config["ENV_NAME"] == "production" or app.config.get("TRUSTED_HOSTS"):
        app.config["TRUSTED_HOSTS"] = trusted_hosts(
            app.config["BASE_URL"], app.config.get("TRUSTED_HOSTS")
        )
    app.config["SQLALCHEMY_ENGINES"] = {
        "default": {
            "url": app.config["SQLALCHEMY_DATABASE_URI"],
            **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
        }
    }
    app.debug = app.debug and app.config["ENV_NAME"] != "production"


def _running_flask_check() -> bool:
    """``flask check`` must report on a configuration the app would refuse to start with."""
    if Path(sys.argv[0]).name != "flask":
        return False
    args = iter(sys.argv[1:])
    for arg in args:
        if arg in ("--app", "-A", "--env-file", "-e"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg == "check"
    return False


def _check_limits(app: Flask) -> None:
    """Remember me is capped (limits each worker would count alone are refused with the
    other fatal settings, by ``ops.checks.startup_problems``)."""
    from datetime import timedelta

    from config import REMEMBER_MAX_DAYS

    cap = timedelta(days=REMEMBER_MAX_DAYS)
    if app.config["REMEMBER_COOKIE_DURATION"] > cap:
        app.config["REMEMBER_COOKIE_DURATION"] = cap


def trust_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXY_HOPS reverse proxies, take the client address and scheme
    from X-Forwarded-For / X-Forwarded-Proto, so limits key on the real client.

    The host is never taken from a header: links come from BASE_URL.
    """
    from werkzeug.middleware.proxy_fix import ProxyFix

    hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops < 0:
        raise RuntimeError("TRUSTED_PROXY_HOPS must be 0 (no proxy) or more.")
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0)  # type: ignore[method-assign]


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
    from campaign.mailing import bounces  # noqa: F401 - suppresses refused addresses
    from campaign.mailing.views import bp as mailing_bp
    from campaign.people.views import bp as people_bp

    app.register_blueprint(accounts_bp)
    app.register_blueprint(groups_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(people_bp)
    app.register_blueprint(mailing_bp)
    app.register_blueprint(actions_bp)

    from campaign.ops.logs import init_request_logs
    from campaign.ops.views import bp as ops_bp

    app.register_blueprint(ops_bp)
    init_request_logs(app)


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _register_hooks(app: Flask) -> None:
    from campaign.core.links import external_url
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
    # Links meant to be shared or mailed come from BASE_URL, never the request's Host.
    app.jinja_env.globals["external_url"] = external_url
    # Delivery state for the sent-mail report: why a send is paused, who may have had
    # a second copy.
    from campaign.core.outbox import delivery_problem, possible_repeats

    app.jinja_env.globals.update(
        delivery_problem=delivery_problem, possible_repeats=possible_repeats
    )

    @app.context_processor
    def _navigation() -> dict[str, Any]:
        from campaign.groups.services import groups_of

        # No current_user outside a request: mail rendered by a task or a command.
        signed_in = bool(current_user) and current_user.is_authenticated
        memberships = groups_of(current_user) if signed_in else []
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
    def render_error(code: int, detail: str | None = None) -> Any:
        title, text = ERROR_TEXT.get(code, ERROR_TEXT[400])
        if request_ctx.url_adapter is None:
            # A request for a host we do not serve: no URL can be built, so no page.
            return app.response_class(f"{code} {title}\n", code, mimetype="text/plain")
        return render_template(
            "errors/error.html", code=code, title=_(title), text=detail or _(text)
        ), code

    @app.errorhandler(SecurityError)
    def _untrusted_host(_exc: SecurityError) -> Response:
        # A Host not in TRUSTED_HOSTS: Flask builds no URL adapter for it, so no page
        # with links can be rendered. Plain words, and nothing from the request.
        return Response(
            _("This site does not answer to that host name."), 400, mimetype="text/plain"
        )

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
