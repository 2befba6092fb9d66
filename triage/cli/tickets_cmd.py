"""Assistants' commands: ``queue``, ``show``, ``claim``, ``assign``, ``wait``, ``done``,
``move`` and ``reply``.

Who "I" am: ``--as NAME``, else ``$TRIAGE_USER``, else the login name; when
``[team.assistants]`` lists names, it must be one of them. A ticket is named by its
reference, with or without ``#``. Unknown tickets, queues and assistants are one
line on stderr and exit status 2; so is a ticket someone else claimed first.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from triage.cli.context import AppContext, pass_app
from triage.cli.main import cli
from triage.cli.tables import plain_table, rich_table
from triage.cli.terminal import terminal_safe
from triage.clock import utcnow
from triage.config import Settings
from triage.domain import TicketStatus
from triage.errors import ConflictError, NotFoundError, UserError
from triage.refs import format_ref
from triage.sla.deadlines import SlaPolicy
from triage.store.models import Message, Ticket
from triage.tickets.assignment import assign, claim, move
from triage.tickets.lifecycle import set_status
from triage.tickets.lookup import get_ticket
from triage.tickets.queue import list_queue
from triage.tickets.reply import queue_reply
from triage.tickets.view import render_ticket

__all__ = ["resolve_user"]

USER_ENV = "TRIAGE_USER"
T = TypeVar("T")

_AS = click.option("--as", "as_name", metavar="NAME", help="Act as this assistant.")


def resolve_user(settings: Settings, as_name: str | None) -> str:
    """Who is acting: ``as_name``, else ``$TRIAGE_USER``, else the login name.

    Raises:
        NotFoundError: ``[team.assistants]`` is configured and does not list the name.
    """
    name = (as_name or os.environ.get(USER_ENV) or getpass.getuser()).strip()
    known = settings.team.assistants
    if known and name not in known:
        raise NotFoundError(
            f"you are {name!r}, who is not in [team.assistants] ({', '.join(sorted(known))}):"
            f" use --as NAME or set {USER_ENV}"
        )
    return name


def known_assistant(settings: Settings, name: str) -> str:
    """``name`` if it is an assistant (or no assistants are configured).

    Raises:
        NotFoundError: not in ``[team.assistants]``.
    """
    known = settings.team.assistants
    if known and name not in known:
        raise NotFoundError(
            f"no assistant {name!r} in [team.assistants] ({', '.join(sorted(known))})"
        )
    return name


@contextmanager
def _ticket_change(app: AppContext) -> Iterator[Session]:
    """One transaction; a concurrent change to the same ticket becomes a ConflictError."""
    try:
        with app.db.session() as session:
            yield session
    except StaleDataError:
        raise ConflictError("the ticket was changed by someone else meanwhile; try again") from None


def _act(app: AppContext, ref: str, action: Callable[[Session, Ticket, SlaPolicy], T]) -> T:
    policy = SlaPolicy(app.settings)
    with _ticket_change(app) as session:
        ticket = get_ticket(session, ref)
        return action(session, ticket, policy)


# --- queue -------------------------------------------------------------------------------


@cli.command("queue")
@click.option("--queue", "queue_name", metavar="Q", help="Only this queue.")
@click.option("--mine", is_flag=True, help="Only tickets assigned to me.")
@_AS
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_app
def queue_cmd(
    app: AppContext, queue_name: str | None, mine: bool, as_name: str | None, as_json: bool
) -> None:
    """The prioritized queue: breached first, then by due time, priority and age."""
    settings = app.settings
    if queue_name is not None and queue_name not in settings.queues:
        raise NotFoundError(
            f"no queue {queue_name!r} (queues: {', '.join(sorted(settings.queues))})"
        )
    me = resolve_user(settings, as_name) if mine else None
    policy = SlaPolicy(settings)
    with app.db.read_session() as session:
        rows = list_queue(session, policy, utcnow(), queue=queue_name, assignee=me)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no open tickets")
        return
    from rich.console import Console  # noqa: PLC0415 - rich is slow to import

    if Console().is_terminal:
        rich_table(rows)
    else:
        click.echo(plain_table(rows))


# --- show --------------------------------------------------------------------------------


@cli.command("show")
@click.argument("ref")
@click.option("--quoted", is_flag=True, help="Unfold the quoted history of each message.")
@pass_app
def show_cmd(app: AppContext, ref: str, quoted: bool) -> None:
    """A ticket: deadlines, routing explanation, messages (newest first), audit trail."""
    policy = SlaPolicy(app.settings)
    with app.db.read_session() as session:
        ticket = get_ticket(session, ref)
        text = render_ticket(session, ticket, policy, utcnow(), quoted=quoted)
    click.echo(terminal_safe(text))


# --- changes -----------------------------------------------------------------------------


@cli.command("claim")
@click.argument("ref")
@_AS
@pass_app
def claim_cmd(app: AppContext, ref: str, as_name: str | None) -> None:
    """Take a ticket (fails if someone else has it)."""
    me = resolve_user(app.settings, as_name)
    now = utcnow()

    def take(session: Session, ticket: Ticket, _policy: SlaPolicy) -> tuple[bool, str]:
        shown = format_ref(ticket.ref or 0)
        if ticket.status in {TicketStatus.SOLVED.value, TicketStatus.CLOSED.value}:
            holder = f" (assigned to {ticket.assignee})" if ticket.assignee else ""
            raise ConflictError(
                f"{shown} is {ticket.status}{holder}: there is nothing to claim;"
                " a new message from the client reopens it"
            )
        return claim(session, ticket, me, now=now), shown

    done, shown = _act(app, ref, take)
    click.echo(f"{shown} claimed by {me}" if done else f"{shown} is already yours")


@cli.command("assign")
@click.argument("ref")
@click.argument("name")
@_AS
@pass_app
def assign_cmd(app: AppContext, ref: str, name: str, as_name: str | None) -> None:
    """Give a ticket to an assistant."""
    settings = app.settings
    who = known_assistant(settings, name)
    me = resolve_user(settings, as_name)
    now = utcnow()
    done, shown = _act(
        app, ref, lambda s, t, _p: (assign(s, t, who, actor=me, now=now), format_ref(t.ref or 0))
    )
    click.echo(f"{shown} assigned to {who}" if done else f"{shown} is already {who}'s")


def _status_command(name: str, status: TicketStatus, summary: str, said: str) -> None:
    @cli.command(name, help=summary)
    @click.argument("ref")
    @_AS
    @pass_app
    def command(app: AppContext, ref: str, as_name: str | None) -> None:
        me = resolve_user(app.settings, as_name)
        now = utcnow()

        def change(session: Session, ticket: Ticket, policy: SlaPolicy) -> tuple[bool, str]:
            done = set_status(session, ticket, status, actor=me, policy=policy, now=now)
            return done, format_ref(ticket.ref or 0)

        done, shown = _act(app, ref, change)
        click.echo(f"{shown} {said}" if done else f"{shown} is already {status.value}")


_status_command(
    "wait", TicketStatus.WAITING, "Waiting on the client: the SLA clock pauses.", "is waiting"
)
_status_command("done", TicketStatus.SOLVED, "Mark a ticket solved.", "solved")


@cli.command("move")
@click.argument("ref")
@click.argument("queue_name", metavar="QUEUE")
@_AS
@pass_app
def move_cmd(app: AppContext, ref: str, queue_name: str, as_name: str | None) -> None:
    """Correct a ticket's queue (stored as a training label for the classifier)."""
    me = resolve_user(app.settings, as_name)
    now = utcnow()

    def change(session: Session, ticket: Ticket, policy: SlaPolicy) -> tuple[bool, str]:
        done = move(session, ticket, queue_name, actor=me, policy=policy, now=now)
        return done, format_ref(ticket.ref or 0)

    done, shown = _act(app, ref, change)
    click.echo(f"{shown} moved to {queue_name}" if done else f"{shown} is already in {queue_name}")


# --- reply -------------------------------------------------------------------------------

_EDITOR_HINT = "# Write your reply above. Lines starting with '#' are left out.\n"


def _body_from_editor(ticket_line: str, last_message: str) -> str:
    quoted = "".join(f"# > {line}\n" for line in last_message.splitlines()[:40])
    try:
        text = click.edit(f"\n\n{_EDITOR_HINT}# {ticket_line}\n{quoted}", extension=".txt")
    except click.ClickException as exc:  # the editor is missing or failed
        raise UserError(
            f"cannot write the reply in the editor: {exc.message}; set EDITOR (or VISUAL)"
            " to an installed editor, or give the text with --body-file FILE"
        ) from None
    if text is None:
        raise UserError("reply aborted: the editor was closed without saving")
    return "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()


@cli.command("reply")
@click.argument("ref")
@click.option(
    "--body-file",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="Text of the reply ('-' for stdin); default: write it in $EDITOR.",
)
@_AS
@pass_app
def reply_cmd(app: AppContext, ref: str, body_file: Path | None, as_name: str | None) -> None:
    """Answer the client through the outbox, as the shared address."""
    settings = app.settings
    me = resolve_user(settings, as_name)
    if body_file is not None:
        try:
            body = (
                sys.stdin.read() if str(body_file) == "-" else body_file.read_text(encoding="utf-8")
            )
        except OSError as exc:
            raise UserError(f"cannot read {body_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UserError(f"{body_file} is not UTF-8 text") from None
    elif not (os.environ.get("VISUAL") or os.environ.get("EDITOR")) and not sys.stdin.isatty():
        raise UserError("no terminal to open an editor in: give the text with --body-file FILE")
    else:
        with app.db.session() as session:
            ticket = get_ticket(session, ref)
            line = f"{format_ref(ticket.ref or 0)}: {ticket.subject} ({ticket.client_addr})"
            body = _body_from_editor(line, _latest_client_text(session, ticket))
    now = utcnow()

    def write(session: Session, ticket: Ticket, policy: SlaPolicy) -> tuple[str, str]:
        row = queue_reply(
            session, ticket, body, actor=me, settings=settings, policy=policy, now=now
        )
        return format_ref(ticket.ref or 0), row.rcpt_to[0]

    shown, to = _act(app, ref, write)
    click.echo(f"reply to {shown} queued for {to}")


def _latest_client_text(session: Session, ticket: Ticket) -> str:
    latest = session.scalars(
        select(Message)
        .where(Message.ticket_id == ticket.id, Message.direction == "in")
        .order_by(Message.received_at.desc())
        .limit(1)
    ).first()
    return latest.body_text if latest is not None else ""
