"""Organisers' action pages: list, create and edit, publish and cancel, the sign-up list
and its CSV, check-in on the day with walk-ins, and a message to the people coming.

Every view starts with ``load_group(slug, role=Role.ORGANISER)`` and finds the action
among that group's only, so another group's ids are a 404. Door check-in (the list,
"Here" and walk-ins) loads with ``role=Role.VOLUNTEER`` and then checks that the
organiser opened this action's door to volunteers (``_load_door``).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC
from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.wrappers import Response

from campaign.actions import organising, services
from campaign.actions.forms import (
    KIND_LABELS,
    ActionForm,
    AttendeeMessageForm,
    ButtonForm,
    WalkInForm,
)
from campaign.actions.models import Action, ActionStatus, SignupStatus
from campaign.actions.views import bp
from campaign.core.csvsafe import csv_safe
from campaign.core.forms import render_form
from campaign.core.models import utcnow
from campaign.core.pagination import paginate
from campaign.core.text import local_time
from campaign.extensions import db
from campaign.groups.access import GroupAccess, load_group
from campaign.groups.models import Role

SEARCH_MAX = 100
STATUS_LABELS = {
    ActionStatus.DRAFT.value: _l("Draft"),
    ActionStatus.PUBLISHED.value: _l("Published"),
    ActionStatus.CANCELLED.value: _l("Cancelled"),
}
SIGNUP_LABELS = {
    SignupStatus.CONFIRMED.value: _l("Has a place"),
    SignupStatus.WAITLISTED.value: _l("On the waitlist"),
    SignupStatus.CANCELLED.value: _l("Cancelled"),
}


def _load(slug: str, action_id: int) -> tuple[GroupAccess, Action]:
    access = load_group(slug, role=Role.ORGANISER)
    action = services.get_action(access.group, action_id)
    if action is None:
        abort(404)
    return access, action


def _load_door(slug: str, action_id: int) -> tuple[GroupAccess, Action]:
    """Door check-in: organisers always; volunteers and caseworkers only for an action
    whose organiser chose "volunteers can run door check-in" (403 otherwise)."""
    access = load_group(slug, role=Role.VOLUNTEER)
    action = services.get_action(access.group, action_id)
    if action is None:
        abort(404)
    if not access.is_organiser and not organising.volunteers_may_check_in(action):
        abort(403)
    return access, action


def _labels() -> dict[str, object]:
    return {
        "kind_labels": KIND_LABELS,
        "status_labels": STATUS_LABELS,
        "signup_labels": SIGNUP_LABELS,
        "is_placeholder": organising.is_placeholder_email,
    }


@bp.route("/g/<slug>/manage/actions")
def manage_list(slug: str) -> str:
    """Organisers: every action of the group, upcoming first, with sign-up counts."""
    access = load_group(slug, role=Role.ORGANISER)
    actions = organising.list_actions(access.group)
    counts = organising.status_counts(access.group, [a.id for a in actions])
    return render_template(
        "actions/organiser_list.html",
        group=access.group,
        actions=actions,
        counts=counts,
        now=utcnow(),
        **_labels(),
    )


def _fill_form_from(form: ActionForm, action: Action) -> None:
    zone = current_app.config["TIMEZONE"]
    start = action.starts_at.astimezone(ZoneInfo(zone))
    end = action.ends_at.astimezone(ZoneInfo(zone))
    form.title.data, form.kind.data, form.description.data = (
        action.title, action.kind, action.description,
    )  # fmt: skip
    form.start_date.data, form.start_time.data = start.date(), start.time().replace(tzinfo=None)
    form.end_date.data, form.end_time.data = end.date(), end.time().replace(tzinfo=None)
    form.is_online.data, form.online_url.data = action.is_online, action.online_url
    form.place_name.data, form.address.data = action.place_name, action.address
    form.area.data, form.place_public.data = action.area, action.place_public
    form.accessibility.data = action.accessibility
    form.capacity.data = "" if action.capacity is None else str(action.capacity)
    form.reminder_hours.data = action.reminder_hours
    form.volunteers_check_in.data = action.volunteers_check_in


@bp.route("/g/<slug>/manage/actions/new", methods=["GET", "POST"])
def new_action(slug: str) -> Response | tuple[str, int]:
    """Organisers: draft a new action."""
    access = load_group(slug, role=Role.ORGANISER)
    form = ActionForm()
    if form.validate_on_submit():
        action = organising.create_action(current_user, access.group, form.action_data())
        db.session.commit()
        flash(_("Draft saved. Publish it when it is ready."), "success")
        return redirect(url_for("actions.manage_action", slug=slug, action_id=action.id))
    return render_form("actions/organiser_form.html", form, group=access.group, action=None)


@bp.route("/g/<slug>/manage/actions/<int:action_id>/edit", methods=["GET", "POST"])
def edit_action(slug: str, action_id: int) -> Response | tuple[str, int]:
    """Organisers: change an action; more places move the waitlist up."""
    access, action = _load(slug, action_id)
    if action.status == ActionStatus.CANCELLED:
        flash(_("A cancelled action cannot be changed."), "error")
        return redirect(url_for("actions.manage_action", slug=slug, action_id=action.id))
    starts_at = action.starts_at.astimezone(UTC)
    form = ActionForm(original_start=starts_at)
    if request.method == "GET":
        _fill_form_from(form, action)
    if form.validate_on_submit():
        promoted = organising.update_action(current_user, access.group, action, form.action_data())
        db.session.commit()
        flash(_("Changes saved."), "success")
        if promoted:
            flash(_("%(n)d people from the waitlist got a place and have been emailed.",
                    n=promoted), "success")  # fmt: skip
        return redirect(url_for("actions.manage_action", slug=slug, action_id=action.id))
    return render_form("actions/organiser_form.html", form, group=access.group, action=action)


def _render_manage(
    access: GroupAccess, action: Action, message_form: AttendeeMessageForm, status: int = 200
) -> tuple[str, int]:
    return render_template(
        "actions/organiser_manage.html",
        group=access.group,
        action=action,
        counts=services.counts(action),
        walk_ins=organising.walk_in_count(access.group, action),
        places_left=services.places_left(action),
        recipients=len(organising.attendee_recipients(access.group, action)),
        message_form=message_form,
        button=ButtonForm(),
        has_public_page="actions.public_action" in current_app.view_functions,
        **_labels(),
    ), status


@bp.route("/g/<slug>/manage/actions/<int:action_id>")
def manage_action(slug: str, action_id: int) -> tuple[str, int]:
    """Organisers: one action's numbers and everything that can be done with it."""
    access, action = _load(slug, action_id)
    return _render_manage(access, action, AttendeeMessageForm(formdata=None))


@bp.route("/g/<slug>/manage/actions/<int:action_id>/publish", methods=["POST"])
def publish_action(slug: str, action_id: int) -> Response:
    """Organisers: a draft goes public and takes sign-ups."""
    access, action = _load(slug, action_id)
    if ButtonForm().validate_on_submit():
        try:
            organising.publish_action(current_user, access.group, action)
        except services.ActionError as exc:
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(_("Published: people can now sign up."), "success")
    return redirect(url_for("actions.manage_action", slug=slug, action_id=action.id))


@bp.route("/g/<slug>/manage/actions/<int:action_id>/cancel", methods=["GET", "POST"])
def cancel_action(slug: str, action_id: int) -> Response | str:
    """Organisers: a confirmation page, then cancel and email everyone signed up."""
    access, action = _load(slug, action_id)
    form = ButtonForm()
    if form.validate_on_submit():
        try:
            told = services.cancel_action(current_user, action)
        except services.ActionError as exc:
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(_("The action is cancelled. %(n)d people have been emailed.", n=told),
                  "success")  # fmt: skip
        return redirect(url_for("actions.manage_action", slug=slug, action_id=action.id))
    return render_template(
        "actions/organiser_cancel.html",
        group=access.group,
        action=action,
        form=form,
        told=organising.people_to_tell_if_cancelled(access.group, action),
    )


# --- sign-ups ----------------------------------------------------------------------------------


def _filters() -> dict[str, str]:
    q = request.args.get("q", "").strip()
    if len(q) > SEARCH_MAX:
        abort(400, description=_("Keep the search under 100 characters."))
    status = request.args.get("status", "")
    if status not in SIGNUP_LABELS:
        status = ""
    return {key: value for key, value in (("q", q), ("status", status)) if value}


@bp.route("/g/<slug>/manage/actions/<int:action_id>/signups")
def signups(slug: str, action_id: int) -> str:
    """Organisers: who signed up, searchable, filtered by status, a page at a time."""
    access, action = _load(slug, action_id)
    filters = _filters()
    query = organising.signups_query(
        access.group, action, search=filters.get("q", ""), status=filters.get("status", "")
    )
    return render_template(
        "actions/organiser_signups.html",
        group=access.group,
        action=action,
        page=paginate(query),
        filters=filters,
        **_labels(),
    )


@bp.route(
    "/g/<slug>/manage/actions/<int:action_id>/signups/<int:signup_id>/cancel", methods=["POST"]
)
def cancel_signup_by_organiser(slug: str, action_id: int, signup_id: int) -> Response:
    """Organisers: cancel one sign-up; the next on the waitlist gets the place."""
    access, action = _load(slug, action_id)
    signup = organising.get_signup(access.group, action, signup_id)
    if signup is None:
        abort(404)
    if ButtonForm().validate_on_submit():
        promoted = services.cancel_signup(signup, actor=current_user)
        db.session.commit()
        flash(_("Sign-up cancelled; they have been emailed."), "success")
        if promoted is not None:
            flash(_("The next person on the waitlist got the place."), "success")
    return redirect(url_for("actions.signups", slug=slug, action_id=action.id))


@bp.route("/g/<slug>/manage/actions/<int:action_id>/signups.csv")
def signups_csv(slug: str, action_id: int) -> Response:
    """Organisers: the sign-up list as a spreadsheet (audit-logged)."""
    access, action = _load(slug, action_id)
    rows = organising.export_signups(current_user, access.group, action)
    db.session.commit()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [_("Name"), _("Email"), _("Phone"), _("Access needs"), _("Status"),
         _("Signed up at"), _("Checked in at")]
    )  # fmt: skip
    for signup in rows:
        email = "" if organising.is_placeholder_email(signup.email) else signup.email
        writer.writerow(
            [csv_safe(signup.name), csv_safe(email), csv_safe(signup.phone),
             csv_safe(signup.access_needs), signup.status, local_time(signup.created_at),
             local_time(signup.checked_in_at)]
        )  # fmt: skip
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="action-{action.id}-signups.csv"'},
    )


# --- on the day --------------------------------------------------------------------------------


def _render_check_in(
    access: GroupAccess, action: Action, form: WalkInForm, status: int = 200
) -> tuple[str, int]:
    return render_template(
        "actions/organiser_check_in.html",
        group=access.group,
        access=access,
        action=action,
        people=organising.check_in_list(access.group, action),
        form=form,
        **_labels(),
    ), status


@bp.route("/g/<slug>/door")
def door_list(slug: str) -> str:
    """Volunteers (and organisers): the actions whose door check-in volunteers may run."""
    access = load_group(slug, role=Role.VOLUNTEER)
    return render_template(
        "actions/door_list.html",
        group=access.group,
        access=access,
        actions=organising.door_actions(access.group),
    )


@bp.route("/g/<slug>/manage/actions/<int:action_id>/check-in")
def check_in(slug: str, action_id: int) -> tuple[str, int]:
    """On the day, at the door: tap "Here" for each person; add walk-ins."""
    access, action = _load_door(slug, action_id)
    return _render_check_in(access, action, WalkInForm(formdata=None))


@bp.route("/g/<slug>/manage/actions/<int:action_id>/check-in/<int:signup_id>", methods=["POST"])
def mark_attended(slug: str, action_id: int, signup_id: int) -> Response:
    """At the door: mark someone as here, or undo it."""
    access, action = _load_door(slug, action_id)
    signup = organising.get_signup(access.group, action, signup_id)
    if signup is None:
        abort(404)
    if ButtonForm().validate_on_submit():
        try:
            organising.toggle_check_in(current_user, access.group, signup)
        except services.ActionError as exc:
            flash(str(exc), "error")
        else:
            db.session.commit()
            name = signup.name or _("(no name)")
            if signup.checked_in_at:
                flash(_("%(name)s is here.", name=name), "success")
            else:
                flash(_("%(name)s is no longer marked as here.", name=name), "success")
    return redirect(
        url_for("actions.check_in", slug=slug, action_id=action.id, _anchor=f"s{signup.id}")
    )


@bp.route("/g/<slug>/manage/actions/<int:action_id>/check-in/walk-in", methods=["POST"])
def add_walk_in(slug: str, action_id: int) -> Response | tuple[str, int]:
    """At the door: someone came without signing up."""
    access, action = _load_door(slug, action_id)
    form = WalkInForm()
    if form.validate_on_submit():
        try:
            organising.add_walk_in(
                current_user, access.group, action, name=form.name.data,
                email=form.email.data or "",
            )  # fmt: skip
        except services.ActionError as exc:
            form.name.errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("%(name)s added and marked as here.", name=form.name.data), "success")
            return redirect(url_for("actions.check_in", slug=slug, action_id=action.id))
    return _render_check_in(access, action, form, status=422)


# --- a message to the people coming -------------------------------------------------------------


@bp.route("/g/<slug>/manage/actions/<int:action_id>/email", methods=["POST"])
def email_attendees(slug: str, action_id: int) -> Response | tuple[str, int]:
    """Organisers: one email to everyone with a place (a service message)."""
    access, action = _load(slug, action_id)
    form = AttendeeMessageForm()
    if form.validate_on_submit():
        sent = organising.email_attendees(
            current_user, access.group, action, subject=form.subject.data, body=form.message.data
        )
        db.session.commit()
        flash(_("Your message is on its way to %(n)d people.", n=sent), "success")
        return redirect(url_for("actions.manage_action", slug=slug, action_id=action.id))
    return _render_manage(access, action, form, status=422)
