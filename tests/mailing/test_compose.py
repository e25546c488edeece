"""Composing a mailing: validation, segments with counts, merge fields, preview, test send."""

from __future__ import annotations

from sqlalchemy import select

from campaign.core.outbox import MailCategory, OutboxMessage
from campaign.extensions import db
from campaign.mailing import services
from campaign.mailing.models import Mailing, MailingStatus
from campaign.people.models import UpdatesStatus
from tests.conftest import login, mail_to, post
from tests.mailing.helpers import add_draft, add_supporter, add_tag


def _compose(client, group, **data):
    payload = {"subject": "Rally on Saturday", "body": "Hello {{first_name}}!",
               "segment": "subscribers"} | data  # fmt: skip
    return post(client, f"/g/{group.slug}/mailings/new", payload)


def test_organiser_saves_a_draft_and_is_taken_to_the_preview(client, group, organiser):
    login(client, organiser)
    response = _compose(client, group, body="**Join us** on Saturday, {{first_name}}.")
    assert response.status_code == 302
    mailing = db.session.scalar(select(Mailing).where(Mailing.group_id == group.id))
    assert response.headers["Location"] == f"/g/{group.slug}/mailings/{mailing.id}/preview"
    assert mailing.status == MailingStatus.DRAFT
    assert mailing.subject == "Rally on Saturday"
    assert mailing.author_id == organiser.id
    assert mailing.segment == {"kind": "subscribers"}


def test_draft_can_be_edited_and_lists_can_be_chosen(client, group, organiser):
    nurses = add_tag(group, "nurses")
    mailing = add_draft(group)
    login(client, organiser)
    page = client.get(f"/g/{group.slug}/mailings/{mailing.id}")
    assert page.status_code == 200
    assert "Rally on Saturday" in page.get_data(as_text=True)
    response = post(
        client,
        f"/g/{group.slug}/mailings/{mailing.id}",
        {"subject": "New subject", "body": "New body", "segment": f"tag:{nurses.id}"},
    )
    assert response.status_code == 302
    db.session.refresh(mailing)
    assert (mailing.subject, mailing.body_markdown) == ("New subject", "New body")
    assert mailing.segment == {"kind": "tag", "tag_id": nurses.id}


def test_compose_refuses_bad_input_clearly(client, group, organiser, make):
    other_tag = add_tag(make.group("Elsewhere"), "theirs")
    login(client, organiser)
    cases = [
        ({"subject": ""}, "Write a subject."),
        ({"subject": "x" * 201}, "Keep the subject under 200 characters."),
        ({"subject": "<b>Hi</b>"}, "Please remove the"),
        ({"subject": "Hi {{first_name}}"}, "work in the message, not the subject"),
        ({"body": ""}, "Write the message."),
        ({"body": "x" * 50_001}, "Keep the message under 50000 characters."),
        ({"body": "Hi {{ first_name }}"}, "is not a merge field"),
        ({"body": "{{config}}"}, "is not a merge field"),
        ({"body": "{{<script>x</script>}}"}, "{{&lt;script&gt;x&lt;/script&gt;}} is not a merge"),
        ({"segment": f"tag:{other_tag.id}"}, "Not a valid choice"),
    ]
    for data, message in cases:
        response = _compose(client, group, **data)
        assert response.status_code == 422, data
        assert message in response.get_data(as_text=True), data
    assert db.session.scalar(select(Mailing).where(Mailing.group_id == group.id)) is None


def test_a_50k_body_is_accepted(client, group, organiser):
    login(client, organiser)
    assert _compose(client, group, body="y" * 50_000).status_code == 302


def test_sent_mailings_cannot_be_edited(client, group, organiser):
    mailing = add_draft(group)
    mailing.status = MailingStatus.SENT
    db.session.flush()
    login(client, organiser)
    response = post(
        client, f"/g/{group.slug}/mailings/{mailing.id}",
        {"subject": "Changed", "body": "Changed", "segment": "subscribers"},
    )  # fmt: skip
    assert response.status_code == 409
    db.session.refresh(mailing)
    assert mailing.subject == "Rally on Saturday"


def test_segment_choices_show_how_many_each_reaches(client, group, organiser):
    nurses = add_tag(group, "nurses")
    add_supporter(group, "a@example.org", tags=[nurses])
    add_supporter(group, "b@example.org")
    add_supporter(group, "c@example.org", status=UpdatesStatus.PENDING, tags=[nurses])
    choices = {c.value: c.count for c in services.segment_choices(group)}
    assert choices == {"subscribers": 2, f"tag:{nurses.id}": 1}
    login(client, organiser)
    body = client.get(f"/g/{group.slug}/mailings/new").get_data(as_text=True)
    assert "All subscribers (2 people)" in body
    assert "Subscribers tagged “nurses” (1 person)" in body


# --- merge fields -----------------------------------------------------------------------------


def test_merge_fills_exactly_the_two_fields_and_nothing_else():
    text = "Hi {{first_name}} {{ first_name }} {{unsubscribe_url}} {% if x %}{{config}}"
    merged = services.merge(text, first_name="Ana", unsubscribe_url="https://x/u/1")
    assert merged == "Hi Ana {{ first_name }} https://x/u/1 {% if x %}{{config}}"
    assert services.merge("{{first_name}}", first_name="", unsubscribe_url="") == "friend"
    assert services.unknown_merge_fields(text) == ["{{ first_name }}", "{{config}}"]


def test_per_recipient_copy_escapes_names_and_never_runs_templates(session, group):
    mailing = add_draft(
        group,
        body="Dear {{first_name}},\n\n[Leave]({{unsubscribe_url}}) {% raw %} {{ 7*7 }}",
    )
    rendered = services.render_mailing(group, mailing)
    text, html, _content = rendered.personalise(
        first_name="<script>alert(1)</script> *Ana*", unsubscribe_url="https://h/unsubscribe/T"
    )
    assert "Dear <script>alert(1)</script> *Ana*," in text
    assert "<script>" not in html
    assert "Dear &lt;script&gt;alert(1)&lt;/script&gt; *Ana*," in html  # literal, not Markdown
    assert 'href="https://h/unsubscribe/T"' in html
    assert "{% raw %} {{ 7*7 }}" in text and "49" not in text


def test_body_html_is_sanitised(session, group):
    mailing = add_draft(
        group,
        body="Hi <script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1))",
    )
    _text, html, _content = services.render_mailing(group, mailing).personalise(
        first_name="Ana", unsubscribe_url="https://h/u"
    )
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html


# --- preview and test send ------------------------------------------------------------------------


def test_preview_shows_subject_html_text_sample_name_and_count(client, group, organiser):
    add_supporter(group, "a@example.org")
    add_supporter(group, "b@example.org", status=UpdatesStatus.UNSUBSCRIBED)
    mailing = add_draft(group, body="Hello **{{first_name}}**, [stop]({{unsubscribe_url}})")
    login(client, organiser)
    response = client.get(f"/g/{group.slug}/mailings/{mailing.id}/preview")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Rally on Saturday" in body
    assert "Hello <strong>Sam</strong>" in body  # the HTML part, as rendered
    # The plain-text part: a plain-text rendering, the link as "text (URL)".
    assert "Hello Sam, stop (http://localhost/unsubscribe/example)" in body
    assert "**" not in body
    assert "http://localhost/unsubscribe/example" in body
    assert "signed up for updates from Riverside Health Justice" in body
    assert "1 person" in body
    assert "{{first_name}}" not in body


def test_test_send_goes_to_the_organiser_only(client, group, organiser):
    add_supporter(group, "a@example.org")
    mailing = add_draft(group)
    login(client, organiser)
    response = post(client, f"/g/{group.slug}/mailings/{mailing.id}/test")
    assert response.status_code == 302
    [message] = mail_to(organiser.email)
    assert message.subject == "[Test] Rally on Saturday"
    assert message.category == MailCategory.TRANSACTIONAL
    assert message.mailing_id is None and message.group_id == group.id
    # Greeted by their own name (the organiser is "Olu Organiser"), not a sample one.
    assert "Hello Olu!" in message.text_body
    assert "Hello Olu!" in message.html_body
    assert mail_to("a@example.org") == []
    db.session.refresh(mailing)
    assert mailing.status == MailingStatus.DRAFT
    assert (
        db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.mailing_id == mailing.id))
        is None
    )


def test_drafts_can_be_deleted_but_sent_mail_cannot(client, group, organiser):
    draft, sent = add_draft(group), add_draft(group)
    sent.status = MailingStatus.SENT
    draft_id = draft.id
    db.session.flush()
    login(client, organiser)
    assert post(client, f"/g/{group.slug}/mailings/{draft_id}/delete").status_code == 302
    assert post(client, f"/g/{group.slug}/mailings/{sent.id}/delete").status_code == 302
    assert db.session.get(Mailing, draft_id) is None
    assert db.session.get(Mailing, sent.id) is not None
