"""Campaign email pages: compose, preview, test, send or schedule, reports; unsubscribe.

Organiser pages load the group with ``load_group(slug, role=Role.ORGANISER)`` and every
mailing through ``services.get_mailing(group, id)``. The unsubscribe pages are public:
the signed token in the link is the only key, and a GET never changes anything.
"""

from __future__ import annotations

import json

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.wrappers import Response
from wtforms import ValidationError
from wtforms.fields import SelectChoice

from campaign.core import jobs
from campaign.core.forms import render_form
from campaign.core.pagination import Page, paginate, requested_page
from campaign.core.permissions import public
from campaign.core.text import local_time
from campaign.core.tokens import TokenError
from campaign.extensions import csrf, db, limiter
from campaign.groups.access import GroupAccess, load_group
from campaign.groups.models import Group, Role
from campaign.mailing import services
from campaign.mailing import tasks as _tasks  # noqa: F401 - registers the Celery task
from campaign.mailing.forms import (
    ButtonForm,
    ComposeForm,
    ConfirmSendForm,
    PreferencesForm,
    SendForm,
)
from campaign.mailing.models import Mailing, MailingStatus
from campaign.people.models import ConsentMethod

bp = Blueprint("mailing", __name__)


def _load(slug: str, mailing_id: int) -> tuple[GroupAccess, Mailing]:
    access = load_group(slug, role=Role.ORGANISER)
    mailing = services.get_mailing(access.group, mailing_id)
    if mailing is None:
        abort(404)
    return access, mailing


# --- organisers: list, compose, edit -----------------------------------------------------------


@bp.route("/g/<slug>/mailings")
def mailings(slug: str) -> str:
    """Organisers see the group's mailings, with delivery figures from the outbox."""
    access = load_group(slug, role=Role.ORGANISER)
    group = access.group
    page = paginate(services.mailings_query(group))
    for mailing in page.items:
        services.refresh_status(mailing)
    db.session.commit()
    return render_template(
        "mailing/list.html",
        group=group,
        page=page,
        counts=services.mailing_counts(group, page.items),
        labels={m.id: services.segment_label(group, m.segment) for m in page.items},
    )


def _compose_form(group: Group, mailing: Mailing | None = None) -> ComposeForm:
    data = None
    if mailing is not None:
        data = {
            "subject": mailing.subject,
            "body": mailing.body_markdown,
            "segment": services.segment_value(mailing.segment),
        }
    form = ComposeForm(data=data)
    form.segment.choices = [
        SelectChoice(
            choice.value,
            _(
                "%(label)s (%(people)s)",
                label=choice.label,
                people=ngettext("%(num)d person", "%(num)d people", choice.count),
            ),
        )
        for choice in services.segment_choices(group)
    ]
    return form


def _save_draft(group: Group, form: ComposeForm, mailing: Mailing | None) -> Mailing | None:
    """Create or update the draft from a valid form; None (with errors on the form) if not."""
    try:
        segment = services.segment_from_value(group, form.segment.data)
    except services.MailingError as exc:
        form.segment.errors.append(str(exc))
        return None
    try:
        if mailing is None:
            return services.create_draft(
                current_user, group, subject=form.subject.data, body=form.body.data,
                segment=segment,
            )  # fmt: skip
        return services.update_draft(
            current_user, mailing, subject=form.subject.data, body=form.body.data,
            segment=segment,
        )  # fmt: skip
    except services.MailingError as exc:
        form.body.errors.append(str(exc))
        return None


@bp.route("/g/<slug>/mailings/new", methods=["GET", "POST"])
def new(slug: str) -> Response | tuple[str, int]:
    """Organisers start a mailing: subject, Markdown message, list."""
    access = load_group(slug, role=Role.ORGANISER)
    group = access.group
    form = _compose_form(group)
    if form.validate_on_submit():
        mailing = _save_draft(group, form, None)
        if mailing is not None:
            db.session.commit()
            flash(_("Draft saved. Check it below before sending."), "success")
            return redirect(url_for("mailing.preview", slug=slug, mailing_id=mailing.id))
    return render_form("mailing/compose.html", form, group=group, mailing=None)


@bp.route("/g/<slug>/mailings/<int:mailing_id>", methods=["GET", "POST"])
def mailing(slug: str, mailing_id: int) -> Response | tuple[str, int]:
    """A draft opens for editing; a scheduled or sent mailing shows its delivery report."""
    access, mailing = _load(slug, mailing_id)
    group = access.group
    if mailing.status != MailingStatus.DRAFT:
        if request.method == "POST":
            flash(_("This mailing has been sent or scheduled, so it can no longer be changed."),
                  "error")  # fmt: skip
            return _report(group, mailing, status=409)
        return _report(group, mailing)
    form = _compose_form(group, mailing)
    if form.validate_on_submit() and _save_draft(group, form, mailing) is not None:
        db.session.commit()
        flash(_("Draft saved. Check it below before sending."), "success")
        return redirect(url_for("mailing.preview", slug=slug, mailing_id=mailing.id))
    return render_form(
        "mailing/compose.html",
        form,
        group=group,
        mailing=mailing,
        count=services.recipient_count(group, mailing.segment),
        delete_form=ButtonForm(formdata=None),
    )


def _report(group: Group, mailing: Mailing, status: int = 200) -> tuple[str, int]:
    services.refresh_status(mailing)
    db.session.commit()
    counts = services.mailing_counts(group, [mailing])[mailing.id]
    # The counts by status already say how many rows are not delivered: no second count.
    number, per_page = requested_page(), current_app.config["PER_PAGE"]
    page = Page(
        items=services.undelivered_rows(
            group, mailing, offset=(number - 1) * per_page, limit=per_page
        ),
        page=number,
        per_page=per_page,
        total=counts.undelivered,
    )
    return render_template(
        "mailing/report.html",
        group=group,
        mailing=mailing,
        page=page,
        erased=services.erased_supporter_ids(group, [row.supporter_id for row in page.items]),
        counts=counts,
        segment=services.segment_label(group, mailing.segment),
        button_form=ButtonForm(formdata=None),
    ), status


# --- preview, test, send -----------------------------------------------------------------------


def _preview_page(
    group: Group, mailing: Mailing, send_form: SendForm | None = None, status: int = 200
) -> tuple[str, int]:
    return render_template(
        "mailing/preview.html",
        group=group,
        mailing=mailing,
        preview=services.preview(group, mailing),
        send_form=send_form or SendForm(formdata=None),
        button_form=ButtonForm(formdata=None),
        sample_name=services.SAMPLE_FIRST_NAME,
    ), status


@bp.route("/g/<slug>/mailings/<int:mailing_id>/preview")
def preview(slug: str, mailing_id: int) -> tuple[str, int]:
    """The mailing as a supporter would see it, how many it will reach, and the send form."""
    access, mailing = _load(slug, mailing_id)
    return _preview_page(access.group, mailing)


@bp.route("/g/<slug>/mailings/<int:mailing_id>/test", methods=["POST"])
@limiter.limit("30 per hour")
def test_send(slug: str, mailing_id: int) -> Response:
    """Send one copy, marked as a test, to the organiser's own account address."""
    access, mailing = _load(slug, mailing_id)
    if ButtonForm().validate_on_submit():
        services.send_test(current_user, access.group, mailing)
        db.session.commit()
        flash(_("A test copy is on its way to %(email)s.", email=current_user.email), "success")
    return redirect(url_for("mailing.preview", slug=slug, mailing_id=mailing.id))


@bp.route("/g/<slug>/mailings/<int:mailing_id>/send", methods=["POST"])
def send(slug: str, mailing_id: int) -> Response | tuple[str, int]:
    """Schedule the mailing for a time in the future (UK time), or go on to confirm
    sending it now: nothing is sent from this form."""
    access, mailing = _load(slug, mailing_id)
    group = access.group
    form = SendForm()
    if form.validate_on_submit():
        later = form.when.data == "later"
        try:
            if later:
                when = services.local_to_utc(form.send_at.data)
                services.schedule(current_user, group, mailing, when)
            else:
                services.check_send_now(group, mailing)
        except services.MailingError as exc:
            (form.send_at if later else form.when).errors.append(str(exc))
        else:
            if not later:
                return redirect(url_for("mailing.confirm_send", slug=slug, mailing_id=mailing.id))
            db.session.commit()
            flash(_("Scheduled for %(when)s, UK time.", when=local_time(mailing.scheduled_for)),
                  "success")  # fmt: skip
            return redirect(url_for("mailing.mailing", slug=slug, mailing_id=mailing.id))
    return _preview_page(group, mailing, send_form=form, status=422)


def _confirm_page(
    group: Group, mailing: Mailing, count: int, form: ConfirmSendForm | None = None,
    status: int = 200, changed_from: int | None = None,
) -> tuple[str, int]:  # fmt: skip
    form = form or ConfirmSendForm(formdata=None)
    form.expected.data = str(count)
    return render_template(
        "mailing/confirm_send.html", group=group, mailing=mailing, count=count, form=form,
        changed_from=changed_from, segment=services.segment_label(group, mailing.segment),
    ), status  # fmt: skip


@bp.route("/g/<slug>/mailings/<int:mailing_id>/send-now", methods=["GET", "POST"])
def confirm_send(slug: str, mailing_id: int) -> Response | tuple[str, int]:
    """'Send this to 1,234 people now?' with one button; the send then runs as a job."""
    access, mailing = _load(slug, mailing_id)
    group = access.group
    if mailing.status not in (MailingStatus.DRAFT, MailingStatus.SCHEDULED):
        flash(_("This mailing has already been sent."), "info")
        return redirect(url_for("mailing.mailing", slug=slug, mailing_id=mailing.id))
    try:
        count = services.check_send_now(group, mailing)
    except services.MailingError as exc:
        flash(str(exc), "error")
        return redirect(url_for("mailing.preview", slug=slug, mailing_id=mailing.id))
    form = ConfirmSendForm()
    if request.method == "GET":
        return _confirm_page(group, mailing, count)
    if not form.validate_on_submit():
        return _confirm_page(group, mailing, count, form, status=422)
    if int(form.expected.data) != count:
        # The list changed while the page was open: ask again with the new figure.
        return _confirm_page(group, mailing, count, status=409,
                             changed_from=int(form.expected.data))  # fmt: skip
    try:
        services.begin_send(current_user, group, mailing)
    except services.MailingError as exc:
        flash(str(exc), "error")
        return redirect(url_for("mailing.mailing", slug=slug, mailing_id=mailing.id))
    job = jobs.create_job(group.id, _tasks.SEND_JOB, actor_id=current_user.id,
                          params={"mailing_id": mailing.id}, total=count)  # fmt: skip
    db.session.commit()
    jobs.start(job)
    return redirect(url_for("mailing.send_job", slug=slug, mailing_id=mailing.id, job_id=job.id))


@bp.route("/g/<slug>/mailings/<int:mailing_id>/sending/<int:job_id>")
def send_job(slug: str, mailing_id: int, job_id: int) -> str:
    """How far the queueing of a send has got; then on to the delivery report."""
    access, mailing = _load(slug, mailing_id)
    job = jobs.get_job(access.group.id, job_id, kind=_tasks.SEND_JOB)
    if job is None or job.params.get("mailing_id") != mailing.id:
        abort(404)
    return render_template("mailing/send_job.html", group=access.group, mailing=mailing, job=job)


@bp.route("/g/<slug>/mailings/<int:mailing_id>/unschedule", methods=["POST"])
def unschedule(slug: str, mailing_id: int) -> Response:
    """Take a scheduled mailing back to the drafts, to change it or send it later."""
    access, mailing = _load(slug, mailing_id)
    if ButtonForm().validate_on_submit():
        try:
            services.unschedule(current_user, mailing)
        except services.MailingError as exc:
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(_("Back in your drafts: it will not be sent until you send it again."),
                  "success")  # fmt: skip
    return redirect(url_for("mailing.mailing", slug=slug, mailing_id=mailing.id))


@bp.route("/g/<slug>/mailings/<int:mailing_id>/delete", methods=["POST"])
def delete(slug: str, mailing_id: int) -> Response:
    """Throw a draft away."""
    access, mailing = _load(slug, mailing_id)
    if ButtonForm().validate_on_submit():
        try:
            services.delete_draft(current_user, mailing)
        except services.MailingError as exc:
            flash(str(exc), "error")
            return redirect(url_for("mailing.mailing", slug=slug, mailing_id=mailing.id))
        db.session.commit()
        flash(_("Draft deleted."), "success")
    return redirect(url_for("mailing.mailings", slug=slug))


# --- public: unsubscribe -----------------------------------------------------------------------


def _link_problem(exc: TokenError) -> tuple[str, int]:
    # Unsubscribe links are never "used up"; any reason but expiry reads as invalid.
    reason_as = "expired" if exc.reason == "expired" else "invalid"
    message = TokenError(reason_as).message(
        expired=_("This unsubscribe link is too old. Reply to the email and ask the group "
                  "to take you off its list."),
        invalid=_("This link is not valid. Check you copied all of it. (The link in a test "
                  "email or a preview is only an example and does nothing.)"),
    )  # fmt: skip
    return render_template("mailing/link_problem.html", message=message), 400


def _is_one_click() -> bool:
    """An RFC 8058 POST: form-encoded ``List-Unsubscribe=One-Click`` (tolerating a
    client that leaves out the content type)."""
    if request.form.get("List-Unsubscribe") == "One-Click":
        return True
    return request.get_data(cache=True, as_text=True).strip() == "List-Unsubscribe=One-Click"


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@public
@csrf.exempt
def unsubscribe(token: str) -> Response | tuple[str, int] | str:
    """The link in every campaign email: a GET shows one button, the POST unsubscribes.

    Exempt from the global CSRF check for RFC 8058 one-click: the mail client POSTs
    ``List-Unsubscribe=One-Click`` with no session. Any other POST must carry the form's
    CSRF token, checked here.
    """
    try:
        supporter = services.supporter_for_token(token)
    except TokenError as exc:
        return _link_problem(exc)
    group = supporter.group
    if request.method == "POST":
        if _is_one_click():
            services.unsubscribe_from_group(supporter, ConsentMethod.ONE_CLICK)
            db.session.commit()
            return render_template(
                "mailing/unsubscribe.html", group=group, token=token, done=True, form=None,
                address=services.masked_email(supporter.email),
            )  # fmt: skip
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError as exc:
            raise CSRFError(exc.args[0]) from None
        services.unsubscribe_from_group(supporter, ConsentMethod.UNSUBSCRIBE_PAGE)
        db.session.commit()
        flash(_("You are unsubscribed from %(name)s.", name=group.name), "success")
        return redirect(url_for("mailing.unsubscribe", token=token))
    return render_template(
        "mailing/unsubscribe.html",
        group=group,
        token=token,
        done=services.is_unsubscribed(supporter),
        form=ButtonForm(formdata=None),
        address=services.masked_email(supporter.email) if supporter.erased_at is None else "",
    )


@bp.route("/unsubscribe/<token>/preferences", methods=["GET", "POST"])
@public
def preferences(token: str) -> Response | tuple[str, int]:
    """Leave this group's updates, or every group's on the platform, for this address."""
    try:
        supporter = services.supporter_for_token(token)
    except TokenError as exc:
        return _link_problem(exc)
    group = supporter.group
    form = PreferencesForm()
    form.scope.choices = [
        SelectChoice("group", _("Stop email updates from %(name)s", name=group.name)),
        SelectChoice("all", _("Stop email updates from every group on %(site)s to this address",
                              site=services.site_name())),
    ]  # fmt: skip
    if form.validate_on_submit():
        if form.scope.data == "all":
            services.unsubscribe_everywhere(supporter)
            message = _("Done: no group on %(site)s will send updates to this address.",
                        site=services.site_name())  # fmt: skip
        else:
            services.unsubscribe_from_group(supporter, ConsentMethod.UNSUBSCRIBE_PAGE)
            message = _("You are unsubscribed from %(name)s.", name=group.name)
        db.session.commit()
        flash(message, "success")
        return redirect(url_for("mailing.preferences", token=token))
    return render_form(
        "mailing/preferences.html",
        form,
        group=group,
        token=token,
        address=services.masked_email(supporter.email) if supporter.erased_at is None else "",
    )


# --- public: the person's own data ----------------------------------------------------------


@bp.route("/unsubscribe/<token>/my-data", methods=["POST"])
@public
@limiter.limit("10 per hour")
def my_data_link(token: str) -> Response | tuple[str, int]:
    """From the unsubscribe link: email a one-hour link to the data download and erasure.

    The unsubscribe link itself opens neither: it is years old and may be forwarded.
    """
    try:
        supporter = services.supporter_for_token(token)
    except TokenError as exc:
        return _link_problem(exc)
    if not ButtonForm().validate_on_submit():
        abort(400)
    if supporter.erased_at is not None:
        flash(_("The group has already erased the details it held for this address."), "success")
    elif services.send_data_link(supporter):
        db.session.commit()
        flash(
            _("We have emailed a link to %(address)s. Open it within an hour to download your "
              "data or to have it erased.", address=services.masked_email(supporter.email)),
            "success",
        )  # fmt: skip
    else:
        flash(
            _("We have already sent several emails to this address today. Use the link in "
              "one of them, or try again tomorrow."),
            "error",
        )  # fmt: skip
    return redirect(url_for("mailing.preferences", token=token))


def _data_link_problem(exc: TokenError) -> tuple[str, int]:
    message = exc.message(
        expired=_("This link worked for one hour and has expired. Open the unsubscribe link "
                  "in an email from the group and ask for a new one."),
        used=_("This link no longer works: the details it was for have been erased."),
    )  # fmt: skip
    return render_template("mailing/link_problem.html", message=message), 400


@bp.route("/my-data/<token>")
@public
def my_data(token: str) -> Response | tuple[str, int] | str:
    """The emailed one-hour link: download my data, or go on to erase it."""
    try:
        supporter = services.supporter_for_data_token(token)
    except TokenError as exc:
        return _data_link_problem(exc)
    return render_template(
        "mailing/my_data.html", group=supporter.group, token=token,
        address=services.masked_email(supporter.email), form=ButtonForm(formdata=None),
    )  # fmt: skip


@bp.route("/my-data/<token>/download", methods=["POST"])
@public
def download_my_data(token: str) -> Response | tuple[str, int]:
    """The person downloads what this group holds about them (a subject access request)."""
    try:
        supporter = services.supporter_for_data_token(token)
    except TokenError as exc:
        return _data_link_problem(exc)
    if not ButtonForm().validate_on_submit():
        abort(400)
    data = services.download_own_data(supporter)
    db.session.commit()
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={"Content-Disposition": 'attachment; filename="my-data.json"'},
    )


@bp.route("/my-data/<token>/erase", methods=["GET", "POST"])
@public
def erase_me(token: str) -> Response | tuple[str, int] | str:
    """The person asks this group to erase them: a page with one button, then done."""
    try:
        supporter = services.supporter_for_data_token(token)
    except TokenError as exc:
        return _data_link_problem(exc)
    group = supporter.group
    form = ButtonForm()
    if form.validate_on_submit():
        services.erase_self(supporter)
        db.session.commit()
        return render_template("mailing/erased.html", group=group)
    if request.method == "POST":
        abort(400)
    return render_template("mailing/erase_me.html", group=group, form=form, token=token)
