"""The Flask extensions, created once and bound to the app in ``create_app``."""

from __future__ import annotations

from flask import request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_mail import Mail
from flask_sqlalchemy_lite import SQLAlchemy
from flask_wtf import CSRFProtect

db = SQLAlchemy(session_options={"expire_on_commit": False})
login_manager = LoginManager()
mail = Mail()
csrf = CSRFProtect()
babel = Babel()


def _client_address() -> str:
    """The client's address as the WSGI server saw it (a proxy must set it via ProxyFix)."""
    return request.remote_addr or "unknown"


limiter = Limiter(key_func=_client_address, default_limits=[])
