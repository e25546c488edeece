"""``flask`` commands for chores: the database, admins, demo data, mail, the quick start."""

from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from campaign.extensions import db


def register_cli(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(create_admin_command)
    app.cli.add_command(demo_command)
    app.cli.add_command(quickstart_command)
    app.cli.add_command(outbox_cli)
    app.cli.add_command(crypto_cli)
    app.cli.add_command(actions_cli)
    from campaign.mailing.cli import bounces_cli, mailing_cli

    app.cli.add_command(mailing_cli)
    app.cli.add_command(bounces_cli)
    from campaign.ops.cli import COMMANDS as ops_commands

    for command in ops_commands:
        app.cli.add_command(command)


@click.group("db", help="Database schema: upgrade, downgrade, revision, check.")
def db_cli() -> None:
    pass


@db_cli.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Bring the database schema up to REVISION (default: head)."""
    from campaign.core import migrations

    migrations.upgrade(revision)
    click.echo(f"Database upgraded to {revision}.")


@db_cli.command("downgrade")
@click.argument("revision", default="-1")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Step the schema back to REVISION (default: one step; 'base' empties it)."""
    from campaign.core import migrations

    migrations.downgrade(revision)
    click.echo(f"Database downgraded to {revision}.")


@db_cli.command("revision")
@click.option("-m", "--message", required=True)
@with_appcontext
def db_revision(message: str) -> None:
    """Write a new migration from the difference between models and database."""
    from campaign.core import migrations

    migrations.revision(message)


@db_cli.command("check")
@with_appcontext
def db_check() -> None:
    """Fail when the models and the migrated database differ."""
    from campaign.core import migrations

    differences = migrations.drift()
    if differences:
        for diff in differences:
            click.echo(f"  {diff}")
        raise click.ClickException("models and migrations differ: write a migration")
    click.echo("No difference between models and migrations.")


def _commit_and_dispatch() -> None:
    from campaign.core.outbox import dispatch_if_committed

    db.session.commit()
    dispatch_if_committed()


@click.command("create-admin")
@click.argument("email")
@click.option("--password", help="Prompted for when not given.")
@with_appcontext
def create_admin_command(email: str, password: str | None) -> None:
    """Create a platform admin (or make an existing user one)."""
    from campaign.accounts.services import create_admin

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        raise click.ClickException("Use a password of at least 10 characters.")
    user = create_admin(email, password)
    _commit_and_dispatch()
    click.echo(f"{user.email} is a platform admin.")


@click.command("demo")
@with_appcontext
def demo_command() -> None:
    """Load the demo group, its organiser and members (safe to run twice)."""
    from campaign.demo import load_demo

    summary = load_demo()
    _commit_and_dispatch()
    click.echo(summary.describe())


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


@click.command("quickstart")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--no-serve", is_flag=True, help="Prepare the database and demo data only.")
@with_appcontext
def quickstart_command(host: str, port: int, no_serve: bool) -> None:
    """Embedded default in one step: migrate, load demo data, print logins, serve."""
    from campaign import _instance_secret
    from campaign.accounts.services import create_admin
    from campaign.core import migrations
    from campaign.core.outbox import mail_file_dir
    from campaign.demo import DEMO_ADMIN_EMAIL, load_demo

    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("quickstart is for the embedded default, not production.")
    if not no_serve and _port_in_use(host, port):
        raise click.ClickException(
            f"Something is already listening on {host}:{port} (an earlier quickstart?). "
            f"Stop it, or choose another port with --port."
        )
    base = f"http://{host}:{port}"
    if not os.environ.get("BASE_URL"):
        # Links in the demo's mail must open the site this command serves.
        current_app.config["BASE_URL"] = base
    migrations.upgrade("head")
    summary = load_demo()
    # Made once and kept in the instance folder, so the login stays the same between runs.
    password_file = Path(current_app.instance_path) / "demo_admin_password"
    admin_password = _instance_secret(password_file, secrets.token_urlsafe(12))
    create_admin(DEMO_ADMIN_EMAIL, admin_password)
    _commit_and_dispatch()
    click.echo("")
    click.echo("Campaign is ready (SQLite in the instance folder, mail written to files).")
    click.echo(f"  Site:           {base}/")
    click.echo(f"  Admin login:    {DEMO_ADMIN_EMAIL}  password: {admin_password}")
    click.echo(f"  Demo organiser: {summary.organiser_email}  password: {summary.password}")
    click.echo(f"  Mail outbox:    {base}/admin/outbox  (files in {mail_file_dir()})")
    click.echo(f"The admin password is kept in {password_file}.")
    click.echo("")
    sys.stdout.flush()
    if not no_serve:
        from werkzeug.serving import run_simple

        # Flask refuses app.run() inside a CLI command; serve with Werkzeug directly.
        run_simple(host, port, current_app._get_current_object(), threaded=True)


@click.group("outbox", help="The mail outbox.")
def outbox_cli() -> None:
    pass


@outbox_cli.command("deliver")
@with_appcontext
def outbox_deliver() -> None:
    """Deliver every due message now (what the worker does)."""
    from campaign.core.outbox import deliver_due

    counts = deliver_due()
    click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))


@click.group("crypto", help="Field encryption keys.")
def crypto_cli() -> None:
    pass


@crypto_cli.command("rotate")
@with_appcontext
def crypto_rotate() -> None:
    """Re-encrypt every stored secret and sealed field with the first key of ENCRYPTION_KEYS."""
    import campaign.models  # noqa: F401 - every model with a sealed field is registered
    from campaign.accounts.services import reencrypt_secrets
    from campaign.core.crypto import reseal_stored_fields

    count = reencrypt_secrets()
    db.session.commit()
    count += reseal_stored_fields()
    db.session.commit()
    click.echo(f"{count} value(s) re-encrypted with the current key.")


@click.group("actions", help="Actions and sign-ups.")
def actions_cli() -> None:
    pass


@actions_cli.command("remind")
@with_appcontext
def actions_remind() -> None:
    """Send the reminders that are due (what Celery beat does every five minutes)."""
    from campaign.actions.services import send_due_reminders

    count = send_due_reminders()
    _commit_and_dispatch()
    click.echo(f"{count} reminder(s) queued.")
