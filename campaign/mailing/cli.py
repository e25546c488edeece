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


@click.group("bounces", help="Inbound mail: bounces, spam complaints, unsubscribe requests.")
def bounces_cli() -> None:
    pass


@bounces_cli.command("ingest")
@click.argument("sources", nargs=-1, required=True)
@with_appcontext
def bounces_ingest(sources: tuple[str, ...]) -> None:
    """Read inbound messages from files, directories (e.g. a Maildir's new/) or '-' (stdin).

    A permanent failure, repeated temporary failures or a spam complaint about a message
    a group sent takes the address off that group's mail (docs/bounces.md). Files in a
    directory are deleted once their message has been applied.
    """
    import sys
    from pathlib import Path

    from campaign.extensions import db
    from campaign.mailing.bounces import IngestResult, ingest_bounce

    result = IngestResult()
    for source in sources:
        if source == "-":
            ingest_bounce(sys.stdin.buffer.read(), result)
            db.session.commit()
            continue
        path = Path(source)
        if not path.exists():
            raise click.BadParameter(f"{source}: no such file or directory", param_hint="SOURCES")
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files:
            ingest_bounce(file.read_bytes(), result)
            db.session.commit()
            if path.is_dir():
                file.unlink()
    click.echo(
        f"{result.messages} message(s): {result.permanent} permanent failure(s), "
        f"{result.temporary} temporary failure(s), {result.complaints} complaint(s); "
        f"{result.suppressed} address(es) suppressed; "
        f"{result.unsubscribed} unsubscribe request(s); "
        f"{result.unmatched} about no message we sent (ignored); {result.neither} neither."
    )
