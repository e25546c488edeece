"""/healthz: up or down for monitors, with nothing else in it."""

from __future__ import annotations

from campaign.ops import views


def test_healthy_site_answers_ok_without_details(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_an_unreachable_broker_makes_it_unavailable(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setitem(views._broker_state, "checked", 0.0)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable"}


def test_every_response_carries_a_request_id_and_error_pages_show_it(client):
    response = client.get("/healthz", headers={"X-Request-ID": "proxy-abc-12345"})
    assert response.headers["X-Request-ID"] == "proxy-abc-12345"
    forged = client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert (
        forged.headers["X-Request-ID"] != "<script>" and len(forged.headers["X-Request-ID"]) == 32
    )


def test_request_logs_name_the_route_never_the_path_or_query(app, client, make, caplog):
    import logging

    group = make.group()
    with caplog.at_level(logging.INFO, logger="campaign.requests"):
        client.get(f"/g/{group.slug}?email=someone@example.org", headers={"X-Request-ID": "r" * 16})
    lines = [r.msg for r in caplog.records if r.name == "campaign.requests"]
    assert lines and lines[-1]["request_id"] == "r" * 16
    assert lines[-1]["route"] == "/g/<slug>" and lines[-1]["method"] == "GET"
    assert "someone" not in repr(lines) and group.slug not in repr(lines)
