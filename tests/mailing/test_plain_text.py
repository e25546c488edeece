"""The plain-text part of campaign mail: a real rendering of the organiser's Markdown,
carrying what the HTML part carries and nothing it dropped."""

from __future__ import annotations

import email
import re
from email import policy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign.core.text import markdown_to_text, sanitised_html
from tests.conftest import login
from tests.mailing.helpers import add_draft, add_supporter, send_now_through_pages

BODY = """# Save our A&E

Hello {{first_name}}, the **board meets** on __Tuesday__ and we need *you* &amp; _yours_.

## What to do

- Come to the [public meeting](https://example.org/meeting "The meeting")
- Write to <mp@example.org>
    - nested: bring your neighbours, your friends, your union branch, your choir and more
- Read https://example.org/plain

1. Sign the letter
2. Share the `#SaveOurAE` tag

![our chart](https://tracker.example.net/chart.png)

<img src="https://pixel.example.com/open.gif"><script>alert("x")</script><b>raw bold</b>
<a href="javascript:alert(1)">click</a>

> The Trust said it would listen.

    keep   this
    code as it is

---
[Stop these emails]({{unsubscribe_url}})
"""
DROPPED_HOSTS = ("tracker.example.net", "pixel.example.com")
URL = re.compile(r"(?:https?|mailto):[^\s()<>]+")


def _markdown_left_in(text: str) -> list[str]:
    """Pieces of Markdown syntax that a plain-text reader would see raw (outside URLs,
    whose signed tokens may hold any characters, "__" included)."""
    found = []
    text = URL.sub("<url>", text)
    for pattern in (r"\*\*", r"__", r"\[[^\]\n]*\]\([^)\n]*\)", r"!\[", r"(?m)^#"):
        found += re.findall(pattern, text)
    return found


def _parts(raw: bytes) -> tuple[str, str]:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content()
    return text, html


def test_campaign_mail_text_part_is_plain_text_with_what_the_html_part_has(
    client, group, organiser, smtp_sink
):
    add_supporter(group, "ana@example.org", first_name="Ana")
    add_supporter(group, "bo@example.org", first_name="Bo")
    mailing = add_draft(group, body=BODY)
    login(client, organiser)
    response = send_now_through_pages(client, group, mailing)
    assert response.status_code == 302

    assert sorted(rcpts[0] for rcpts, _raw in smtp_sink.messages) == [
        "ana@example.org",
        "bo@example.org",
    ]
    for rcpts, raw in smtp_sink.messages:
        text, html = _parts(raw)
        assert _markdown_left_in(text) == [], text
        for host in DROPPED_HOSTS:
            assert host not in html and host not in text
        assert "javascript:" not in text and "alert" not in text and "<" + "script" not in text
        # Every URL in the text part is one the HTML part links to or shows.
        for url in URL.findall(text):
            assert url in html, url
        name = "Ana" if rcpts == ["ana@example.org"] else "Bo"
        # Headings readable, emphasis gone, entities unescaped, links with their URL.
        assert "Save our A&E\n============" in text
        assert "What to do\n----------" in text
        flat = " ".join(text.split())
        assert f"Hello {name}, the board meets on Tuesday and we need you & yours." in flat
        assert "- Come to the public meeting (https://example.org/meeting)" in text
        assert "- Write to mp@example.org\n  - nested: bring your neighbours," in text
        assert "- Read https://example.org/plain" in text
        assert "1. Sign the letter\n2. Share the #SaveOurAE tag" in text
        assert "our chart" not in text  # an image is dropped, alt text and all
        assert "raw bold" in text and "raw bold" in html  # the tag is gone from both
        assert "> The Trust said it would listen." in text
        assert "    keep   this\n    code as it is" in text
        assert re.search(r"Stop these emails \(http://localhost/unsubscribe/[^)\s]+\)", text)
        # Under 78 characters a line, but for a link too long to fit on any line.
        long_lines = [ln for ln in text.splitlines() if len(ln) >= 78 and not URL.search(ln)]
        assert long_lines == []


def _long_words(text: str) -> bool:
    return any(len(word) > 60 for word in text.split())


# Words of letters, entities' characters and quotes; raw HTML comes only as <img> (raw
# HTML in general is in the test above: a stripped tag can leave stray characters in
# both parts alike).
WORD = (
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzAB &;'\"", min_size=1, max_size=12)
    .map(str.strip)
    .filter(bool)
)
PHRASE = st.lists(WORD, min_size=1, max_size=8).map(" ".join)
HOST = st.sampled_from(["example.org", "tracker.example.net", "pixel.example.com"])
INLINE = st.one_of(
    PHRASE,
    PHRASE.map(lambda p: f"**{p}**"),
    PHRASE.map(lambda p: f"__{p}__"),
    PHRASE.map(lambda p: f"*{p}*"),
    PHRASE.map(lambda p: f"_{p}_"),
    st.tuples(PHRASE, HOST).map(lambda t: f"[{t[0]}](https://{t[1]}/page)"),
    st.tuples(PHRASE, HOST).map(lambda t: f"![{t[0]}](https://{t[1]}/img.png)"),
    HOST.map(lambda h: f'<img src="https://{h}/x.gif">'),
    PHRASE.map(lambda p: f"`{p}`"),
)
LINE = st.lists(INLINE, min_size=1, max_size=6).map(" ".join)
BLOCK = st.one_of(
    LINE,
    st.tuples(st.integers(1, 6), LINE).map(lambda t: "#" * t[0] + " " + t[1]),
    st.lists(LINE, min_size=1, max_size=4).map(lambda ls: "\n".join(f"- {x}" for x in ls)),
    st.lists(LINE, min_size=1, max_size=4).map(
        lambda ls: "\n".join(f"{i}. {x}" for i, x in enumerate(ls, 1))
    ),
    LINE.map(lambda x: f"> {x}"),
)
MARKDOWN = st.lists(BLOCK, min_size=1, max_size=6).map("\n\n".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MARKDOWN)
def test_any_markdown_renders_to_text_without_its_syntax_or_dropped_urls(source):
    html = sanitised_html(source)
    text = markdown_to_text(source)
    assert _markdown_left_in(text) == [], (source, text)
    for url in URL.findall(text):
        assert f'href="{url}"' in html, (source, text)
    assert "<img" not in html and "img.png" not in text and "x.gif" not in text
    if not _long_words(text):
        assert all(len(line) < 78 for line in text.splitlines()), text


def test_campaign_mail_comes_from_the_group_via_the_site(client, group, organiser, smtp_sink):
    add_supporter(group, "ana@example.org", first_name="Ana")
    mailing = add_draft(group, body="Hello {{first_name}}.")
    login(client, organiser)
    response = send_now_through_pages(client, group, mailing)
    assert response.status_code == 302
    [(_rcpts, raw)] = smtp_sink.messages
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message["From"].addresses[0].display_name == f"{group.name} via Campaign"
    assert message["Reply-To"].addresses[0].addr_spec == group.contact_email
    assert message["Auto-Submitted"] == "auto-generated"
