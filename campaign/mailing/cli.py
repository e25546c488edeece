"""``flask mailing ...``: chores for campaign email."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.group("mailing", help="Campaign email to supporters.")
def mailing_cli() -> None:
    pass


@mailing_cli.command("send-due")
@with_appcontext
def send_due() -> None:
    """Queue scheduled mailings whose time has come (what the beat task does each minute)."""
    from campaign.mailing.tasks import run_due_mailings

    result = run_due_mailings()
    click.echo(
        f"{result['queued']} mailing(s) queued for {result['recipients']} recipient(s); "
        f"{result['finished']} finished."
    )
