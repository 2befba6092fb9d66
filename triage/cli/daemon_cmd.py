"""``triage run`` (the daemon) and ``triage status`` (its health)."""

from __future__ import annotations

import json

import click

from triage.cli.context import AppContext, pass_app
from triage.cli.main import cli
from triage.clock import utcnow
from triage.errors import ConfigError
from triage.secrets import check_secrets
from triage.sla.deadlines import SlaPolicy
from triage.sla.humanize import format_business_seconds


@cli.command()
@pass_app
def run(app: AppContext) -> None:
    """The daemon: watch the inbox, route, acknowledge, send, watch SLAs.

    Runs until SIGTERM or SIGINT, which it obeys gracefully (the message in hand
    is finished or rolled back, IMAP logged out, the SMTP attempt in progress
    finished). SIGHUP reloads the rule files (broken new rules are refused and the
    old ones kept) and [smtp]'s connection: sending stopped by a refused SMTP login
    resumes with the fixed configuration.
    """
    settings = app.settings
    if settings.imap is None:
        raise ConfigError(f"{settings.path}: no [imap] section: there is no inbox to watch")
    if settings.smtp is None:
        raise ConfigError(f"{settings.path}: no [smtp] section: acknowledgments cannot be sent")
    check_secrets(settings)
    if settings.web.enabled:  # a taken port: one line now, not a traceback after the start
        from triage.web.serve import check_bindable  # noqa: PLC0415 - uvicorn

        check_bindable(settings.web.host, settings.web.port)
    from triage.daemon import Daemon, run_until_signalled  # noqa: PLC0415 - scikit-learn
    from triage.services.workers import sqlite_daemon_lock  # noqa: PLC0415

    db = app.database(create=True, migrate=True)  # the daemon's start migrates (and init)
    with sqlite_daemon_lock(db):  # one daemon per SQLite file; PostgreSQL takes several
        daemon = Daemon(settings, db)
        if not settings.web.enabled:
            run_until_signalled(daemon)
            return
        from triage.web.serve import build, serve_until  # noqa: PLC0415 - starlette, uvicorn

        _web_app, web_config = build(
            settings, db, clock=daemon.clock, metrics=daemon.metrics, health=daemon.health
        )
        run_until_signalled(daemon, also=lambda stop: serve_until(web_config, stop))


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)}s ago"
    if minutes < 120:
        return f"{minutes}m ago"
    return f"{minutes // 60}h {minutes % 60}m ago"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Health: last poll per folder, backlog, outbox, open and breached tickets, model.

    Exit status 1 when a folder has not been polled for 10 minutes, failed, or has
    mail the server lists but does not deliver (retried, or a placeholder whose
    ticket is still open), or
    outgoing mail failed or has been pending for 10 minutes (for monitoring).
    """
    from triage.services.status import read_status  # noqa: PLC0415
    from triage.services.workers import list_workers  # noqa: PLC0415

    settings = app.settings
    policy = SlaPolicy(settings)
    now = utcnow()
    watched: list[str] = []
    if settings.imap is not None:
        watched = settings.imap.folder_keys()
    with app.db.read_session() as session:
        state = read_status(session, now, watched=watched)
    workers = list_workers(app.db, now)
    if as_json:
        data = state.to_json()
        data["workers"] = [
            {
                "name": w.name,
                "host": w.host,
                "pid": w.pid,
                "started_at": w.started_at.isoformat(),
                "heartbeat_at": w.heartbeat_at.isoformat(),
                "alive": w.alive,
                "folders": list(w.folders),
            }
            for w in workers
        ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo("Folders:")
        if not state.folders:
            click.echo("  none polled yet")
        for f in state.folders:
            mark = " STALE (not polled for 10 minutes)" if f.stale else ""
            line = f"  {f.name}: last poll {_ago(f.seconds_since_poll)}{mark}"
            if f.uidvalidity is not None:
                line += f" (UIDVALIDITY {f.uidvalidity}, last UID {f.last_uid})"
            if f.last_error:
                line += f"; last error: {f.last_error}"
            click.echo(line)
            if f.missing:
                click.echo(
                    f"    MISSING: {f.missing} listed by the server but not delivered yet"
                    " (retried; the last UID waits below them)"
                )
            if f.undelivered:
                click.echo(
                    f"    UNDELIVERED: {f.undelivered} never delivered, stored as placeholders"
                    " in the fallback queue: read them in the mailbox, then close their tickets"
                )
        if workers:
            click.echo("Workers:")
        for w in workers:
            beat = _ago((now - w.heartbeat_at).total_seconds())
            alive = "" if w.alive else " SILENT (its folders are free for the others)"
            holds = ", ".join(w.folders) or "no folder"
            click.echo(f"  {w.name}: heartbeat {beat}{alive}; watches {holds}")
        waiting = ""
        if state.oldest_awaiting is not None:
            elapsed = policy.calendar.elapsed(state.oldest_awaiting, now)
            waiting = f", the oldest for {format_business_seconds(elapsed)} of business time"
        click.echo(f"Backlog: {state.awaiting_answer} tickets await an answer{waiting}")
        click.echo(f"Breached: {state.breached} open tickets past a deadline")
        queues = ", ".join(f"{q} {n}" for q, n in state.open_by_queue.items()) or "none"
        click.echo(f"Open tickets by queue: {queues}")
        out = state.outbox
        click.echo(
            f"Outbox: {out.pending} pending ({out.retrying} retrying), {out.failed} failed,"
            f" {out.sent} sent"
        )
        if state.outbox_stuck and out.oldest_pending_at is not None:
            age = (now - out.oldest_pending_at).total_seconds()
            click.echo(f"  STUCK: the oldest pending mail was queued {_ago(age)}")
        if out.last_error:
            click.echo(f"  last error: {out.last_error}")
        queue_model = state.models.get("queue") or "none (routing by rules and fallback only)"
        click.echo(f"Model: {queue_model}")
        if state.models.get("priority"):
            click.echo(f"Priority model: {state.models['priority']}")
        backup = state.backup
        if backup is None:
            click.echo("Backup: none recorded (`triage backup --to DIR`)")
        elif backup.last_ok:
            when = _ago((now - backup.last_at).total_seconds())
            click.echo(f"Backup: last {when}: {backup.last_archive}")
        else:
            when = _ago((now - backup.last_at).total_seconds())
            good = (
                _ago((now - backup.last_ok_at).total_seconds())
                if backup.last_ok_at is not None
                else "never"
            )
            click.echo(f"Backup: FAILED {when} ({backup.last_error}); last good one {good}")
        click.echo("Health: ok" if state.healthy else "Health: ATTENTION")
        for problem in state.problems:
            click.echo(f"  {problem}")
    if not state.healthy:
        raise SystemExit(1)
