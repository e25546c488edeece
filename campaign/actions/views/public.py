"""Public action pages: the lists, an action's page and sign-up form, calendar files,
and the page behind the emailed link where a person changes or cancels their place."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from campaign.actions import services
from campaign.actions.calendar import action_ics as make_action_ics
from campaign.actions.calendar import feed_ics
from campaign.actions.forms_public import (
    KIND_LABELS,
    ActionFilterForm,
    ActionSignupForm,
    CancelSignupForm,
    SignupChangeForm,
)
from campaign.actions.models import Action, ActionSignup, ActionStatus, SignupStatus
from campaign.actions.views import bp
from campaign.core.addresses import normalise_email
from campaign.core.models import utcnow
from campaign.core.pagination import paginate
from campaign.core.permissions import public
from campaign.core.tokens import TokenError, make_token
from campaign.extensions import db, limiter
from campaign.groups.access import load_public_group
from campaign.groups.models import Group, GroupStatus

# Sign-ups one address may make across the platform in an hour before it is refused.
SIGNUPS_PER_ADDRESS_PER_HOUR = 5
FEED_PAST_DAYS = 30


# --- helpers -----------------------------------------------------------------------------------


def _going(actions: list[Action]) -> dict[int, int]:
    """Confirmed sign-ups per action, in one grouped query for the whole page."""
    if not actions:
        return {}
    rows = db.session.execute(
        select(ActionSignup.action_id, func.count(ActionSignup.id))
        .where(
            ActionSignup.action_id.in_([a.id for a in actions]),
            ActionSignup.status == SignupStatus.CONFIRMED,
        )
        .group_by(ActionSignup.action_id)
    ).all()
    return dict(rows)


def _upcoming(group: Group | None) -> sa.Select:
    """Published actions that have not ended, soonest first (one group, or approved groups)."""
    query = select(Action).where(Action.status == ActionStatus.PUBLISHED, Action.ends_at > utcnow())
    if group is not None:
        query = query.where(Action.group_id == group.id)
    else:
        query = query.join(Group, Group.id == Action.group_id).where(
            Group.status == GroupStatus.APPROVED
        )
    return query.order_by(Action.starts_at, Action.id)


def _list_page(template: str, group: Group | None, **context: object) -> tuple[str, int]:
    """A filtered, paginated list of upcoming actions; 400 when the filters are not valid."""
    form = ActionFilterForm(request.args)
    if not form.validate():
        return render_template(template, form=form, group=group, page=None, going={},
                               filter_args={}, kind_labels=KIND_LABELS, **context), 400  # fmt: skip
    query = _upcoming(group)
    if form.kind.data:
        query = query.where(Action.kind == form.kind.data)
    if form.area.data:
        query = query.where(func.lower(Action.area) == form.area.data.lower())
    page = paginate(query)
    filter_args = {k: v for k, v in (("kind", form.kind.data), ("area", form.area.data)) if v}
    return render_template(
        template,
        form=form,
        group=group,
        page=page,
        going=_going(page.items),
        filter_args=filter_args,
        kind_labels=KIND_LABELS,
        **context,
    ), 200


def _public_action(slug: str, action_id: int) -> tuple[Group, Action]:
    """An action of a public group; drafts do not exist for the public."""
    group = load_public_group(slug)
    action = services.get_action(group, action_id)
    if action is None or action.status == ActionStatus.DRAFT:
        abort(404)
    return group, action


def _recent_signups(email: str) -> int:
    since = utcnow() - timedelta(hours=1)
    return db.session.scalar(
        select(func.count(ActionSignup.id)).where(
            ActionSignup.email == email, ActionSignup.created_at >= since
        )
    )


def _link_problem(exc: TokenError) -> tuple[str, int]:
    message = exc.message(
        expired=_("This link has expired. Please sign up again from the action's page."),
        used=_("This link has already been used. Use the newest link we sent you."),
    )
    return render_template("people/link_problem.html", message=message), 400


def _manage_token(signup: ActionSignup) -> str:
    """The same token the service mails: good for the sign-up's current version only."""
    return make_token("signup", {"s": signup.id, "v": signup.version})


# --- lists -------------------------------------------------------------------------------------


@bp.route("/actions")
@public
def public_list_all() -> tuple[str, int]:
    """Anyone sees upcoming actions of every approved group, filtered by kind and area."""
    return _list_page("actions/public_list.html", None)


@bp.route("/g/<slug>/actions")
@public
def public_list(slug: str) -> tuple[str, int]:
    """Anyone sees a group's upcoming actions, with its calendar feed."""
    group = load_public_group(slug)
    return _list_page("actions/public_list.html", group)


# --- one action and signing up -----------------------------------------------------------------


def _action_page(
    group: Group, action: Action, form: ActionSignupForm, status: int = 200, error: str = ""
) -> tuple[str, int]:
    open_for_signups = action.status == ActionStatus.PUBLISHED and action.starts_at > utcnow()
    return render_template(
        "actions/public_action.html",
        group=group,
        action=action,
        form=form,
        open_for_signups=open_for_signups,
        places_left=services.places_left(action),
        going=services.counts(action)[SignupStatus.CONFIRMED.value],
        kind_labels=KIND_LABELS,
        error=error,
    ), status


@bp.route("/g/<slug>/actions/<int:action_id>", methods=["GET", "POST"])
@public
@limiter.limit("10 per hour", methods=["POST"])
def public_action(slug: str, action_id: int) -> Response | tuple[str, int]:
    """Anyone sees a published action and signs up for it (no account needed)."""
    group, action = _public_action(slug, action_id)
    form = ActionSignupForm()
    form.wants_updates.label.text = _("Send me email updates from %(name)s", name=group.name)
    if not form.validate_on_submit():
        return _action_page(group, action, form, 422 if form.is_submitted() else 200)
    # One neutral page for every outcome: the page must not tell a stranger typing
    # someone's address whether that person had already signed up (the email says).
    done = url_for("actions.signed_up", slug=slug, action_id=action.id)
    if form.website.data:  # a bot filled the hidden field: say yes, do nothing
        return redirect(done)
    try:
        email = normalise_email(form.email.data)
    except ValueError:
        form.email.errors.append(_("Enter an email address like name@example.org."))
        return _action_page(group, action, form, 422)
    if _recent_signups(email) > SIGNUPS_PER_ADDRESS_PER_HOUR:
        message = _("This address has signed up for many actions in the last hour. "
                    "Please try again later.")  # fmt: skip
        form.email.errors.append(message)
        return _action_page(group, action, form, 429)
    try:
        services.sign_up(
            action,
            email=email,
            name=form.name.data,
            phone=form.phone.data or "",
            access_needs=form.access_needs.data or "",
            wants_updates=bool(form.wants_updates.data),
        )
    except services.ActionError as exc:  # nothing is committed: the request ends here
        return _action_page(group, action, form, 409, error=str(exc))
    except ValueError:
        form.email.errors.append(_("Enter an email address like name@example.org."))
        return _action_page(group, action, form, 422)
    db.session.commit()
    return redirect(done)


@bp.route("/g/<slug>/actions/<int:action_id>/signed-up")
@public
def signed_up(slug: str, action_id: int) -> tuple[str, int]:
    """After the form: look in your inbox (the same page whatever happened)."""
    group, action = _public_action(slug, action_id)
    return render_template("actions/public_signed_up.html", group=group, action=action), 200


# --- the emailed link --------------------------------------------------------------------------


@bp.route("/signup/<token>", methods=["GET", "POST"])
@public
def manage_signup(token: str) -> Response | tuple[str, int]:
    """The emailed link: see your sign-up, change your details or cancel. GET changes nothing."""
    try:
        signup = services.signup_from_token(token)
    except TokenError as exc:
        return _link_problem(exc)
    action = signup.action
    change = SignupChangeForm(
        formdata=None,
        data={"name": signup.name, "phone": signup.phone, "access_needs": signup.access_needs},
    )
    cancel = CancelSignupForm()
    active = signup.status != SignupStatus.CANCELLED
    status = 200
    if request.method == "POST" and active:
        if "cancel" in request.form:
            if cancel.validate_on_submit():
                services.cancel_signup(signup)
                db.session.commit()
                return render_template(
                    "actions/public_cancelled.html", action=action, group=action.group
                ), 200
            status = 400
        else:
            change = SignupChangeForm()
            if change.validate_on_submit():
                services.change_details(
                    signup,
                    name=change.name.data,
                    phone=change.phone.data or "",
                    access_needs=change.access_needs.data or "",
                )
                db.session.commit()
                flash(_("Your details are updated. We have emailed you a new link to your "
                        "place; the old one no longer works."), "success")  # fmt: skip
                return redirect(url_for("actions.manage_signup", token=_manage_token(signup)))
            status = 422
    elif request.method == "POST":
        status = 409
    return render_template(
        "actions/public_manage.html",
        signup=signup,
        action=action,
        group=action.group,
        change=change,
        cancel=cancel,
        active=active,
        kind_labels=KIND_LABELS,
    ), status


# --- calendar files ----------------------------------------------------------------------------


@bp.route("/g/<slug>/actions/<int:action_id>/calendar.ics")
@public
def action_ics(slug: str, action_id: int) -> Response:
    """One action for a calendar; the place only when it is public."""
    _group, action = _public_action(slug, action_id)
    return Response(
        make_action_ics(action, with_place=action.place_public),
        mimetype="text/calendar",
        headers={"Content-Disposition": f'attachment; filename="action-{action.id}.ics"'},
    )


@bp.route("/g/<slug>/actions.ics")
@public
def group_feed(slug: str) -> Response:
    """A subscribable feed of a group's published actions (upcoming and the last month)."""
    group = load_public_group(slug)
    actions = db.session.scalars(
        select(Action)
        .where(
            Action.group_id == group.id,
            Action.status == ActionStatus.PUBLISHED,
            Action.starts_at >= utcnow() - timedelta(days=FEED_PAST_DAYS),
        )
        .order_by(Action.starts_at, Action.id)
    ).all()
    return Response(
        feed_ics(group.name, actions),
        mimetype="text/calendar",
        headers={"Content-Disposition": f'attachment; filename="{group.slug}-actions.ics"'},
    )
