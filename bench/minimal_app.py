"""The baselines bench/run.py measures the platform against, on the same gunicorn settings.

``hello`` is Flask doing nothing; ``/db`` runs 3 queries and renders 20 rows through a
Jinja template, the least a real page does; ``POST /insert`` writes one row, the least a
sign-up does. Run with ``gunicorn bench.minimal_app:app`` and ``DATABASE_URL`` set.
"""

from __future__ import annotations

import itertools
import os

import sqlalchemy as sa
from flask import Flask, render_template_string, request

engine = sa.create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)
metadata = sa.MetaData()
rows = sa.Table(
    "bench_rows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100)),
    sa.Column("email", sa.String(320)),
)

PAGE = """<!doctype html><title>{{ title }}</title><h1>{{ title }} ({{ total }})</h1>
<ul>{% for row in rows %}<li>{{ row.name }} &lt;{{ row.email }}&gt;</li>{% endfor %}</ul>"""

app = Flask(__name__)
_counter = itertools.count()


def prepare() -> None:
    """Create the table and 20 rows (call once before starting gunicorn)."""
    metadata.create_all(engine)
    with engine.begin() as connection:
        if not connection.scalar(sa.select(sa.func.count()).select_from(rows)):
            connection.execute(
                rows.insert(),
                [{"name": f"Person {i}", "email": f"p{i}@example.org"} for i in range(20)],
            )


@app.get("/hello")
def hello() -> str:
    return "hello"


@app.get("/db")
def db_page() -> str:
    with engine.connect() as connection:
        total = connection.scalar(sa.select(sa.func.count()).select_from(rows))
        title = connection.scalar(sa.select(rows.c.name).order_by(rows.c.id).limit(1))
        listed = connection.execute(sa.select(rows).order_by(rows.c.id).limit(20)).all()
    return render_template_string(PAGE, title=title, total=total, rows=listed)


@app.post("/insert")
def insert() -> tuple[str, int, dict[str, str]]:
    name = request.form.get("name", "someone")[:100]
    with engine.begin() as connection:
        connection.execute(
            rows.insert().values(name=name, email=f"i{os.getpid()}-{next(_counter)}@example.org")
        )
    return "", 302, {"Location": "/db"}
