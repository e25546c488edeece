"""A small HTTP client that uses the site the way a browser without JavaScript does:
it keeps cookies, follows redirects, and submits the forms it finds on the page (hidden
fields and defaults included), chosen by the label of their submit button."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    selects: dict[str, list[str]] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._button: dict[str, str | None] | None = None
        self._button_text: list[str] = []
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self._form = Form(a.get("action") or "", (a.get("method") or "get").lower())
            self.forms.append(self._form)
        if self._form is None:
            return
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            name = a.get("name")
            if kind == "submit":
                self._form.buttons.append((a.get("value") or "", name, a.get("value")))
            elif name and kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._form.fields[name] = a.get("value") or "on"
            elif name:
                self._form.fields.setdefault(name, a.get("value") or "")
        elif tag == "button":
            self._button = {"name": a.get("name"), "value": a.get("value")}
            self._button_text = []
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self._form.fields[self._textarea] = ""
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
            self._form.selects[self._select] = []
        elif tag == "option" and self._select:
            value = a.get("value") or ""
            self._form.selects[self._select].append(value)
            if "selected" in a or self._select not in self._form.fields:
                self._form.fields[self._select] = value

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "button" and self._form is not None and self._button is not None:
            text = " ".join("".join(self._button_text).split())
            self._form.buttons.append((text, self._button["name"], self._button["value"]))
            self._button = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button_text.append(data)
        if self._textarea and self._form is not None:
            self._form.fields[self._textarea] += data


def forms_in(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


@dataclass
class Page:
    url: str
    status: int
    html: str

    def text(self) -> str:
        return " ".join(re.sub(r"<[^>]+>", " ", self.html).split())


class WebClient:
    """One visitor: a cookie jar, and a base URL that may change between requests (as a
    load balancer sends a visitor to different web hosts)."""

    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def open(self, url: str, data: dict[str, str] | None = None) -> Page:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(url, data=body)
        try:
            with self.opener.open(request, timeout=60) as response:
                return Page(response.geturl(), response.status, response.read().decode())
        except urllib.error.HTTPError as error:
            return Page(error.geturl(), error.code, error.read().decode(errors="replace"))

    def get(self, url: str) -> Page:
        return self.open(url)

    def submit(self, page: Page, button: str, values: dict[str, str] | None = None,
               base: str | None = None) -> Page:  # fmt: skip
        """Press the submit button whose label contains ``button`` on ``page``, with
        ``values`` typed in. ``base`` sends the POST to another web host."""
        for form in forms_in(page.html):
            for label, name, value in form.buttons:
                if button.lower() in label.lower():
                    fields = dict(form.fields)
                    fields.update(values or {})
                    if name:
                        fields[name] = value or ""
                    target = urllib.parse.urljoin(page.url, form.action or page.url)
                    if base:
                        parts = urllib.parse.urlsplit(target)
                        target = base + parts.path + (f"?{parts.query}" if parts.query else "")
                    if form.method == "post":
                        return self.open(target, fields)
                    query = urllib.parse.urlencode(fields)
                    return self.open(f"{target}?{query}")
        labels = [label for form in forms_in(page.html) for label, _, _ in form.buttons]
        raise AssertionError(f"no button {button!r} on {page.url}; buttons: {labels}")
