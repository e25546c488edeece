"""People pages: the public 'get updates' form with double opt-in."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from campaign.core.forms import render_form
from campaign.core.permissions import public
from campaign.core.tokens import TokenError
from campaign.extensions import db, limiter
from campaign.groups.access import load_public_group
from campaign.people import services
from campaign.people.forms import ButtonForm, SubscribeForm

bp = Blueprint("people", __name__)


def _link_problem(exc: TokenError) -> tuple[str, int]:
    messages = {
        "expired": _("This link has expired. Please sign up again."),
        "used": _("This link has already been used."),
        "invalid": _("This link is not valid. Check you copied all of it."),
    }
    return render_template(
        "people/link_problem.html", message=messages.get(exc.reason, messages["invalid"])
    ), 400


@bp.route("/g/<slug>/subscribe", methods=["GET", "POST"])
@public
@limiter.limit("10 per hour", methods=["POST"])
def subscribe(slug: str) -> Response | tuple[str, int]:
    """Anyone asks for a group's email updates; a link confirms it (double opt-in)."""
    group = load_public_group(slug)
    wording = services.updates_wording(group)
    form = SubscribeForm()
    form.consent.label.text = wording
    if form.validate_on_submit():
        if not form.website.data:  # a bot filled the hidden field: say yes, do nothing
            try:
                services.request_subscription(
                    group, form.email.data, first_name=form.first_name.data or ""
                )
            except ValueError:
                form.email.errors.append(_("Enter an email address like name@example.org."))
                return render_form("people/subscribe.html", form, group=group)
            db.session.commit()
        return redirect(url_for("people.subscribe_sent", slug=slug))
    return render_form("people/subscribe.html", form, group=group)


@bp.route("/g/<slug>/subscribe/sent")
@public
def subscribe_sent(slug: str) -> str:
    """After the form: look in your inbox."""
    group = load_public_group(slug)
    return render_template("people/subscribe_sent.html", group=group)


@bp.route("/subscribe/confirm/<token>", methods=["GET", "POST"])
@public
def confirm_subscription(token: str) -> Response | tuple[str, int] | str:
    """The emailed link: a GET shows one button, the POST subscribes."""
    try:
        supporter = services.check_subscription_token(token)
    except TokenError as exc:
        return _link_problem(exc)
    group = supporter.group
    form = ButtonForm()
    if form.validate_on_submit():
        services.confirm_subscription(token)
        db.session.commit()
        flash(_("Thank you: you will get updates from %(name)s.", name=group.name), "success")
        return redirect(url_for("groups.public_page", slug=group.slug))
    return render_template("people/subscribe_confirm.html", form=form, group=group)
