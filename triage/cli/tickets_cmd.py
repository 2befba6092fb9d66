"""Assistants' commands: ``queue``, ``show``, ``claim``, ``assign``, ``wait``, ``done``,
``reopen``, ``move``, ``note`` and ``reply``: arguments -> the ticket desk -> print.

Who "I" am: ``--as NAME``, else ``$TRIAGE_USER``, else the login name; when
``[team.assistants]`` lists names, it must be one of them. A ticket is named by its
reference, with or without ``#``. Unknown tickets, queues and assistants are one
line on stderr and exit status 2; so is a ticket someone else claimed first.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from triage.cli.context import AppContext, pass_app
from triage.cli.main import cli
from triage.cli.tables import plain_table_lines, rich_table
from triage.cli.terminal import terminal_safe
from triage.cli.ticket_text import render_ticket
from triage.config import Settings
from triage.desk import QueueRow, TicketDesk, View
from triage.errors import NotFoundError, UserError

__all__ = ["resolve_user"]

USER_ENV = "TRIAGE_USER"

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


def _desk(app: AppContext) -> TicketDesk:
    return TicketDesk(app.db, app.settings)


# --- queue -------------------------------------------------------------------------------


TABLE_LIMIT = 100
"""Tickets the table form of ``triage queue`` lists unless ``--all`` or ``--limit``: the
most urgent ones, then a line saying how many more there are (a person reads the top
of a queue; a program reads ``--json``, which lists every ticket by default)."""


@cli.command("queue")
@click.option("--queue", "queue_name", metavar="Q", help="Only this queue.")
@click.option("--mine", is_flag=True, help="Only tickets assigned to me.")
@click.option(
    "--escalated",
    is_flag=True,
    help="Only tickets escalated to the owners (a missed deadline or a rule).",
)
@_AS
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (every ticket).")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    metavar="N",
    help=f"Only the N most urgent tickets (the table's default: {TABLE_LIMIT}).",
)
@click.option("--all", "show_all", is_flag=True, help="Every ticket in the table too.")
@pass_app
def queue_cmd(  # noqa: PLR0917 - one per option
    app: AppContext,
    queue_name: str | None,
    mine: bool,
    escalated: bool,
    as_name: str | None,
    as_json: bool,
    limit: int | None,
    show_all: bool,
) -> None:
    """The prioritized queue: breached first, then by due time, priority and age.

    The table lists the 100 most urgent tickets and says how many more there are
    (--all lists them all); --json lists every ticket unless --limit is given.
    """
    settings = app.settings
    if mine and escalated:
        raise UserError("--mine and --escalated are two views: choose one")
    if show_all and limit is not None:
        raise UserError("--all and --limit N: choose one")
    me = resolve_user(settings, as_name) if mine else None
    view = View.MINE if mine else View.ESCALATED if escalated else View.ALL
    desk = _desk(app)
    if as_json:
        # a JSON array, one ticket a line, written as the rows are read (flat memory)
        out = sys.stdout
        count = 0
        chunk: list[str] = []
        for line in desk.queue_json_lines(view=view, queue=queue_name, actor=me, limit=limit):
            chunk.append(("[\n" if count == 0 else ",\n") + line)
            count += 1
            if len(chunk) == 1000:
                out.write("".join(chunk))
                chunk = []
        out.write("".join(chunk) + ("\n]\n" if count else "[]\n"))
        out.flush()
        return
    shown = None if show_all else (limit if limit is not None else TABLE_LIMIT)
    # one row more than shown: whether to count the rest
    rows = desk.queue_stream(
        view=view, queue=queue_name, actor=me, limit=None if shown is None else shown + 1
    )
    listed = 0
    beyond = False  # a row after the shown ones exists

    def counted() -> Iterator[QueueRow]:
        nonlocal listed, beyond
        for row in rows:
            if shown is not None and listed == shown:
                beyond = True
                return
            listed += 1
            yield row

    from rich.console import Console  # noqa: PLC0415 - rich is slow to import

    if Console().is_terminal:
        table = list(counted())
        if table:
            rich_table(table)
    else:
        for lines in plain_table_lines(counted()):
            click.echo(lines)
    more = 0
    if beyond and shown is not None:
        more = desk.queue_total(view=view, queue=queue_name, actor=me) - shown
    if not listed and not more:
        click.echo("no open tickets")
    elif more > 0:
        click.echo(
            f"... and {more:,} more open tickets (triage queue --all lists them all,"
            " --limit N the first N)"
        )


# --- show --------------------------------------------------------------------------------


@cli.command("show")
@click.argument("ref")
@click.option("--quoted", is_flag=True, help="Unfold the quoted history of each message.")
@pass_app
def show_cmd(app: AppContext, ref: str, quoted: bool) -> None:
    """A ticket: deadlines, routing explanation, messages (newest first), audit trail."""
    view = _desk(app).show(ref)
    zone = ZoneInfo(app.settings.calendar.timezone)
    click.echo(terminal_safe(render_ticket(view, zone, quoted=quoted)))


# --- changes -----------------------------------------------------------------------------


@cli.command("claim")
@click.argument("ref")
@_AS
@pass_app
def claim_cmd(app: AppContext, ref: str, as_name: str | None) -> None:
    """Take a ticket (fails if someone else has it)."""
    me = resolve_user(app.settings, as_name)
    done = _desk(app).claim(ref, actor=me)
    shown = done.ref_text
    click.echo(f"{shown} claimed by {me}" if done.changed else f"{shown} is already yours")


@cli.command("assign")
@click.argument("ref")
@click.argument("name")
@_AS
@pass_app
def assign_cmd(app: AppContext, ref: str, name: str, as_name: str | None) -> None:
    """Give a ticket to an assistant."""
    desk = _desk(app)
    who = desk.check_assistant(name)
    me = resolve_user(app.settings, as_name)
    done = desk.assign(ref, who, actor=me)
    shown = done.ref_text
    click.echo(f"{shown} assigned to {who}" if done.changed else f"{shown} is already {who}'s")


@cli.command("wait")
@click.argument("ref")
@click.option(
    "--until",
    "until",
    metavar="WHEN",
    help="Wake the ticket then (e.g. '2026-03-16 09:00', business time zone) unless the"
    " client writes first.",
)
@_AS
@pass_app
def wait_cmd(app: AppContext, ref: str, until: str | None, as_name: str | None) -> None:
    """Waiting on the client: the SLA clock pauses."""
    me = resolve_user(app.settings, as_name)
    when = _parse_when(until, ZoneInfo(app.settings.calendar.timezone)) if until else None
    done = _desk(app).wait(ref, actor=me, until=when)
    shown = done.ref_text
    if not done.changed:
        click.echo(f"{shown} is already waiting")
    elif when is not None:
        click.echo(f"{shown} is waiting until {until}")
    else:
        click.echo(f"{shown} is waiting")


def _parse_when(text: str, zone: ZoneInfo) -> datetime:
    """``YYYY-MM-DD HH:MM`` (or ISO 8601) in the business's zone unless it names one."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"{text!r} is not a date and time such as '2026-03-16 09:00'") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


@cli.command("done")
@click.argument("ref")
@_AS
@pass_app
def done_cmd(app: AppContext, ref: str, as_name: str | None) -> None:
    """Mark a ticket solved."""
    me = resolve_user(app.settings, as_name)
    done = _desk(app).done(ref, actor=me)
    shown = done.ref_text
    click.echo(f"{shown} solved" if done.changed else f"{shown} is already solved")


@cli.command("reopen")
@click.argument("ref")
@_AS
@pass_app
def reopen_cmd(app: AppContext, ref: str, as_name: str | None) -> None:
    """Reopen a solved or closed ticket (with a new resolution deadline)."""
    me = resolve_user(app.settings, as_name)
    done = _desk(app).reopen(ref, actor=me)
    shown = done.ref_text
    click.echo(f"{shown} reopened" if done.changed else f"{shown} is not solved or closed")


@cli.command("move")
@click.argument("ref")
@click.argument("queue_name", metavar="[QUEUE]", required=False)
@click.option("--priority", metavar="P", help="Correct the priority too (or only).")
@_AS
@pass_app
def move_cmd(
    app: AppContext, ref: str, queue_name: str | None, priority: str | None, as_name: str | None
) -> None:
    """Correct a ticket's queue and/or priority (stored as a training label)."""
    me = resolve_user(app.settings, as_name)
    done = _desk(app).move(ref, actor=me, queue=queue_name, priority=priority)
    shown = done.ref_text
    where = " and ".join(
        part for part in (queue_name or "", f"priority {priority}" if priority else "") if part
    )
    click.echo(f"{shown} moved to {where}" if done.changed else f"{shown} is already in {where}")


@cli.command("note")
@click.argument("ref")
@click.argument("text")
@_AS
@pass_app
def note_cmd(app: AppContext, ref: str, text: str, as_name: str | None) -> None:
    """Add an internal note (never mailed to the client); @name tells that assistant."""
    me = resolve_user(app.settings, as_name)
    done = _desk(app).note(ref, text, actor=me)
    told = f"; {', '.join(done.mentions)} will be told" if done.mentions else ""
    if done.unknown_mentions:
        names = ", ".join(f"@{name}" for name in done.unknown_mentions)
        told += f"; {names}: no such assistant, nobody was told"
    click.echo(f"note added to {done.ref_text}{told}")


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
    desk = _desk(app)
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
        view = desk.show(ref)
        line = f"{view.ref_text}: {view.subject} ({view.client.addr})"
        latest = next((m.body for m in view.messages if m.direction == "in"), "")
        body = _body_from_editor(line, latest)
    done = desk.reply(ref, body, actor=me)
    click.echo(f"reply to {done.ref_text} queued for {done.recipient}")
