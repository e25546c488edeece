"""Account pages: register, confirm, log in (with two-factor), reset and change."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from campaign.accounts import services
from campaign.accounts.forms import (
    ChangeEmailForm,
    ChangePasswordForm,
    ConfirmForm,
    DisableTwoFactorForm,
    ForgotPasswordForm,
    LoginForm,
    RecoveryCodesForm,
    RegisterForm,
    ResetPasswordForm,
    TwoFactorForm,
)
from campaign.accounts.models import User
from campaign.core.forms import render_form
from campaign.core.permissions import public
from campaign.core.tokens import TokenError
from campaign.extensions import db, limiter

bp = Blueprint("accounts", __name__)

LOGIN_FAILED = (
    "That email and password did not match, or there have been too many attempts. "
    "Try again in a few minutes, or reset your password."
)
TWO_FACTOR_WINDOW = 300


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _safe_next(target: str | None) -> str:
    """Only same-site paths, so a crafted link cannot bounce people elsewhere."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and target.isprintable()
    ):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("groups.home")


def _token_problem(exc: TokenError) -> tuple[str, int]:
    message = exc.message(expired=_("This link has expired. Ask for a new one below."))
    return render_template("accounts/link_problem.html", message=message), 400


def _finish_login(user: User, remember: bool) -> None:
    """Rotate the session and log in: nothing from before login carries over.

    Each login is a row of its own (``user_sessions``) whose random token the cookies
    carry, so logging out can end exactly this one on the server.
    """
    session.clear()
    services.start_session(user, remember=remember, user_agent=request.headers.get("User-Agent"))
    login_user(user, remember=remember)
    services.record_login(user)


def _end_pending_second_step() -> None:
    for key in ("2fa_user", "2fa_until", "2fa_remember", "2fa_next"):
        session.pop(key, None)


@bp.route("/register", methods=["GET", "POST"])
@public
@limiter.limit(lambda: "20 per hour", methods=["POST"])
def register() -> Response | tuple[str, int]:
    """Anyone may create an account; the answer never reveals whether one existed."""
    if current_user.is_authenticated:
        return redirect(url_for("groups.home"))
    form = RegisterForm()
    if form.validate_on_submit():
        # Nobody is logged in here, new account or not: the next page must look the same
        # either way, so it cannot reveal which addresses have accounts.
        services.register(form.email.data, form.password.data, form.display_name.data)
        db.session.commit()
        flash(
            _("Check your email: we have sent a link to confirm your address."),
            "success",
        )
        next_url = request.args.get("next")
        return redirect(
            url_for("accounts.check_email", next=_safe_next(next_url) if next_url else None)
        )
    return render_form("accounts/register.html", form)


@bp.route("/check-email")
@public
def check_email() -> str:
    """Where people wait for a confirmation link (and find their way back to an invitation)."""
    next_url = request.args.get("next")
    return render_template(
        "accounts/check_email.html", next_url=_safe_next(next_url) if next_url else None
    )


@bp.route("/confirm/<token>", methods=["GET", "POST"])
@public
def confirm_email(token: str) -> Response | tuple[str, int] | str:
    """A GET shows one button; only the POST confirms (mail scanners follow links)."""
    try:
        user = services.check_confirmation(token)
    except TokenError as exc:
        return _token_problem(exc)
    form = ConfirmForm()
    if form.validate_on_submit():
        services.confirm_email(token)
        db.session.commit()
        flash(_("Thank you, your email address is confirmed."), "success")
        return redirect(
            url_for("groups.home") if current_user.is_authenticated else url_for("accounts.login")
        )
    return render_template("accounts/confirm.html", form=form, email=user.email)


@bp.route("/confirm/resend", methods=["POST"])
@limiter.limit("5 per hour")
def resend_confirmation() -> Response:
    """Send the confirmation link again to the logged-in user."""
    form = ConfirmForm()
    if form.validate_on_submit() and not current_user.email_confirmed:
        services.send_confirmation(current_user)
        db.session.commit()
        flash(_("We have sent the link again. It can take a few minutes to arrive."), "success")
    return redirect(url_for("accounts.settings"))


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
def login() -> Response | tuple[str, int]:
    """Log in by email and password, then a second factor when the user has one."""
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        result = services.authenticate(form.email.data, form.password.data, request.remote_addr)
        next_url = _safe_next(request.args.get("next"))
        if result.user is None:
            db.session.commit()  # keep the failure count and the audit row
            form.password.errors.append(_(LOGIN_FAILED))
            return render_form("accounts/login.html", form)
        if result.needs_second_factor:
            db.session.commit()
            session.clear()
            session["2fa_user"] = result.user.id
            session["2fa_until"] = time.time() + TWO_FACTOR_WINDOW
            session["2fa_remember"] = bool(form.remember.data)
            session["2fa_next"] = next_url
            return redirect(url_for("accounts.two_factor"))
        _finish_login(result.user, remember=bool(form.remember.data))
        db.session.commit()
        flash(_("You are logged in."), "success")
        return redirect(next_url)
    return render_form("accounts/login.html", form)


@bp.route("/login/two-factor", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
def two_factor() -> Response | tuple[str, int]:
    """The second step of login for users with two-factor turned on."""
    user_id = session.get("2fa_user")
    if not user_id or session.get("2fa_until", 0) < time.time():
        session.pop("2fa_user", None)
        flash(_("Please log in again."), "warning")
        return redirect(url_for("accounts.login"))
    user = db.session.get(User, user_id)
    if user is None:
        abort(400)
    form = TwoFactorForm()
    if form.validate_on_submit():
        result = services.check_second_factor(user, form.code.data, request.remote_addr)
        db.session.commit()  # keep the failure count and the audit rows, or the used code
        if result.ok:
            remember = session.get("2fa_remember", False)
            next_url = session.get("2fa_next") or url_for("groups.home")
            _finish_login(user, remember=remember)
            db.session.commit()
            flash(_("You are logged in."), "success")
            if result.used_recovery_code:
                flash(
                    _(
                        "You used a recovery code; %(left)d are left. Each works only once: "
                        "make new ones in your account settings.",
                        left=services.recovery_codes_left(user),
                    ),
                    "warning",
                )
            return redirect(_safe_next(next_url))
        if result.locked:
            _end_pending_second_step()
            flash(_(LOGIN_FAILED), "error")
            return redirect(url_for("accounts.login"))
        form.code.errors.append(
            _("That code did not match. Codes change every 30 seconds; a recovery code works once.")
        )
    return render_form("accounts/two_factor.html", form)


@bp.route("/logout", methods=["POST"])
@public
def logout() -> Response:
    """Log out of this device (a POST, so a link cannot log anyone out)."""
    form = ConfirmForm()
    if form.validate_on_submit():
        if current_user.is_authenticated:
            # Revoked on the server: a copy of this session or remember cookie is useless.
            services.end_session(current_user)
            db.session.commit()
        session.clear()
        logout_user()  # after clear(): it leaves the marker that deletes the remember cookie
        flash(_("You are logged out."), "success")
    return redirect(url_for("groups.directory"))


@bp.route("/forgot-password", methods=["GET", "POST"])
@public
@limiter.limit("10 per hour", methods=["POST"])
def forgot_password() -> Response | tuple[str, int]:
    """Ask for a reset link; the answer is the same whether or not the account exists."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        services.request_password_reset(form.email.data)
        db.session.commit()
        flash(
            _("If an account uses that address, we have sent it a link to set a new password."),
            "success",
        )
        return redirect(url_for("accounts.login"))
    return render_form("accounts/forgot_password.html", form)


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
@public
def reset_password(token: str) -> Response | tuple[str, int]:
    """Set a new password from an emailed link; the link works once."""
    try:
        services.check_reset_token(token)
    except TokenError as exc:
        return _token_problem(exc)
    form = ResetPasswordForm()
    if form.validate_on_submit():
        services.reset_password(token, form.password.data)
        db.session.commit()
        session.clear()
        logout_user()  # after clear(): it leaves the marker that deletes the remember cookie
        flash(_("Your password is changed. Log in with the new one."), "success")
        return redirect(url_for("accounts.login"))
    return render_form("accounts/reset_password.html", form)


def _settings_context() -> dict:
    return {
        "sessions": services.live_sessions(current_user),
        "current_session_id": current_user.current_session_id,
        "recovery_codes_left": services.recovery_codes_left(current_user),
    }


@bp.route("/account")
def settings() -> str:
    """The logged-in user's own settings, and the devices logged in to the account."""
    return render_template(
        "accounts/settings.html",
        password_form=ChangePasswordForm(prefix="pw"),
        email_form=ChangeEmailForm(prefix="em"),
        disable_form=DisableTwoFactorForm(prefix="tf"),
        codes_form=RecoveryCodesForm(prefix="rc"),
        plain_form=ConfirmForm(),
        **_settings_context(),
    )


def _settings_with(form_name: str, form: object) -> tuple[str, int]:
    forms = {
        "password_form": ChangePasswordForm(prefix="pw", formdata=None),
        "email_form": ChangeEmailForm(prefix="em", formdata=None),
        "disable_form": DisableTwoFactorForm(prefix="tf", formdata=None),
        "codes_form": RecoveryCodesForm(prefix="rc", formdata=None),
        "plain_form": ConfirmForm(formdata=None),
    }
    forms[form_name] = form
    return render_template("accounts/settings.html", **forms, **_settings_context()), 422


@bp.route("/account/password", methods=["POST"])
def change_password() -> Response | tuple[str, int]:
    """Change password; every other session is logged out."""
    form = ChangePasswordForm(prefix="pw")
    if form.validate_on_submit():
        try:
            services.change_password(
                current_user, form.current_password.data, form.new_password.data
            )
        except services.AccountError as exc:
            form.current_password.errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Your password is changed. Other devices have been logged out."), "success")
            return redirect(url_for("accounts.settings"))
    return _settings_with("password_form", form)


@bp.route("/account/email", methods=["POST"])
@limiter.limit("10 per hour")
def change_email() -> Response | tuple[str, int]:
    """Start an email change: the new address must confirm it."""
    form = ChangeEmailForm(prefix="em")
    if form.validate_on_submit():
        try:
            services.request_email_change(current_user, form.password.data, form.new_email.data)
        except services.AccountError as exc:
            form.password.errors.append(str(exc))
        except ValueError:
            form.new_email.errors.append(_("Enter an email address like name@example.org."))
        else:
            db.session.commit()
            flash(_("We have sent a link to the new address. Click it to finish."), "success")
            return redirect(url_for("accounts.settings"))
    return _settings_with("email_form", form)


@bp.route("/account/email/confirm/<token>", methods=["GET", "POST"])
@public
def confirm_email_change(token: str) -> Response | tuple[str, int] | str:
    """Finish an email change from the link sent to the new address."""
    try:
        user, new_email = services.check_email_change(token)
    except TokenError as exc:
        return _token_problem(exc)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            services.confirm_email_change(token)
        except services.AccountError as exc:
            flash(str(exc), "error")
            return redirect(url_for("accounts.login"))
        db.session.commit()
        flash(_("Your email address is changed."), "success")
        return redirect(url_for("accounts.login"))
    return render_template("accounts/confirm_email_change.html", form=form, new_email=new_email)


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
def setup_two_factor() -> Response | tuple[str, int]:
    """Turn on two-factor: scan the secret, then prove it with one code."""
    form = TwoFactorForm()
    if current_user.totp_enabled:
        return redirect(url_for("accounts.settings"))
    if request.method == "GET" or not current_user.totp_secret:
        services.begin_totp_setup(current_user)
        db.session.commit()
    if form.validate_on_submit():
        try:
            codes = services.enable_totp(current_user, form.code.data)
        except services.AccountError as exc:
            form.code.errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Two-factor authentication is on."), "success")
            # Shown once, in this response: only their hashes are kept.
            return render_template("accounts/recovery_codes.html", codes=codes)
    return render_form(
        "accounts/setup_two_factor.html",
        form,
        secret=services.totp_secret_for_display(current_user),
        uri=services.totp_provisioning_uri(current_user),
    )


@bp.route("/account/two-factor/disable", methods=["POST"])
def disable_two_factor() -> Response | tuple[str, int]:
    """Turn off two-factor (needs the password)."""
    form = DisableTwoFactorForm(prefix="tf")
    if form.validate_on_submit():
        try:
            services.disable_totp(current_user, form.password.data)
        except services.AccountError as exc:
            form.password.errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Two-factor authentication is off."), "success")
            return redirect(url_for("accounts.settings"))
    return _settings_with("disable_form", form)


@bp.route("/account/two-factor/recovery-codes", methods=["POST"])
def regenerate_recovery_codes() -> Response | str | tuple[str, int]:
    """Make ten new recovery codes (needs the password); the old ones stop working."""
    form = RecoveryCodesForm(prefix="rc")
    if not current_user.totp_enabled:
        flash(_("Turn on two-factor authentication first."), "error")
        return redirect(url_for("accounts.settings"))
    if form.validate_on_submit():
        try:
            codes = services.regenerate_recovery_codes(current_user, form.password.data)
        except services.AccountError as exc:
            form.password.errors.append(str(exc))
        else:
            db.session.commit()
            return render_template("accounts/recovery_codes.html", codes=codes)
    return _settings_with("codes_form", form)


@bp.route("/account/logout-other-devices", methods=["POST"])
def logout_other_devices() -> Response:
    """End every other session of this account; this device stays logged in."""
    form = ConfirmForm()
    if form.validate_on_submit():
        count = services.logout_other_devices(current_user)
        db.session.commit()
        flash(
            ngettext(
                "%(num)d other device was logged out.",
                "%(num)d other devices were logged out.",
                count,
            )
            if count
            else _("No other device was logged in."),
            "success",
        )
    return redirect(url_for("accounts.settings"))


@bp.route("/account/logout-everywhere", methods=["POST"])
def logout_everywhere() -> Response:
    """Log out every device, this one included."""
    form = ConfirmForm()
    if form.validate_on_submit():
        services.logout_everywhere(current_user)
        db.session.commit()
        session.clear()
        logout_user()  # after clear(): it leaves the marker that deletes the remember cookie
        flash(_("You are logged out on every device."), "success")
    return redirect(url_for("accounts.login"))
