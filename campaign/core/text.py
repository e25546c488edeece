"""Markdown from users, rendered and sanitised; dates shown in the configured timezone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import markdown as md
import nh3
from flask import current_app
from markupsafe import Markup

_ALLOWED_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "ul",
    "ol",
    "li",
    "a",
    "h2",
    "h3",
    "h4",
    "blockquote",
    "code",
    "pre",
    "hr",
}


def render_markdown(source: str | None) -> Markup:
    """Markdown to safe HTML: no raw HTML, no scripts, links open with rel=noopener."""
    if not source:
        return Markup("")
    html = md.markdown(source, extensions=["sane_lists"], output_format="html")
    clean = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(clean)  # noqa: S704 - sanitised by nh3 above


def local_time(value: datetime | None, fmt: str = "%-d %b %Y, %H:%M") -> str:
    if value is None:
        return ""
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    return value.astimezone(zone).strftime(fmt)
