"""The quick start as a newcomer runs it: a real `flask quickstart` subprocess."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).with_name("flask"))


def quickstart(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CAMPAIGN_", "DATABASE_URL", "TEST_", "CELERY_", "MAIL_"))
    }
    env |= {"CAMPAIGN_INSTANCE_PATH": str(tmp_path / "instance"), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [FLASK, "--app", "campaign", "quickstart", *args], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def admin_password(output: str) -> str:
    match = re.search(r"Admin login:\s+\S+\s+password: (\S+)", output)
    assert match, output
    return match.group(1)


def test_the_admin_login_stays_the_same_between_runs(tmp_path):
    first = quickstart(tmp_path, "--no-serve")
    assert first.returncode == 0, first.stderr
    second = quickstart(tmp_path, "--no-serve")
    assert second.returncode == 0, second.stderr
    assert admin_password(first.stdout) == admin_password(second.stdout)
    assert "demo_admin_password" in second.stdout


def test_a_taken_port_is_reported_before_anything_else(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = quickstart(tmp_path, "--port", str(port))
    assert result.returncode != 0
    assert result.stdout == ""
    assert f"Something is already listening on 127.0.0.1:{port}" in result.stderr
