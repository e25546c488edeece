"""`flask check` run as an operator runs it: a real subprocess with production settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.smtp import free_port

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).with_name("flask"))
GOOD_KEY = "k1:" + "A" * 43


@pytest.fixture
def production_env(tmp_path: Path) -> dict[str, str]:
    database = tmp_path / "check.db"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CAMPAIGN_", "DATABASE_URL", "TEST_", "MAIL_", "CELERY_"))
    }
    env |= {
        "CAMPAIGN_ENV": "production",
        "SECRET_KEY": "s" * 48,
        "ENCRYPTION_KEYS": GOOD_KEY,
        "DATABASE_URL": f"sqlite:///{database}",
        "CELERY_BROKER_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14"),
        "BASE_URL": "https://campaign.example.org",
        "TRUSTED_HOSTS": "campaign.example.org",
        "TRUSTED_PROXY_HOPS": "1",
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/14",
        "WEB_CONCURRENCY": "4",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(free_port()),  # nothing listens: the relay check fails on its own
        "PYTHONPATH": str(ROOT),
    }
    upgraded = subprocess.run(
        [FLASK, "--app", "campaign", "db", "upgrade"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    return env


def flask_check(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLASK, "--app", "campaign", "check"], env=env, cwd=cwd,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def failures(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("FAIL")]


def test_only_the_unreachable_relay_fails_a_good_configuration(production_env, tmp_path):
    result = flask_check(production_env, tmp_path)
    assert result.returncode == 1
    assert [line.split(":")[0] for line in failures(result)] == ["FAIL mail relay"]
    assert "ok   database: Database reachable, schema at" in result.stdout


BROKEN = [
    ({"SECRET_KEY": "short"}, "FAIL secret key: SECRET_KEY is 5 characters; use at least 32."),
    ({"CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}, "FAIL broker: Broker redis://127.0.0.1:1/0"),
    ({"BASE_URL": "http://campaign.example.org"}, "FAIL base URL: BASE_URL is http://campaign"),
    ({"RATELIMIT_STORAGE_URI": "memory://"}, "FAIL rate limits: RATELIMIT_STORAGE_URI is memory:"),
    ({"CELERY_BROKER_URL": ""}, "FAIL broker: CELERY_BROKER_URL is not set: production needs"),
    ({"ENCRYPTION_KEYS": "k1:c2hvcnQ"}, "FAIL encryption keys: ENCRYPTION_KEYS: key k1 is not 32"),
    ({"TRUSTED_PROXY_HOPS": "0"}, "FAIL proxy: TRUSTED_PROXY_HOPS is 0"),
]


@pytest.mark.parametrize(("change", "expected"), BROKEN)
def test_each_problem_has_its_own_clear_line(production_env, tmp_path, change, expected):
    result = flask_check(production_env | change, tmp_path)
    assert result.returncode == 1
    assert any(line.startswith(expected) for line in failures(result)), result.stdout


def test_schema_behind_the_code_is_reported(production_env, tmp_path):
    env = production_env | {"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    result = flask_check(env, tmp_path)
    assert any("run `flask db upgrade`" in line for line in failures(result)), result.stdout


def test_production_refuses_to_start_where_check_would_fail(production_env, tmp_path):
    """Outside `flask check`, the fatal problems stop the app before it serves anything."""
    env = production_env | {"SECRET_KEY": "short", "CELERY_BROKER_URL": ""}
    result = subprocess.run(
        [FLASK, "--app", "campaign", "db", "check"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Campaign cannot start in production" in result.stderr
    assert "SECRET_KEY is 5 characters" in result.stderr
    assert "CELERY_BROKER_URL is not set" in result.stderr
