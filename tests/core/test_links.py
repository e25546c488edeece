"""Links come from BASE_URL, never from the request (DESIGN.md rule 13).

``external_url`` gives one answer in a request with a forged Host, in a bare app
context (a task or a command) and under a BASE_URL with a port and a path prefix; in
production a request naming a foreign host is refused.
"""

from __future__ import annotations

import pytest

from campaign import create_app
from campaign.core.links import BaseURLError, external_url, parse_base_url

FORGED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
SECRET = "links-test-secret-key-0123456789abcdef"


def test_a_forged_host_changes_nothing(app, monkeypatch):
    monkeypatch.setitem(app.config, "BASE_URL", "https://campaign.example.org")
    with app.app_context():
        bare = external_url("accounts.reset_password", token="abc")
    with app.test_request_context("/forgot-password", headers=FORGED):
        in_request = external_url("accounts.reset_password", token="abc")
    with app.test_request_context("/", base_url="http://evil.example:8080/prefix"):
        other_base = external_url("accounts.reset_password", token="abc")
    assert bare == in_request == other_base == "https://campaign.example.org/reset-password/abc"


def test_the_request_would_have_given_the_forged_host(app):
    """The check above can fail: url_for's own external links follow the Host header."""
    from flask import url_for

    with app.test_request_context("/", headers=FORGED):
        assert "evil.example" in url_for("accounts.login", _external=True)


def test_it_needs_no_request_context(app, monkeypatch):
    from flask import has_request_context

    monkeypatch.setitem(app.config, "BASE_URL", "http://127.0.0.1:5000")
    with app.app_context():
        assert not has_request_context()
        assert external_url("people.subscribe", slug="riverside") == (
            "http://127.0.0.1:5000/g/riverside/subscribe"
        )


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://campaign.example.org/campaign", "https://campaign.example.org/campaign/login"),
        ("https://campaign.example.org/campaign/", "https://campaign.example.org/campaign/login"),
        ("https://Campaign.Example.org:8443/a/b", "https://campaign.example.org:8443/a/b/login"),
        ("https://campaign.example.org:443/", "https://campaign.example.org/login"),
        ("http://campaign.example.org:80", "http://campaign.example.org/login"),
    ],
)
def test_scheme_port_and_path_prefix_come_from_base_url(app, monkeypatch, base_url, expected):
    monkeypatch.setitem(app.config, "BASE_URL", base_url)
    with app.app_context():
        assert external_url("accounts.login") == expected
    with app.test_request_context("/", headers=FORGED):
        assert external_url("accounts.login") == expected


def test_query_values_and_anchor(app, monkeypatch):
    monkeypatch.setitem(app.config, "BASE_URL", "https://campaign.example.org/c")
    with app.app_context():
        url = external_url("accounts.login", next="/g/a b", ignored=None, _anchor="form")
    assert url == "https://campaign.example.org/c/login?next=/g/a+b#form"


@pytest.mark.parametrize(
    "base_url",
    ["", "campaign.example.org", "ftp://campaign.example.org", "https://",
     "https://user:pw@campaign.example.org", "https://campaign.example.org/?a=1",
     "https://campaign.example.org/#top", "https://campaign.example.org:port"],
)  # fmt: skip
def test_an_unusable_base_url_is_refused(base_url, tmp_path):
    with pytest.raises(BaseURLError):
        parse_base_url(base_url)
    with pytest.raises(RuntimeError, match="BASE_URL"):
        create_app("testing", {"BASE_URL": base_url, "MAIL_FILE_DIR": str(tmp_path)})


# --- TRUSTED_HOSTS in production ------------------------------------------------------------


def production_app(tmp_path, **settings):
    config = {
        "SECRET_KEY": SECRET,
        "ENCRYPTION_KEYS": "k1:" + "A" * 43,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.db'}",
        "BASE_URL": "https://campaign.example.org",
        "RATELIMIT_ENABLED": False,
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    return create_app("production", config | settings)


def test_production_refuses_a_foreign_host(tmp_path):
    app = production_app(tmp_path)
    assert app.config["TRUSTED_HOSTS"] == ["campaign.example.org"]
    client = app.test_client()
    assert client.get("/login", base_url="https://campaign.example.org").status_code == 200
    assert client.get("/login", base_url="https://evil.example").status_code == 400
    forged = client.post("/forgot-password", base_url="https://evil.example",
                         data={"email": "someone@example.org"})  # fmt: skip
    assert forged.status_code == 400
    # X-Forwarded-Host is not believed (no ProxyFix for it), and does not help either way.
    spoofed = client.get("/login", base_url="https://campaign.example.org",
                         headers={"X-Forwarded-Host": "evil.example"})  # fmt: skip
    assert spoofed.status_code == 200 and "evil.example" not in spoofed.get_data(as_text=True)


def test_production_trusts_the_extra_hosts_it_is_given(tmp_path):
    app = production_app(tmp_path, TRUSTED_HOSTS=["old.example.org", ".campaign.example.org"])
    assert app.config["TRUSTED_HOSTS"] == [
        "campaign.example.org", "old.example.org", ".campaign.example.org"
    ]  # fmt: skip
    client = app.test_client()
    for host in ("old.example.org", "www.campaign.example.org", "campaign.example.org:8443"):
        assert client.get("/login", base_url=f"https://{host}").status_code == 200, host
    assert client.get("/login", base_url="https://example.org").status_code == 400


def test_the_trusted_hosts_variable_is_read_from_the_environment(monkeypatch):
    import config

    monkeypatch.setenv("TRUSTED_HOSTS", " old.example.org, ,www.example.org ")
    assert config.env_list("TRUSTED_HOSTS") == ["old.example.org", "www.example.org"]
    assert config.trusted_hosts("https://campaign.example.org/x", ["Old.Example.org"]) == [
        "campaign.example.org", "old.example.org"
    ]  # fmt: skip
    with pytest.raises(RuntimeError, match="TRUSTED_HOSTS"):
        config.trusted_hosts("https://campaign.example.org", ["https://old.example.org"])


def test_production_refuses_to_start_without_base_url(tmp_path):
    with pytest.raises(RuntimeError, match="BASE_URL"):
        production_app(tmp_path, BASE_URL=None)


def test_development_trusts_every_host_unless_told(app):
    assert app.config["TRUSTED_HOSTS"] is None
