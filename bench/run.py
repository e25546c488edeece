"""The web benchmark: the platform's pages beside two baselines, in one run.

    python bench/run.py                                   # a throwaway PostgreSQL database
    python bench/run.py --database-url sqlite:////tmp/bench.db
    python bench/run.py --seconds 10 --connections 32

Starts two gunicorn servers with the same settings (2 sync workers, loopback): the
minimal app of bench/minimal_app.py (hello world, a 3-query page of 20 rows, an insert
POST) and the platform in production settings. Each URL is loaded by N concurrent
connections for a few seconds; the table gives requests a second, p50 and p99 latency,
errors, and each page's ratio to the minimal DB page (the sign-up POST to the minimal
insert POST). Then: SQL queries per page with small and large data, measured in-process,
and the resident memory of every gunicorn worker after the load.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
FLASK = str(Path(sys.executable).with_name("flask"))
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SECRET = "bench-secret-" + "x" * 40
KEYS = "b1:" + "A" * 43


# --- load generation ------------------------------------------------------------------


@dataclass
class Result:
    label: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


Request = Callable[[http.client.HTTPConnection], bool]


def load(label: str, port: int, make_request: Callable[[], Request], seconds: float,
         connections: int) -> Result:  # fmt: skip
    """``connections`` threads, each sending requests back to back for ``seconds``."""
    result = Result(label)
    lock = threading.Lock()
    start_gate = threading.Barrier(connections + 1)
    stop_at = [0.0]

    def worker() -> None:
        send = make_request()
        mine: list[float] = []
        errors = 0
        start_gate.wait()
        while time.perf_counter() < stop_at[0]:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            began = time.perf_counter()
            try:
                ok = send(connection)
            except (OSError, http.client.HTTPException):
                ok = False
            finally:
                connection.close()
            if ok:
                mine.append(time.perf_counter() - began)
            else:
                errors += 1
        with lock:
            result.latencies.extend(mine)
            result.errors += errors

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start_gate.wait()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    return result


def get(path: str, host: str) -> Callable[[], Request]:
    def make() -> Request:
        def send(connection: http.client.HTTPConnection) -> bool:
            connection.request("GET", path, headers={"Host": host})
            response = connection.getresponse()
            response.read()
            return response.status == 200

        return send

    return make


def signup_post(path: str, port: int, host: str) -> Callable[[], Request]:
    """Each connection first opens the action page for its cookie and CSRF token, as a
    browser does, then signs up a new address per request."""

    def make() -> Request:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        page = response.read().decode()
        pairs = [c.split(";", 1)[0] for c in response.msg.get_all("Set-Cookie") or []]
        cookie = "; ".join(pair for pair in pairs if not pair.endswith("="))
        connection.close()
        match = CSRF_RE.search(page)
        token = match.group(1) if match else ""

        def send(connection: http.client.HTTPConnection) -> bool:
            body = urllib.parse.urlencode(
                {
                    "csrf_token": token,
                    "name": "Bench Person",
                    "email": f"bench-{uuid.uuid4().hex[:12]}@example.org",
                }  # fmt: skip
            )
            connection.request("POST", path, body=body, headers={
                "Host": host, "Cookie": cookie,
                "Content-Type": "application/x-www-form-urlencoded",
            })  # fmt: skip
            response = connection.getresponse()
            answer = response.read()
            if response.status != 302 and os.environ.get("BENCH_DEBUG"):
                print(response.status, re.findall(rb"<p>(.*?)</p>", answer), file=sys.stderr)
            return response.status == 302

        return send

    return make


def insert_post(path: str, host: str) -> Callable[[], Request]:
    def make() -> Request:
        def send(connection: http.client.HTTPConnection) -> bool:
            connection.request("POST", path, body="name=bench", headers={
                "Host": host, "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            response = connection.getresponse()
            response.read()
            return response.status == 302

        return send

    return make


# --- servers ------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(app: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    server = subprocess.Popen(
        [GUNICORN, "--workers", "2", "--worker-class", "sync", "--bind", f"127.0.0.1:{port}",
         "--timeout", "60", "--log-level", "warning", app],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz" if "campaign" in app else "/hello")
            connection.getresponse().read()
            connection.close()
            return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit(
                    f"gunicorn {app} exited: {server.stderr.read().decode()}"
                ) from None
            time.sleep(0.3)
    raise SystemExit(f"gunicorn {app} did not start")


def worker_rss_mb(server: subprocess.Popen) -> list[float]:
    """Resident memory of the gunicorn master's children (its workers)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    sizes = []
    for pid in children.read_text().split() if children.exists() else []:
        status = Path(f"/proc/{pid}/status").read_text()
        kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
        sizes.append(kb / 1024)
    return sizes


# --- data -------------------------------------------------------------------------------


def platform_env(database_url: str, port: int, instance: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "TEST_"))}
    return env | {
        "CAMPAIGN_ENV": "production",
        "CAMPAIGN_INSTANCE_PATH": str(instance),
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "ENCRYPTION_KEYS": KEYS,
        "BASE_URL": f"http://127.0.0.1:{port}",
        "CELERY_BROKER_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
        "RATELIMIT_ENABLED": "0",
        "SESSION_COOKIE_SECURE": "0",
        "SEND_HSTS": "0",
        "REQUEST_LOGS": "0",
        "WEB_CONCURRENCY": "2",
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/13",
        "PYTHONPATH": str(ROOT),
    }


def seed(env: dict[str, str], extra_groups: int) -> dict[str, str]:
    """Migrate, load the demo, add groups and an action with room for everyone."""
    for command in (["db", "upgrade"], ["demo"]):
        done = subprocess.run([FLASK, "--app", "campaign", *command], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"flask {' '.join(command)} failed: {done.stderr}")
    os.environ.update(env)  # read once, when config is first imported just below
    from campaign import create_app
    from campaign.actions.models import Action, ActionKind, ActionStatus
    from campaign.core.models import utcnow
    from campaign.extensions import db
    from campaign.groups.models import Group, GroupStatus

    app = create_app("production")
    with app.app_context():
        group = db.session.scalar(sa.select(Group).order_by(Group.id).limit(1))
        starts = utcnow() + timedelta(days=30)
        action = Action(
            group_id=group.id, title="Benchmark rally", kind=ActionKind.PROTEST,
            description="A rally used by the benchmark.", starts_at=starts,
            ends_at=starts + timedelta(hours=2), place_name="Town square", area="Riverside",
            capacity=1_000_000, status=ActionStatus.PUBLISHED, published_at=utcnow(),
        )  # fmt: skip
        db.session.add(action)
        for n in range(extra_groups):
            db.session.add(Group(
                slug=f"bench-group-{n}", name=f"Bench group {n}", area="Elsewhere",
                description="A group made by the benchmark.",
                contact_email=f"bench{n}@example.org", status=GroupStatus.APPROVED,
            ))  # fmt: skip
        db.session.commit()
        return {"group": group.slug, "action": f"/g/{group.slug}/actions/{action.id}"}


def query_counts(paths: dict[str, str]) -> dict[str, int]:
    """SQL statements each page runs, counted in-process on the same database."""
    from campaign import create_app
    from campaign.extensions import db

    app = create_app("production", {"REQUEST_LOGS": False})
    counts: dict[str, int] = {}
    with app.app_context():
        seen = [0]

        @sa.event.listens_for(db.engine, "before_cursor_execute")
        def _count(*_args: object) -> None:
            seen[0] += 1

        client = app.test_client()
        for label, path in paths.items():
            base = app.config["BASE_URL"]
            client.get(path, base_url=base)  # warm caches
            seen[0] = 0
            client.get(path, base_url=base)
            counts[label] = seen[0]
    return counts


# --- the run ------------------------------------------------------------------------------


def throwaway_postgres(suffix: str = "") -> tuple[str, Callable[[], None]]:
    server = os.environ.get(
        "BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    name = f"campaign_bench_{os.getpid()}{suffix}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return sa.make_url(server).set(database=name).render_as_string(hide_password=False), drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a throwaway PostgreSQL database")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--large-groups", type=int, default=500,
                        help="groups added for the large-data query counts")  # fmt: skip
    parser.add_argument("--big-lists", type=int, default=100_000,
                        help="supporters for the organiser pages' part (0 to skip)")  # fmt: skip
    args = parser.parse_args()

    cleanup: list[Callable[[], None]] = []
    if args.database_url:
        database_url = args.database_url
    else:
        database_url, drop = throwaway_postgres()
        cleanup.append(drop)
    servers: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            platform_port, minimal_port = free_port(), free_port()
            env = platform_env(database_url, platform_port, Path(tmp) / "instance")
            paths = seed(env, extra_groups=0)
            small = query_counts({
                "home": "/", "groups directory": "/groups", "group page": f"/g/{paths['group']}",
                "action page": paths["action"],
            })  # fmt: skip

            minimal_env = env | {"DATABASE_URL": database_url}
            subprocess.run([sys.executable, "-c", "import bench.minimal_app as m; m.prepare()"],
                           env=minimal_env, cwd=ROOT, check=True)  # fmt: skip
            servers.append(start_gunicorn("bench.minimal_app:app", minimal_port, minimal_env))
            platform = start_gunicorn("campaign.wsgi:app", platform_port, env)
            servers.append(platform)
            host = f"127.0.0.1:{platform_port}"
            mhost = f"127.0.0.1:{minimal_port}"

            def run(label: str, port: int, make: Callable[[], Request]) -> Result:
                return load(label, port, make, args.seconds, args.connections)

            results = [
                run("minimal: hello world", minimal_port, get("/hello", mhost)),
                run("minimal: 3 queries, 20 rows", minimal_port, get("/db", mhost)),
                run("minimal: insert POST", minimal_port, insert_post("/insert", mhost)),
                run("home", platform_port, get("/", host)),
                run("groups directory", platform_port, get("/groups", host)),
                run("group page", platform_port, get(f"/g/{paths['group']}", host)),
                run("action page", platform_port, get(paths["action"], host)),
                run(
                    "public sign-up POST",
                    platform_port,
                    signup_post(paths["action"], platform_port, host),
                ),  # fmt: skip
            ]
            rss = worker_rss_mb(platform)
            seed_large(env, args.large_groups)
            large = query_counts({
                "home": "/", "groups directory": "/groups", "group page": f"/g/{paths['group']}",
                "action page": paths["action"],
            })  # fmt: skip
            report(database_url, args, results, small, large, rss, args.large_groups)
        if args.big_lists:
            big_lists(database_url if args.database_url else None, args.big_lists)
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        for step in cleanup:
            step()
    return 0


def big_lists(database_url: str | None, supporters: int) -> None:
    """The organiser's supporters list and sent-mail report with a big list, through
    bench/pages_bench.py (on a database of its own: it empties the one it is given)."""
    print(f"\nOrganiser pages with {supporters:,} supporters (bench/pages_bench.py):")
    cleanup = None
    if database_url is None or sa.make_url(database_url).get_backend_name() == "postgresql":
        url, cleanup = throwaway_postgres(suffix="_pages")
    else:
        url = None  # pages_bench makes its own temporary SQLite file
    command = [sys.executable, str(ROOT / "bench" / "pages_bench.py"), "-n", str(supporters),
               "--requests", "100"] + (["--database-url", url] if url else [])  # fmt: skip
    try:
        subprocess.run(command, cwd=ROOT, check=False)
    finally:
        if cleanup:
            cleanup()


def seed_large(env: dict[str, str], groups: int) -> None:
    from campaign import create_app
    from campaign.extensions import db
    from campaign.groups.models import Group, GroupStatus

    app = create_app("production")
    with app.app_context():
        for n in range(groups):
            db.session.add(Group(
                slug=f"bench-large-{n}", name=f"Bench large {n}", area="Elsewhere",
                description="A group made by the benchmark.",
                contact_email=f"large{n}@example.org", status=GroupStatus.APPROVED,
            ))  # fmt: skip
        db.session.commit()


def report(database_url: str, args: argparse.Namespace, results: list[Result],
           small: dict[str, int], large: dict[str, int], rss: list[float],
           large_groups: int) -> None:  # fmt: skip
    by_label = {r.label: r for r in results}
    db_page = by_label["minimal: 3 queries, 20 rows"]
    insert = by_label["minimal: insert POST"]
    kind = sa.make_url(database_url).get_backend_name()
    print(f"\nCampaign web benchmark: {kind}, gunicorn 2 sync workers, "
          f"{args.connections} connections, {args.seconds:.0f} s per URL\n")  # fmt: skip
    print(f"{'page':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'ratio':>8}")
    for result in results:
        if result.label.startswith("minimal"):
            ratio = ""
        elif "POST" in result.label:
            ratio = f"{result.rps / insert.rps:.0%} ins" if insert.rps else "-"
        else:
            ratio = f"{result.rps / db_page.rps:.0%}" if db_page.rps else "-"
        print(f"{result.label:34} {result.rps:8.0f} {result.percentile(0.5):8.1f} "
              f"{result.percentile(0.99):8.1f} {result.errors:7d} {ratio:>8}")  # fmt: skip
    print(f"\nSQL queries per page (small data / with {large_groups} more groups)")
    for label, count in small.items():
        print(f"  {label:30} {count:4d} / {large.get(label, 0):4d}")
    print("\nRSS per gunicorn worker after the load: "
          + ", ".join(f"{mb:.0f} MB" for mb in rss))  # fmt: skip
    print("Ratios: public pages against the minimal 3-query page, the sign-up POST against "
          "the minimal insert POST (targets 60% and 50%).")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
