"""The security baseline: headers, error pages, production settings, secrets at rest."""

from __future__ import annotations

import pytest

from campaign import create_app
from campaign.core.crypto import DecryptionError, KeyRing, decrypt_field, encrypt_field
from tests.conftest import login


def test_security_headers_on_every_page(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # only in production


def test_pages_for_logged_in_people_are_not_cached(client, make):
    login(client, make.user())
    assert client.get("/account").headers["Cache-Control"] == "no-store"


def test_friendly_404_and_405(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)
    response = client.get("/logout")
    assert response.status_code == 405


def test_unexpected_errors_show_a_friendly_500(app, client):
    def explode() -> str:
        raise RuntimeError("boom")

    explode.is_public = True
    app.view_functions["groups.home"], original = explode, app.view_functions["groups.home"]
    try:
        response = client.get("/")
    finally:
        app.view_functions["groups.home"] = original
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Something went wrong" in body and "boom" not in body


def test_oversized_requests_are_refused(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = client.post("/login", data={"email": "x" * (limit + 10)})
    assert response.status_code == 413


def test_production_refuses_to_start_without_secrets(monkeypatch):
    monkeypatch.setattr("config.ProductionConfig.SECRET_KEY", None)
    monkeypatch.setattr("config.ProductionConfig.SQLALCHEMY_DATABASE_URI", "sqlite://")
    monkeypatch.setattr("config.ProductionConfig.ENCRYPTION_KEYS", "k1:" + "A" * 43)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app("production")


def test_production_settings_are_strict(monkeypatch, tmp_path):
    monkeypatch.setattr("config.ProductionConfig.SECRET_KEY", "s" * 40)
    monkeypatch.setattr("config.ProductionConfig.SQLALCHEMY_DATABASE_URI",
                        f"sqlite:///{tmp_path / 'p.db'}")  # fmt: skip
    monkeypatch.setattr("config.ProductionConfig.ENCRYPTION_KEYS", "k1:" + "A" * 43)
    monkeypatch.setattr("config.ProductionConfig.CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    app = create_app("production")
    assert not app.debug
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]
    assert app.config["SESSION_COOKIE_HTTPONLY"] and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["DEV_OUTBOX_PAGE"] is False
    response = app.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_development_keeps_its_generated_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMPAIGN_INSTANCE_PATH", str(tmp_path))
    first = create_app("development").config["SECRET_KEY"]
    second = create_app("development").config["SECRET_KEY"]
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


class TestFieldEncryption:
    def test_round_trip_and_no_plaintext(self, app):
        with app.app_context():
            stored = encrypt_field(
                "JBSWY3DPEHPK3PXP", table="users", column="totp_secret", row_id=7
            )
            assert stored.startswith("v1:t1:") and "JBSWY3DPEHPK3PXP" not in stored
            assert decrypt_field(stored, table="users", column="totp_secret", row_id=7) == (
                "JBSWY3DPEHPK3PXP"
            )

    def test_a_value_moved_to_another_row_does_not_decrypt(self, app):
        with app.app_context():
            stored = encrypt_field("secret", table="users", column="totp_secret", row_id=7)
            with pytest.raises(DecryptionError):
                decrypt_field(stored, table="users", column="totp_secret", row_id=8)

    def test_old_keys_still_decrypt_after_rotation(self, app):
        with app.app_context():
            stored = encrypt_field("secret", table="t", column="c", row_id=1)
            old_ring = app.extensions["campaign_keyring"]
            new = KeyRing.parse("t2:" + "B" * 43 + "," + app.config["ENCRYPTION_KEYS"])
            app.extensions["campaign_keyring"] = new
            try:
                assert decrypt_field(stored, table="t", column="c", row_id=1) == "secret"
                assert encrypt_field("x", table="t", column="c", row_id=1).startswith("v1:t2:")
            finally:
                app.extensions["campaign_keyring"] = old_ring

    def test_bad_key_spec_is_a_clear_error(self):
        with pytest.raises(ValueError, match="16, 24 or 32 bytes"):
            KeyRing.parse("k1:c2hvcnQ=")


def test_crypto_rotate_reseals_secrets_with_the_new_key(app, session, make):
    from campaign.accounts.services import (
        begin_totp_setup,
        reencrypt_secrets,
        totp_secret_for_display,
    )

    user = make.user()
    begin_totp_setup(user)
    secret = totp_secret_for_display(user)
    old_ring = app.extensions["campaign_keyring"]
    app.extensions["campaign_keyring"] = KeyRing.parse(
        "t2:" + "C" * 43 + "," + app.config["ENCRYPTION_KEYS"]
    )
    try:
        assert reencrypt_secrets() == 1
        assert user.totp_secret.startswith("v1:t2:")
        assert totp_secret_for_display(user) == secret
        assert reencrypt_secrets() == 0
    finally:
        app.extensions["campaign_keyring"] = old_ring


def test_translated_error_messages_are_escaped_like_any_text(client):
    from tests.conftest import post

    response = post(client, "/register", {"display_name": "<b>", "email": "x@example.org"})
    body = response.get_data(as_text=True)
    assert "Please remove the &lt; and &gt; characters." in body
    assert "Please remove the < and > characters." not in body


def test_ids_too_large_for_the_database_are_a_404(client, make):
    from tests.conftest import csrf_token, login

    organiser = make.user()
    group = make.group(organiser=organiser)
    login(client, organiser)
    for path in (
        f"/g/{group.slug}/members/99999999999999999999999/remove",
        f"/g/{group.slug}/members/0/remove",
    ):
        response = client.post(path, data={"csrf_token": csrf_token(client)})
        assert response.status_code == 404, path
