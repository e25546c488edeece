"""iCalendar (RFC 5545) for actions: one event, or a group's feed of public actions.

Times are written in UTC (``...Z``), so calendars place them right whatever the
clocks do in October and March.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext as _
from icalendar import Calendar, Event

from campaign.actions.models import Action, ActionStatus
from campaign.core.links import external_url
from campaign.core.models import utcnow


def _calendar(name: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", f"-//{current_app.config['SITE_NAME']}//Actions//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    return cal


def _host() -> str:
    return urlsplit(current_app.config["BASE_URL"]).hostname or "localhost"


def _event(action: Action, *, with_place: bool) -> Event:
    event = Event()
    event.add("uid", f"action-{action.id}@{_host()}")
    event.add("dtstamp", utcnow())
    event.add("dtstart", action.starts_at)
    event.add("dtend", action.ends_at)
    event.add("summary", action.title)
    event.add("sequence", int(action.updated_at.timestamp()) // 60 % 2**31)
    event.add("status", "CANCELLED" if action.status == ActionStatus.CANCELLED else "CONFIRMED")
    page = external_url("actions.public_action", slug=action.group.slug, action_id=action.id)
    event.add("url", page)
    description = action.description
    if with_place:
        if action.is_online and action.online_url:
            event.add("location", action.online_url)
        elif action.place_name or action.address:
            event.add("location", ", ".join(p for p in (action.place_name, action.address) if p))
    else:
        description += "\n\n" + _("The place is sent to people with a confirmed place.")
    event.add("description", f"{description.strip()}\n\n{page}")
    return event


def action_ics(action: Action, *, with_place: bool) -> str:
    """One action as an .ics file; the place only where the caller may show it."""
    cal = _calendar(action.title)
    cal.add_component(_event(action, with_place=with_place))
    return cal.to_ical().decode("utf-8")


def feed_ics(name: str, actions: Iterable[Action]) -> str:
    """A subscribable feed of public actions (places only where they are public)."""
    cal = _calendar(name)
    for action in actions:
        cal.add_component(_event(action, with_place=action.place_public))
    return cal.to_ical().decode("utf-8")
