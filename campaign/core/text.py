"""Markdown from users, rendered and sanitised (as HTML and as plain text); dates shown in
the configured timezone.

Both parts of an email come from one sanitised HTML rendering: ``markdown_to_text()``
converts the HTML that ``render_markdown()`` produces, so the text part carries exactly
what the HTML part does. An image, a raw HTML tag or a ``javascript:`` link that the
sanitiser drops is gone from both; nothing of the organiser's Markdown syntax survives.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

import markdown as md
import nh3
from flask import current_app
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor
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
# The page or email around the organiser's text has its own title: their headings start
# one level down, and the deepest levels share h4.
_HEADING_LEVEL = {"h1": "h2", "h2": "h3", "h3": "h4", "h5": "h4", "h6": "h4"}


class _HeadingLevels(Treeprocessor):
    def run(self, root: Element) -> None:
        for element in root.iter():
            element.tag = _HEADING_LEVEL.get(element.tag, element.tag)


class _HeadingLevelsExtension(Extension):
    def extendMarkdown(self, md_instance: md.Markdown) -> None:  # noqa: N802 - library API
        md_instance.treeprocessors.register(_HeadingLevels(md_instance), "heading_levels", 0)


def sanitised_html(source: str | None) -> str:
    """Markdown to sanitised HTML: no raw HTML, no images, no scripts, safe link schemes."""
    if not source:
        return ""
    html = md.markdown(
        source, extensions=["sane_lists", _HeadingLevelsExtension()], output_format="html"
    )
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def render_markdown(source: str | None) -> Markup:
    """Markdown to safe HTML: no raw HTML, no scripts, links open with rel=noopener."""
    return Markup(sanitised_html(source))  # noqa: S704 - sanitised by nh3


# --- plain text --------------------------------------------------------------------------------

TEXT_WIDTH = 76  # under the 78 characters RFC 5322 asks for, with room for a quote mark
_BLOCKS = {"p", "h2", "h3", "h4", "ul", "ol", "li", "blockquote", "pre", "hr"}
_UNDERLINE = {"h2": "=", "h3": "-", "h4": "-"}
_VOID = {"br", "hr"}


@dataclass
class _Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[_Node | str] = field(default_factory=list)


class _TreeBuilder(HTMLParser):
    """The sanitised HTML as a small tree (nh3's output is well formed; entities are
    unescaped by the parser)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("root")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = _Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(_Node(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def _inline(node: _Node | str, *, pre: bool = False) -> str:
    """Inline content as text; ``\\n`` stands for a line break (``<br>``)."""
    if isinstance(node, str):
        return node if pre else node.replace("\n", " ")
    if node.tag == "br":
        return "\n"
    inner = "".join(_inline(child, pre=pre) for child in node.children)
    if node.tag == "a":
        return _link(inner, node.attrs.get("href", ""))
    return inner


def _link(text: str, href: str) -> str:
    label = " ".join(text.split())
    if not href:
        return text
    target = href.removeprefix("mailto:") if href.startswith("mailto:") else href
    if not label or label in (href, target):
        return target
    return f"{text} <{target}>" if href.startswith("mailto:") else f"{text} ({href})"


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for line in text.split("\n"):
        line = " ".join(line.split())
        if not line:
            continue
        lines += textwrap.wrap(
            line, width=max(width, 20), break_long_words=False, break_on_hyphens=False
        ) or [line]
    return lines


def _prefixed(lines: list[str], first: str, rest: str) -> list[str]:
    return [(first if i == 0 else rest) + line if line else "" for i, line in enumerate(lines)]


def _blocks(node: _Node, width: int) -> list[tuple[str, list[str]]]:
    """The node's children as (tag, lines) blocks; runs of inline content count as "p"."""
    blocks: list[tuple[str, list[str]]] = []
    run: list[_Node | str] = []

    def end_run() -> None:
        if run:
            lines = _wrap("".join(_inline(child) for child in run), width)
            if lines:
                blocks.append(("p", lines))
            run.clear()

    for child in node.children:
        if isinstance(child, _Node) and child.tag in _BLOCKS:
            end_run()
            lines = _block(child, width)
            if lines:
                blocks.append((child.tag, lines))
        else:
            run.append(child)
    end_run()
    return blocks


def _join(blocks: list[tuple[str, list[str]]], *, in_item: bool = False) -> list[str]:
    """Blocks with a blank line between them; inside a list item a nested list follows
    its item's text directly."""
    lines: list[str] = []
    for tag, block in blocks:
        if lines and not (in_item and tag in ("ul", "ol")):
            lines.append("")
        lines += block
    return lines


def _block(node: _Node, width: int) -> list[str]:
    tag = node.tag
    if tag == "hr":
        return ["-" * 20]
    if tag == "pre":
        code = "".join(_inline(child, pre=True) for child in node.children).strip("\n")
        return ["    " + line if line.strip() else "" for line in code.split("\n")]
    if tag in _UNDERLINE:
        lines = _wrap("".join(_inline(child) for child in node.children), width)
        if not lines:
            return []
        return [*lines, _UNDERLINE[tag] * min(max(len(line) for line in lines), width)]
    if tag in ("ul", "ol"):
        items: list[str] = []
        number = 0
        for child in node.children:
            if not isinstance(child, _Node) or child.tag != "li":
                continue
            number += 1
            marker = f"{number}. " if tag == "ol" else "- "
            content = _join(_blocks(child, width - len(marker)), in_item=True) or [""]
            items += _prefixed(content, marker, " " * len(marker))
        return items
    if tag == "blockquote":
        lines = _join(_blocks(node, width - 2))
        return [f"> {line}" if line else ">" for line in lines]
    return _join(_blocks(node, width))


def html_to_text(html: str, width: int = TEXT_WIDTH) -> str:
    """Sanitised HTML (from ``sanitised_html``) as readable plain text."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    lines = _join(_blocks(builder.root, width))
    return "\n".join(line.rstrip() for line in lines)


def markdown_to_text(source: str | None, width: int = TEXT_WIDTH) -> str:
    """The organiser's Markdown as the plain-text part of an email: links as
    "text (URL)", images dropped, headings underlined, lists as "- item" / "1. item",
    emphasis markers gone, code kept, lines wrapped under 78 characters where a word
    allows it."""
    return html_to_text(sanitised_html(source), width)


def local_time(value: datetime | None, fmt: str = "%-d %b %Y, %H:%M") -> str:
    if value is None:
        return ""
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    return value.astimezone(zone).strftime(fmt)
