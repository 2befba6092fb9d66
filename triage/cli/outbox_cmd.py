"""``triage outbox``: outgoing mail waiting, failed or sent; ``triage outbox retry``."""

from __future__ import annotations

import json
from datetime import datetime
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

import click
from sqlalchemy import select

from triage.cli.context import AppContext, config_option, pass_app
from triage.cli.main import cli
from triage.clock import utcnow
from triage.errors import NotFoundError, UserError
from triage.outbox.dates import to_local
from triage.outbox.headers import header_safe
from triage.store.models import OutboxMail, Ticket

__all__ = ["outbox"]

_STATUSES = {
    "pending": ("pending",),
    "failed": ("failed",),
    "sent": ("sent",),
    "all": ("pending", "failed", "sent"),
}


def _subject(raw: bytes) -> str:
    try:
        headers = BytesHeaderParser(policy=policy.default).parsebytes(raw)
        return header_safe(str(headers["Subject"] or ""), limit=200)
    except Exception:  # noqa: BLE001 - a listing must not fail on one odd row
        return ""


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _row(mail: OutboxMail, ref: int | None) -> dict[str, Any]:
    return {
        "id": mail.id,
        "kind": mail.kind,
        "status": mail.status,
        "ticket": ref,
        "to": list(mail.rcpt_to),
        "subject": _subject(mail.raw),
        "message_id": mail.message_id,
        "attempts": mail.attempts,
        "next_attempt_at": _iso(mail.next_attempt_at) if mail.status == "pending" else None,
        "last_error": mail.last_error,
        "created_at": _iso(mail.created_at),
        "sent_at": _iso(mail.sent_at),
    }


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@cli.group(invoke_without_command=True)
@click.option(
    "--status",
    type=click.Choice(sorted(_STATUSES)),
    default=None,
    help="Which mail to list (default: pending and failed).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (times in UTC).")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@config_option
@click.pass_context
def outbox(ctx: click.Context, status: str | None, as_json: bool, limit: int) -> None:
    """Outgoing mail (acknowledgments, replies, escalations) that is pending or failed.

    Shows attempts, the next attempt (local time) and the server's last error.
    `triage outbox retry ID` sends a failed mail again.
    """
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(AppContext)
    assert app is not None  # noqa: S101 - the cli group sets it
    statuses = _STATUSES[status] if status else ("pending", "failed")
    with app.db.read_session() as s:
        rows = s.execute(
            select(OutboxMail, Ticket.ref)
            .outerjoin(Ticket, Ticket.id == OutboxMail.ticket_id)
            .where(OutboxMail.status.in_(statuses))
            .order_by(OutboxMail.id.desc())
            .limit(limit)
        ).all()
        items = [_row(mail, ref) for mail, ref in rows]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    if not items:
        click.echo(f"no {' or '.join(statuses)} mail in the outbox")
        return
    timezone = app.settings.calendar.timezone
    header = f"{'ID':>6}  {'KIND':<10} {'STATUS':<8} {'TICKET':<7} {'TO':<28} {'TRIES':>5}  "
    header += f"{'NEXT ATTEMPT':<16}  LAST ERROR"
    click.echo(header)
    for item in items:
        next_at = ""
        if item["next_attempt_at"]:
            local = to_local(datetime.fromisoformat(item["next_attempt_at"]), timezone)
            next_at = f"{local:%Y-%m-%d %H:%M}"
        ticket = f"#{item['ticket']}" if item["ticket"] is not None else "-"
        click.echo(
            f"{item['id']:>6}  {item['kind']:<10} {item['status']:<8} {ticket:<7} "
            f"{_clip(', '.join(item['to']), 28):<28} {item['attempts']:>5}  {next_at:<16}  "
            f"{_clip(item['last_error'], 70)}"
        )


@outbox.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--all-failed", is_flag=True, help="Retry every failed mail.")
@pass_app
def retry(app: AppContext, ids: tuple[int, ...], all_failed: bool) -> None:
    """Queue failed (or waiting) mail for an immediate new attempt, with a fresh attempt count.

    A mail already sent is refused: retrying it would send a second copy.
    """
    if not ids and not all_failed:
        raise UserError("give the outbox IDs to retry, or --all-failed")
    now = utcnow()
    done = []
    with app.db.session() as s:
        query = select(OutboxMail)
        if all_failed:
            query = query.where(OutboxMail.status == "failed")
        else:
            query = query.where(OutboxMail.id.in_(ids))
        rows = {row.id: row for row in s.scalars(query)}
        for wanted in ids:
            if wanted not in rows:
                raise NotFoundError(f"outbox {wanted}: no such mail")
            if rows[wanted].status == "sent":
                raise UserError(
                    f"outbox {wanted} was already sent; retrying would send a second copy"
                )
        for row in rows.values():
            row.status = "pending"
            row.attempts = 0
            row.next_attempt_at = now
            row.lease_until = None
            done.append(row.id)
    if not done:
        click.echo("nothing to retry")
    for outbox_id in sorted(done):
        click.echo(f"outbox {outbox_id}: queued for a new attempt")
