"""People pages: the public 'get updates' form with double opt-in, and the organisers'
supporter list, supporter pages, CSV export, merge and erasure."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response
from wtforms.fields import SelectChoice

from campaign.core import jobs
from campaign.core.addresses import normalise_email
from campaign.core.forms import render_form
from campaign.core.pagination import requested_page
from campaign.core.permissions import public
from campaign.core.tokens import TokenError, random_token
from campaign.extensions import db, limiter
from campaign.groups.access import load_group, load_public_group
from campaign.groups.models import Group, Role
from campaign.people import importing, services
from campaign.people.forms import (
    ButtonForm,
    ImportConsentForm,
    ImportUploadForm,
    MergeForm,
    PeopleFilterForm,
    SubscribeForm,
    SupporterForm,
)
from campaign.people.models import ConsentAction, ConsentMethod, Supporter, UpdatesStatus

bp = Blueprint("people", __name__)
T = TypeVar("T")


def _link_problem(exc: TokenError) -> tuple[str, int]:
    message = exc.message(expired=_("This link has expired. Please sign up again."))
    return render_template("people/link_problem.html", message=message), 400


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


# --- organisers: labels shown for stored values -------------------------------------------

STATUS_LABELS = {
    UpdatesStatus.SUBSCRIBED.value: _l("Getting updates"),
    UpdatesStatus.PENDING.value: _l("Waiting to confirm"),
    UpdatesStatus.UNSUBSCRIBED.value: _l("Unsubscribed"),
    UpdatesStatus.NONE.value: _l("Never asked"),
}
ACTION_LABELS = {
    ConsentAction.GRANTED.value: _l("Agreed"),
    ConsentAction.CONFIRMED.value: _l("Confirmed"),
    ConsentAction.WITHDRAWN.value: _l("Withdrew"),
}
METHOD_LABELS = {
    ConsentMethod.FORM.value: _l("'Get updates' form"),
    ConsentMethod.EMAIL_LINK.value: _l("Link in the confirmation email"),
    ConsentMethod.IMPORT.value: _l("Imported list"),
    ConsentMethod.IN_PERSON.value: _l("In person"),
    ConsentMethod.UNSUBSCRIBE_PAGE.value: _l("Unsubscribe page"),
    ConsentMethod.ONE_CLICK.value: _l("One-click unsubscribe in their mail program"),
    ConsentMethod.ORGANISER.value: _l("Marked by an organiser"),
    ConsentMethod.ERASURE.value: _l("Erased on request"),
    ConsentMethod.COMPLAINT.value: _l("Marked the group's email as spam"),
}


def _labels() -> dict[str, dict[str, object]]:
    """Words for stored values, for the templates."""
    return {
        "status_labels": STATUS_LABELS,
        "action_labels": ACTION_LABELS,
        "method_labels": METHOD_LABELS,
    }


# --- organisers: the supporter list ---------------------------------------------------------


def _filters(group: Group) -> tuple[PeopleFilterForm, dict[str, Any] | None, dict[str, str]]:
    """The list's search and filters from the query string, as ``supporters_query``'s
    arguments, and the query-string arguments to keep in links.

    The arguments are ``None`` when the filters are not valid (say, a tag of another
    group).
    """
    form = PeopleFilterForm(request.args)
    form.tag.choices = [SelectChoice("", _("Any"))] + [
        SelectChoice(str(tag.id), tag.name) for tag in services.group_tags(group)
    ]
    if not form.validate():
        return form, None, {}
    tag = services.get_tag(group, int(form.tag.data)) if form.tag.data else None
    filters = {"search": form.q.data or "", "tag": tag, "status": form.status.data or None}
    args = {"q": form.q.data, "tag": form.tag.data, "status": form.status.data}
    return form, filters, {name: value for name, value in args.items() if value}


def _list_page(group: Group, status: int = 200) -> tuple[str, int]:
    """The supporter list as the query string filters it (400 for invalid filters)."""
    form, filters, filter_args = _filters(group)
    # The group's counts head the whole list; a search shows how many match instead
    # (counting a big group by status is most of a search's time).
    counts = None if filter_args else services.supporter_counts(group)
    page = None
    if filters is not None:
        page = services.supporters_page(
            group,
            **filters,
            page=requested_page(),
            per_page=current_app.config["PER_PAGE"],
            # Unfiltered, the list is every supporter not erased: counted already.
            total=counts["total"] if counts else None,
        )
    return render_template(
        "people/list.html",
        group=group,
        form=form,
        page=page,
        filter_args=filter_args,
        counts=counts,
        **_labels(),
    ), (400 if filters is None else status)


@bp.route("/g/<slug>/people")
def supporters(slug: str) -> tuple[str, int]:
    """Organisers see, search and filter the group's supporters."""
    access = load_group(slug, role=Role.ORGANISER)
    return _list_page(access.group)


@bp.route("/g/<slug>/people.csv")
def supporters_csv(slug: str) -> Response | tuple[str, int]:
    """Organisers download the list as it is filtered on the page (audited)."""
    access = load_group(slug, role=Role.ORGANISER)
    _form, filters, _args = _filters(access.group)
    if filters is None:
        return _list_page(access.group)
    query = services.supporters_query(access.group, **filters)
    text, _count = services.supporters_csv(current_user, access.group, query)
    db.session.commit()
    return Response(
        text,
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{access.group.slug}-supporters.csv"'
        },
    )


# --- organisers: adding and editing a supporter ----------------------------------------------


def _supporter_form_data(supporter: Supporter) -> dict[str, str]:
    """The supporter form filled from the row (tags as one comma-separated line)."""
    return {
        "first_name": supporter.first_name,
        "last_name": supporter.last_name,
        "email": supporter.email,
        "phone": supporter.phone,
        "postcode": supporter.postcode,
        "tags": ", ".join(tag.name for tag in supporter.tags),
    }


def _field_error(form: SupporterForm, exc: services.PeopleError) -> None:
    """Show a refused change next to the field it is about."""
    name = getattr(exc, "field", "email")
    form[name].errors = [*form[name].errors, str(exc)]


def _warn_if_blocked(supporter: Supporter) -> None:
    """Tell the organiser when a subscribed address is on the do-not-mail list anyway."""
    if supporter.updates_status == UpdatesStatus.SUBSCRIBED and services.is_blocked(supporter):
        flash(
            _(
                "This address is on the group's do-not-mail list (mail to it bounced, its "
                "owner complained, or asked to be erased), so it will not get updates."
            ),
            "warning",
        )


def _save_supporter(form: SupporterForm, save: Callable[..., T], *args: object) -> T | None:
    """Run the add or update service with the form's fields; commit, or put the rule
    that was broken next to its field and roll back."""
    try:
        result = save(
            *args,
            email=form.email.data,
            first_name=form.first_name.data or "",
            last_name=form.last_name.data or "",
            phone=form.phone.data or "",
            postcode=form.postcode.data or "",
            tag_names=form.tag_names,
            agreed_in_person=form.agreed_in_person.data,
        )
    except services.PeopleError as exc:
        db.session.rollback()
        _field_error(form, exc)
        return None
    except ValueError:
        db.session.rollback()
        form.email.errors = [_("Enter an email address like name@example.org.")]
        return None
    db.session.commit()
    return result


@bp.route("/g/<slug>/people/new", methods=["GET", "POST"])
def new_supporter(slug: str) -> Response | tuple[str, int]:
    """Organisers add a supporter by hand; a known address updates the existing row."""
    access = load_group(slug, role=Role.ORGANISER)
    group = access.group
    form = SupporterForm()
    if form.validate_on_submit():
        result = _save_supporter(form, services.add_supporter, current_user, group)
        if result is not None:
            supporter, created = result
            if created:
                flash(_("Supporter added."), "success")
            else:
                flash(
                    _(
                        "That address was already on the list: we updated the existing "
                        "supporter instead of adding a second one."
                    ),
                    "success",
                )
            _warn_if_blocked(supporter)
            return redirect(url_for("people.supporter", slug=slug, supporter_id=supporter.id))
    return render_form(
        "people/new.html", form, group=group, wording=services.updates_wording(group)
    )


def _supporter_page(
    group: Group,
    supporter: Supporter,
    *,
    form: SupporterForm | None = None,
    merge_form: MergeForm | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The supporter page: details form, consent history, actions and the merge form."""
    return render_template(
        "people/supporter.html",
        group=group,
        supporter=supporter,
        form=form or SupporterForm(formdata=None, data=_supporter_form_data(supporter)),
        merge_form=merge_form or MergeForm(formdata=None, target_id=supporter.id),
        history=services.consent_history(supporter),
        wording=services.updates_wording(group),
        blocked=services.is_blocked(supporter),
        sections=[
            section
            for _receiver, section in services.supporter_page_sections.send(supporter)
            if section
        ],
        **_labels(),
    ), status


# Ids beyond a 64-bit integer cannot exist; the database would refuse to compare them.
_MAX_ID = 2**63 - 1


def _load_supporter(group: Group, supporter_id: int | None) -> Supporter:
    """A supporter of this group (never erased), or 404."""
    if supporter_id is None or not 0 < supporter_id <= _MAX_ID:
        abort(404)
    return services.get_supporter(group, supporter_id) or abort(404)


@bp.route("/g/<slug>/people/<int:supporter_id>", methods=["GET", "POST"])
def supporter(slug: str, supporter_id: int) -> Response | tuple[str, int]:
    """Organisers see a supporter's details and consent history and correct them."""
    access = load_group(slug, role=Role.ORGANISER)
    group = access.group
    person = _load_supporter(group, supporter_id)
    if request.method == "GET":
        return _supporter_page(group, person)
    form = SupporterForm()
    saved = form.validate_on_submit() and _save_supporter(
        form, services.update_supporter, current_user, group, person
    )
    if saved:
        flash(_("Details saved."), "success")
        _warn_if_blocked(person)
        return redirect(url_for("people.supporter", slug=slug, supporter_id=person.id))
    return _supporter_page(group, person, form=form, status=422)


@bp.route("/g/<slug>/people/<int:supporter_id>/unsubscribe", methods=["POST"])
def unsubscribe_supporter(slug: str, supporter_id: int) -> Response:
    """Organisers mark a supporter as unsubscribed (they asked by phone, letter, in person)."""
    access = load_group(slug, role=Role.ORGANISER)
    person = _load_supporter(access.group, supporter_id)
    if ButtonForm().validate_on_submit():
        services.unsubscribe_by_organiser(current_user, person)
        db.session.commit()
        flash(_("Unsubscribed: they will get no more updates from the group."), "success")
    return redirect(url_for("people.supporter", slug=slug, supporter_id=person.id))


@bp.route("/g/<slug>/people/<int:supporter_id>/export.json")
def export_supporter(slug: str, supporter_id: int) -> Response:
    """Organisers download everything the group holds on one supporter (audited)."""
    access = load_group(slug, role=Role.ORGANISER)
    person = _load_supporter(access.group, supporter_id)
    data = services.export_supporter_data(current_user, person)
    db.session.commit()
    filename = f"{access.group.slug}-supporter-{person.id}.json"
    return Response(
        json.dumps(data, ensure_ascii=False, indent=2),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.route("/g/<slug>/people/<int:supporter_id>/erase", methods=["GET", "POST"])
def erase_supporter(slug: str, supporter_id: int) -> Response | str:
    """Organisers erase a supporter's personal data: a page says what happens, a POST does it."""
    access = load_group(slug, role=Role.ORGANISER)
    person = _load_supporter(access.group, supporter_id)
    form = ButtonForm()
    if form.validate_on_submit():
        services.erase_supporter(current_user, person)
        db.session.commit()
        flash(
            _(
                "Their personal data has been erased. Neither an import nor an organiser can "
                "add their address again; only they can, by signing up themselves."
            ),
            "success",
        )
        return redirect(url_for("people.supporters", slug=slug))
    return render_template("people/erase.html", group=access.group, supporter=person, form=form)


@bp.route("/g/<slug>/people/merge", methods=["POST"])
def merge_supporters(slug: str) -> Response | tuple[str, int]:
    """Organisers fold a second row for the same person into the supporter on the page."""
    access = load_group(slug, role=Role.ORGANISER)
    group = access.group
    form = MergeForm()
    target_id = form.target_id.data
    if not isinstance(target_id, int):
        flash(_("Open the supporter to merge into, then use the form on their page."), "error")
        return _list_page(group, status=422)
    target = _load_supporter(group, target_id)
    if form.validate_on_submit():
        try:
            other = services.find_supporter(group, normalise_email(form.other_email.data))
        except ValueError:
            other = None
        if other is None or other.erased_at is not None:
            form.other_email.errors = [_("No supporter of this group has that address.")]
        else:
            merged_email = other.email
            try:
                services.merge_supporters(current_user, group, target, other)
            except services.PeopleError as exc:
                db.session.rollback()
                form.other_email.errors = [str(exc)]
            else:
                db.session.commit()
                flash(
                    _("Merged: %(email)s is now part of this supporter.", email=merged_email),
                    "success",
                )
                return redirect(url_for("people.supporter", slug=slug, supporter_id=target.id))
    return _supporter_page(group, target, merge_form=form, status=422)


# --- CSV import: upload, map the columns, see the report ------------------------------------


def _upload_path(group: Group, token: str) -> Path:
    """Uploads sit outside static/, named for their group so no other group finds them."""
    path = importing.upload_path(group.id, token)
    if path is None:
        abort(404)
    return path


@bp.route("/g/<slug>/people/import", methods=["GET", "POST"])
def import_upload(slug: str) -> Response | tuple[str, int]:
    """Organisers upload a CSV of supporters (step 1 of 2)."""
    access = load_group(slug, role=Role.ORGANISER)
    form = ImportUploadForm()
    if form.validate_on_submit():
        try:
            text = importing.decode(form.file.data.read())
            importing.preview(text)
        except importing.ImportError_ as exc:
            form.file.errors.append(str(exc))
        else:
            importing.forget_stale_uploads()
            token = random_token()
            _upload_path(access.group, token).write_text(text, encoding="utf-8")
            name = secure_filename(form.file.data.filename or "") or "upload.csv"
            return redirect(url_for("people.import_map", slug=slug, token=token, name=name[:80]))
    return render_form("people/import_upload.html", form, group=access.group)


@bp.route("/g/<slug>/people/import/<token>", methods=["GET", "POST"])
def import_map(slug: str, token: str) -> Response | tuple[str, int]:
    """Choose what each column holds, say what people agreed to, then import (step 2)."""
    access = load_group(slug, role=Role.ORGANISER)
    path = _upload_path(access.group, token)
    if not path.exists():
        flash(
            _("That upload has expired or was already imported. Please upload it again."), "error"
        )
        return redirect(url_for("people.import_upload", slug=slug))
    text = path.read_text(encoding="utf-8")
    preview = importing.preview(text)
    name = (request.args.get("name") or "upload.csv")[:80]
    form = ImportConsentForm()
    mapping = preview.mapping
    problem = None
    if request.method == "POST":
        mapping = {
            index: value
            for index in range(len(preview.columns))
            if (value := request.form.get(f"column-{index}", "")) in importing.FIELDS or not value
        }
    if form.validate_on_submit():
        try:
            job = importing.start_import(
                access.group, current_user, token, mapping, name=name,
                consent_statement=form.statement.data or "", notes_token=random_token(),
            )  # fmt: skip
        except importing.ImportError_ as exc:
            problem = str(exc)
        else:
            db.session.commit()
            jobs.start(job)
            return redirect(url_for("people.import_job", slug=slug, job_id=job.id))
    status = 422 if form.is_submitted() and (form.errors or problem) else 200
    return render_template(
        "people/import_map.html", group=access.group, preview=preview, mapping=mapping,
        fields=importing.FIELDS, form=form, problem=problem, name=name,
    ), status  # fmt: skip


@bp.route("/g/<slug>/people/import/jobs/<int:job_id>")
def import_job(slug: str, job_id: int) -> str:
    """How far an import has got; once finished, its report (organisers only)."""
    access = load_group(slug, role=Role.ORGANISER)
    job = jobs.get_job(access.group.id, job_id, kind=importing.JOB_KIND)
    if job is None:
        abort(404)
    return render_template("people/import_job.html", group=access.group, job=job)


@bp.route("/g/<slug>/people/import/<token>/rejected.csv")
def import_rejects(slug: str, token: str) -> Response:
    """The rows an import turned away, with the reason for each."""
    access = load_group(slug, role=Role.ORGANISER)
    path = _upload_path(access.group, token)
    if not path.exists():
        abort(404)
    return Response(
        path.read_text(encoding="utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="import-report.csv"'},
    )
