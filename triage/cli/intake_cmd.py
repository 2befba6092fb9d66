"""Intake commands: ``triage poll --once`` and ``triage import PATH``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from triage.cli.context import AppContext, pass_app
from triage.cli.main import cli
from triage.errors import ConfigError, MailboxError, StoreError, UserError
from triage.imap.watch import StoreOutcome
from triage.services.intake import Intake, Poller
from triage.services.mailsource import open_mail_source

DEFAULT_MAX_MESSAGE_SIZE = 25 * 1024 * 1024


@cli.command()
@click.option("--once", is_flag=True, help="One pass over every watched folder, then exit.")
@pass_app
def poll(app: AppContext, once: bool) -> None:
    """Fetch new mail from every watched IMAP folder, store it, and exit.

    Exit status 0 when every folder was polled; 2 when the server failed for a
    folder, 1 when the database did (each error is printed and kept as the
    folder's last error for `triage status`).
    """
    if not once:
        raise UserError(
            "`triage poll` runs one pass and needs --once; to keep watching, use `triage run`"
        )
    settings = app.settings
    if settings.imap is None:
        raise ConfigError(f"{settings.path}: no [imap] section: nothing to poll")
    poller = Poller(settings, app.db)
    results = poller.poll_once()
    for result in results:
        if result.report is None:
            click.echo(f"{result.folder}: failed: {result.error}", err=True)
            continue
        r = result.report
        line = (
            f"{r.folder}: {r.stored} stored, {r.errors} stored with errors,"
            f" {r.duplicates + r.recognized} already stored"
        )
        if r.rescan:
            line += f" (UIDVALIDITY changed to {r.uidvalidity}: folder rescanned)"
        click.echo(line)
    failed = [r for r in results if r.report is None]
    if failed:
        summary = f"{len(failed)} of {len(results)} folders failed (see above)"
        if any(r.database_failed for r in failed):
            raise StoreError(summary)
        raise MailboxError(summary)


@cli.command(name="import")
@click.argument("path", type=click.Path(path_type=Path))
@pass_app
def import_mail(app: AppContext, path: Path) -> None:
    """Import an mbox file or a Maildir directory (history, training data).

    Each message goes through the same parse-and-store path as fetched mail,
    with source "import" and its Date header as the received time. Messages
    already stored (same Message-ID and raw bytes) are skipped, so importing
    twice adds nothing.
    """
    source = open_mail_source(path)
    settings = app.settings
    max_size = settings.imap.max_message_size if settings.imap else DEFAULT_MAX_MESSAGE_SIZE
    intake = Intake(app.db, max_message_size=max_size)
    counts: Counter[StoreOutcome] = Counter()
    console = Console(stderr=True)
    show = console.is_terminal and not app.verbose
    try:
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not show,
            transient=True,
        ) as progress:
            task = progress.add_task("import", total=len(source))
            for message in source:
                counts[intake.import_message(message.raw, fallback_date=message.fallback_date)] += 1
                progress.advance(task)
    finally:
        source.close()
    total = sum(counts.values())
    click.echo(
        f"{source.kind} {path}: {total} messages, {counts[StoreOutcome.STORED]} stored,"
        f" {counts[StoreOutcome.ERROR]} stored with errors,"
        f" {counts[StoreOutcome.RECOGNIZED] + counts[StoreOutcome.DUPLICATE]} already stored"
    )
