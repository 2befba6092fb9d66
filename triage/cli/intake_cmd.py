"""Intake commands: ``triage poll --once`` and ``triage import PATH``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from triage.cli.context import AppContext, pass_app
from triage.cli.main import cli
from triage.errors import MailboxError, StoreError, UserError
from triage.imap.watch import StoreOutcome
from triage.secrets import check_secrets
from triage.services.mailsource import open_mail_source

DEFAULT_MAX_MESSAGE_SIZE = 25 * 1024 * 1024


@cli.command()
@click.option("--once", is_flag=True, help="One pass over every watched folder, then exit.")
@pass_app
def poll(app: AppContext, once: bool) -> None:
    """One full pass: fetch new mail from every watched folder, route it, send, exit.

    Without [imap] nothing is fetched, but the SLA watch runs and queued mail
    (replies, escalations) is sent.

    Each new message is stored, routed (rules, model, fallback), opens or joins
    its ticket and gets its acknowledgment queued, in one transaction; then the
    SLA watch runs and due outgoing mail is sent.

    Refuses to start, as `triage run` does, when a secret the config names cannot
    be read or the OAuth2 sign-in is missing or unusable.

    Exit status 0 when every folder was polled; 2 when the server failed for a
    folder, 1 when the database did (each error is printed and kept as the
    folder's last error for `triage status`).
    """
    if not once:
        raise UserError(
            "`triage poll` runs one pass and needs --once; to keep watching, use `triage run`"
        )
    settings = app.settings
    # what `triage run` refuses, refused here the same way (one line naming the key)
    check_secrets(settings)
    from triage.daemon import Daemon  # noqa: PLC0415 - the daemon's parts

    # One pass of the daemon (cron's `triage run`): it migrates at start like the daemon;
    # the models load when the first new message needs them (none: no scikit-learn).
    daemon = Daemon(settings, app.database(create=True, migrate=True), lazy_models=True)
    summary = daemon.poll_once()
    results = summary.folders
    if settings.imap is None:
        click.echo("no [imap] section: nothing fetched")
    for result in results:
        if result.held_by:
            click.echo(f"{result.folder}: left to worker {result.held_by}, which watches it")
            continue
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
    sent = summary.sent
    outbox = (
        f"outbox: {sent.sent} sent, {sent.deferred} deferred, {sent.failed} failed"
        if settings.smtp is not None
        else "outbox: nothing sent (no [smtp] section)"
    )
    click.echo(f"{outbox}; SLA watch: {summary.escalations} new warnings/escalations")
    failed = [r for r in results if r.report is None and not r.held_by]
    if failed:
        problem = f"{len(failed)} of {len(results)} folders failed (see above)"
        if any(r.database_failed for r in failed):
            raise StoreError(problem)
        raise MailboxError(problem)


@cli.command(name="import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--open-tickets",
    is_flag=True,
    help="Also route each message and open or join its ticket (no acknowledgments).",
)
@pass_app
def import_mail(app: AppContext, path: Path, open_tickets: bool) -> None:
    """Import an mbox file or a Maildir directory (history, training data).

    Each message goes through the same parse-and-store path as fetched mail,
    with source "import" and its Date header as the received time. Messages
    already stored (same Message-ID and raw bytes) are skipped, so importing
    twice adds nothing. By default messages are only stored (history, training
    data); with --open-tickets they are routed into tickets as well, with their
    SLA clocks started at their Date, but never acknowledged.
    """
    source = open_mail_source(path)
    settings = app.settings
    max_size = settings.imap.max_message_size if settings.imap else DEFAULT_MAX_MESSAGE_SIZE
    from triage.assembly import assemble  # noqa: PLC0415 - the pipeline loads scikit-learn

    intake = assemble(
        settings,
        app.database(create=True),
        route=open_tickets,
        poll=False,
        max_message_size=max_size,
    ).intake
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
    already = counts[StoreOutcome.RECOGNIZED] + counts[StoreOutcome.DUPLICATE]
    if open_tickets and already:
        click.echo(
            f"note: the {already} already stored were not routed again"
            " (--open-tickets routes only the messages this import stores)"
        )
