"""Group pages: the public directory and pages, applying, members and invitations."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from campaign.core.csvsafe import csv_safe
from campaign.core.forms import render_form
from campaign.core.pagination import paginate
from campaign.core.permissions import admin_required, confirmed_required, public
from campaign.extensions import db, limiter
from campaign.groups import services
from campaign.groups.access import load_group, load_public_group
from campaign.groups.forms import (
    ButtonForm,
    DecisionForm,
    GroupDetailsForm,
    GroupSettingsForm,
    InviteForm,
    RoleForm,
    SearchForm,
)
from campaign.groups.models import Group, Role

bp = Blueprint("groups", __name__)


@bp.route("/")
@public
def home() -> str:
    """The front page: your groups when logged in, an introduction otherwise."""
    memberships = services.groups_of(current_user) if current_user.is_authenticated else []
    return render_template("groups/home.html", memberships=memberships)


@bp.route("/groups")
@public
def directory() -> tuple[str, int] | str:
    """The public directory of approved groups, searchable by name and area."""
    form = SearchForm(request.args)
    search = form.q.data or ""
    if search and not form.validate():
        return render_template("groups/directory.html", form=form, page=None), 400
    page = paginate(services.directory_query(search))
    return render_template("groups/directory.html", form=form, page=page, search=search)


@bp.route("/groups/apply", methods=["GET", "POST"])
@confirmed_required
@limiter.limit("10 per day", methods=["POST"])
def apply() -> Response | tuple[str, int]:
    """Apply to register a local group; a platform admin approves it."""
    form = GroupDetailsForm()
    if form.validate_on_submit():
        group = services.apply_for_group(
            current_user,
            name=form.name.data,
            area=form.area.data,
            description=form.description.data,
            contact_email=form.contact_email.data,
        )
        db.session.commit()
        flash(
            _(
                "Thank you. Your application is with the platform team; we will email you "
                "when it is decided."
            ),
            "success",
        )
        return redirect(url_for("groups.dashboard", slug=group.slug))
    return render_form("groups/apply.html", form)


@bp.route("/g/<slug>")
@public
def public_page(slug: str) -> str:
    """A group's public page."""
    group = load_public_group(slug)
    return render_template("groups/public_page.html", group=group)


@bp.route("/g/<slug>/dashboard")
def dashboard(slug: str) -> str:
    """A member's view of their group."""
    access = load_group(slug)
    return render_template(
        "groups/dashboard.html", group=access.group, access=access, leave_form=ButtonForm()
    )


@bp.route("/g/<slug>/members")
def members(slug: str) -> tuple[str, int]:
    """Organisers see and manage the group's members and open invitations."""
    access = load_group(slug, role=Role.ORGANISER)
    return _members_page(access.group)


def _members_page(group: Group, invite_form: InviteForm | None = None, status: int = 200):
    page = paginate(services.members_query(group))
    return render_template(
        "groups/members.html",
        group=group,
        page=page,
        invite_form=invite_form or InviteForm(formdata=None),
        invitations=services.open_invitations(group),
        role_form=RoleForm,
        button_form=ButtonForm(),
        roles=list(Role),
    ), status


@bp.route("/g/<slug>/members.csv")
def members_csv(slug: str) -> Response:
    """Organisers download the member list."""
    access = load_group(slug, role=Role.ORGANISER)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "email", "role", "joined"])
    for membership in db.session.scalars(services.members_query(access.group)):
        writer.writerow(
            [
                csv_safe(membership.user.display_name),
                csv_safe(membership.user.email),
                membership.role_enum.label,
                membership.created_at.date().isoformat(),
            ]
        )
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{access.group.slug}-members.csv"'},
    )


@bp.route("/g/<slug>/members/invite", methods=["POST"])
@limiter.limit("60 per hour")
def invite(slug: str) -> Response | tuple[str, int]:
    """Organisers invite someone by email."""
    access = load_group(slug, role=Role.ORGANISER)
    form = InviteForm()
    if form.validate_on_submit():
        try:
            services.invite(current_user, access.group, form.email.data, Role(form.role.data))
        except services.GroupError as exc:
            form.email.errors.append(str(exc))
        except ValueError:
            form.email.errors.append(_("Enter an email address like name@example.org."))
        else:
            db.session.commit()
            flash(_("Invitation sent to %(email)s.", email=form.email.data), "success")
            return redirect(url_for("groups.members", slug=slug))
    return _members_page(access.group, invite_form=form, status=422)


@bp.route("/g/<slug>/members/<int:membership_id>/role", methods=["POST"])
def change_role(slug: str, membership_id: int) -> Response | tuple[str, int]:
    """Organisers change a member's role."""
    access = load_group(slug, role=Role.ORGANISER)
    membership = services.get_membership(access.group, membership_id) or abort(404)
    form = RoleForm()
    if not form.validate_on_submit():
        flash(_("Choose one of the roles in the list."), "error")
        return _members_page(access.group, status=422)
    try:
        services.change_role(current_user, access.group, membership, Role(form.role.data))
    except services.GroupError as exc:
        flash(str(exc), "error")
        return _members_page(access.group, status=409)
    db.session.commit()
    flash(_("Role changed."), "success")
    return redirect(url_for("groups.members", slug=slug))


@bp.route("/g/<slug>/members/<int:membership_id>/remove", methods=["POST"])
def remove_member(slug: str, membership_id: int) -> Response | tuple[str, int]:
    """Organisers remove a member."""
    access = load_group(slug, role=Role.ORGANISER)
    membership = services.get_membership(access.group, membership_id) or abort(404)
    form = ButtonForm()
    if form.validate_on_submit():
        try:
            services.remove_member(current_user, access.group, membership)
        except services.GroupError as exc:
            flash(str(exc), "error")
            return _members_page(access.group, status=409)
        db.session.commit()
        flash(_("Member removed."), "success")
    return redirect(url_for("groups.members", slug=slug))


@bp.route("/g/<slug>/invitations/<int:invitation_id>/revoke", methods=["POST"])
def revoke_invitation(slug: str, invitation_id: int) -> Response:
    """Organisers withdraw an invitation that has not been used yet."""
    access = load_group(slug, role=Role.ORGANISER)
    invitation = services.get_invitation(access.group, invitation_id) or abort(404)
    if ButtonForm().validate_on_submit():
        services.revoke_invitation(current_user, invitation)
        db.session.commit()
        flash(_("Invitation withdrawn."), "success")
    return redirect(url_for("groups.members", slug=slug))


@bp.route("/g/<slug>/leave", methods=["POST"])
def leave(slug: str) -> Response | tuple[str, int]:
    """A member leaves the group (the last organiser cannot)."""
    access = load_group(slug)
    if ButtonForm().validate_on_submit():
        try:
            services.remove_member(current_user, access.group, access.membership)
        except services.GroupError as exc:
            flash(str(exc), "error")
            return render_template(
                "groups/dashboard.html",
                group=access.group,
                access=access,
                leave_form=ButtonForm(),
            ), 409
        db.session.commit()
        flash(_("You have left %(name)s.", name=access.group.name), "success")
    return redirect(url_for("groups.home"))


@bp.route("/g/<slug>/settings", methods=["GET", "POST"])
def settings(slug: str) -> Response | tuple[str, int]:
    """Organisers edit the group's public details and its security policy."""
    access = load_group(slug, role=Role.ORGANISER)
    form = GroupSettingsForm(obj=access.group)
    if form.validate_on_submit():
        services.update_group(
            current_user,
            access.group,
            name=form.name.data,
            area=form.area.data,
            description=form.description.data,
            contact_email=form.contact_email.data,
            require_caseworker_2fa=form.require_caseworker_2fa.data,
        )
        db.session.commit()
        flash(_("Group details saved."), "success")
        return redirect(url_for("groups.settings", slug=slug))
    return render_form("groups/settings.html", form, group=access.group)


@bp.route("/invitations/<token>", methods=["GET", "POST"])
@public
def invitation(token: str) -> Response | tuple[str, int] | str:
    """Accept an invitation: a GET shows it, the POST (logged in as the invitee) joins."""
    try:
        found = services.find_invitation(token)
    except services.InvitationProblem as exc:
        return render_template("accounts/link_problem.html", message=str(exc)), 400
    form = ButtonForm()
    if form.validate_on_submit():
        if not current_user.is_authenticated:
            return redirect(url_for("accounts.login", next=request.path))
        try:
            membership = services.accept_invitation(current_user, token)
        except services.InvitationProblem as exc:
            flash(str(exc), "error")
            return render_template(
                "groups/invitation.html", invitation=found, form=form, token=token
            ), 403
        db.session.commit()
        flash(_("Welcome to %(name)s.", name=membership.group.name), "success")
        return redirect(url_for("groups.dashboard", slug=membership.group.slug))
    return render_template("groups/invitation.html", invitation=found, form=form, token=token)


@bp.route("/admin/groups")
@admin_required
def admin_applications() -> str:
    """Platform admins review pending group applications."""
    return render_template(
        "groups/admin_applications.html",
        pending=services.pending_applications(),
        decision_form=DecisionForm(),
    )


@bp.route("/admin/groups/<int:group_id>/decide", methods=["POST"])
@admin_required
def admin_decide(group_id: int) -> Response | tuple[str, int]:
    """Approve or reject one application."""
    group = db.session.get(Group, group_id) or abort(404)
    form = DecisionForm()
    approve = request.form.get("decision") == "approve"
    if request.form.get("decision") not in ("approve", "reject"):
        form.validate_on_submit()
        form.note.errors = [*form.note.errors, _("Choose approve or reject.")]
    elif form.validate_on_submit():
        if not approve and not form.note.data:
            form.note.errors.append(_("Tell the applicant why, so they can apply again."))
        else:
            try:
                services.decide_application(
                    current_user, group, approve=approve, note=form.note.data or ""
                )
            except services.GroupError as exc:
                flash(str(exc), "error")
                return redirect(url_for("groups.admin_applications"))
            db.session.commit()
            flash(
                _("%(name)s approved.", name=group.name)
                if approve
                else _("%(name)s rejected.", name=group.name),
                "success",
            )
            return redirect(url_for("groups.admin_applications"))
    return render_template(
        "groups/admin_applications.html",
        pending=services.pending_applications(),
        decision_form=form,
        failed_group_id=group.id,
    ), 422
