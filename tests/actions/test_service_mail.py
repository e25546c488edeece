"""Service mail (DESIGN rule 15): a message about a person's place reaches them after
they unsubscribed from the group's updates; a hard bounce still stops it."""

from __future__ import annotations

import email
from email import policy

from campaign.actions import services
from campaign.actions.models import SignupStatus
from campaign.core.models import utcnow
from campaign.extensions import db
from campaign.people.models import SuppressionReason, UpdatesStatus
from campaign.people.services import suppress, unsubscribe_token
from tests.actions.test_organiser_pages import add_signup, make_action, organiser  # noqa: F401
from tests.conftest import mail_to, post
from tests.mailing.helpers import add_supporter


def _unsubscribe_by_one_click(app, supporter) -> None:
    """What the person's mail client does with the List-Unsubscribe header."""
    reply = app.test_client().post(
        f"/unsubscribe/{unsubscribe_token(supporter)}",
        data={"List-Unsubscribe": "One-Click"},
    )
    assert reply.status_code == 200


def test_an_unsubscribed_person_with_a_place_gets_the_organisers_message(
    app,
    client,
    organiser,  # noqa: F811
    smtp_sink,
):
    _, group = organiser
    action = make_action(group, title="Save our A&E")
    left = add_supporter(group, "left-updates@example.org", first_name="Lee")
    add_signup(action, "left-updates@example.org")
    add_signup(action, "bounced@example.org")
    add_signup(action, "waiting@example.org", SignupStatus.WAITLISTED)
    suppress(group.id, "bounced@example.org", SuppressionReason.HARD_BOUNCE, "550 no mailbox")
    db.session.commit()
    _unsubscribe_by_one_click(app, left)
    db.session.refresh(left)
    assert left.updates_status == UpdatesStatus.UNSUBSCRIBED  # and on the suppression list

    page = client.get(f"/g/{group.slug}/manage/actions/{action.id}").get_data(as_text=True)
    assert "This goes to 1 person" in page
    response = post(client, f"/g/{group.slug}/manage/actions/{action.id}/email",
                    {"subject": "Meet at gate B",
                     "message": "## Change of plan\n\nMeet at **gate B**, see "
                                "[the map](https://maps.example.org/b)."})  # fmt: skip
    assert response.status_code == 302

    assert [rcpts for rcpts, _raw in smtp_sink.messages] == [["left-updates@example.org"]]
    message = email.message_from_bytes(smtp_sink.messages[0][1], policy=policy.default)
    assert message["Subject"] == "Meet at gate B"
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Change of plan\n--------------" in text
    assert "Meet at gate B, see the map (https://maps.example.org/b)." in text
    assert "**" not in text and "](" not in text
    assert "<strong>gate B</strong>" in message.get_body(("html",)).get_content()
    [row] = mail_to("left-updates@example.org")
    assert row.category == "transactional" and row.status == "sent"
    assert mail_to("bounced@example.org") == [] and mail_to("waiting@example.org") == []


def test_reminders_and_cancellations_skip_a_hard_bounce_but_not_an_unsubscribe(
    session,
    organiser,  # noqa: F811
):
    user, group = organiser
    action = make_action(group, reminder_hours=24 * 60)
    add_signup(action, "unsubscribed@example.org")
    add_signup(action, "bounced@example.org")
    suppress(group.id, "unsubscribed@example.org", SuppressionReason.UNSUBSCRIBED)
    suppress(group.id, "bounced@example.org", SuppressionReason.HARD_BOUNCE)
    assert services.send_due_reminders(utcnow()) == 2  # both claimed, once each
    assert [m.template for m in mail_to("unsubscribed@example.org")] == ["action_reminder"]
    assert mail_to("bounced@example.org") == []
    services.cancel_action(user, action)
    assert [m.template for m in mail_to("unsubscribed@example.org")] == [
        "action_reminder",
        "action_cancelled",
    ]
    assert mail_to("bounced@example.org") == []
