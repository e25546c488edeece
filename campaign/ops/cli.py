"""Operator commands: check a production configuration, back up and restore."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import current_app

from campaign.ops.backup import BackupError, backup, restore
from campaign.ops.checks import run_checks


@click.command("check")
def check_command() -> None:
    """Check that this configuration is fit for production; exit 1 if anything is wrong."""
    findings = run_checks(current_app)
    for finding in findings:
        mark = "ok  " if finding.ok else "FAIL"
        click.echo(f"{mark} {finding.check}: {finding.message}")
    failed = [f for f in findings if not f.ok]
    if failed:
        click.echo(f"\n{len(failed)} problem(s) found.", err=True)
        sys.exit(1)
    click.echo("\nAll checks passed.")


@click.command("backup")
@click.argument("target", required=False, type=click.Path(dir_okay=False, path_type=Path))
def backup_command(target: Path | None) -> None:
    """Write the database and uploads to TARGET (default: campaign-<time>.tar.gz)."""
    if target is None:
        target = Path(f"campaign-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar.gz")
    try:
        result = backup(target)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"Backed up {result.rows} rows in {result.tables} tables and "
        f"{result.uploads} uploaded file(s) to {result.path}"
    )


@click.command("restore")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database that is not empty.")
def restore_command(source: Path, force: bool) -> None:
    """Restore SOURCE (made by `flask backup`) into an empty database."""
    try:
        result = restore(source, force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"Restored {result['rows']} rows in {result['tables']} tables and "
        f"{result['uploads']} uploaded file(s) from the backup made {result['created_at']}"
    )


COMMANDS = [check_command, backup_command, restore_command]
