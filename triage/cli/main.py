"""Entry point of the ``triage`` command: the group, global options and error handling.

User errors (:class:`~triage.errors.UserError`: bad config, unknown ticket, bad
file) and unreachable servers become one line on stderr and exit status 2 (1 for
other triage errors), never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, TypeGuard

import click

from triage import __version__
from triage.errors import MailboxError, SendError, StoreError, TriageError, UserError

if TYPE_CHECKING:
    from sqlalchemy.exc import SQLAlchemyError

__all__ = ["cli", "main"]


# Which module adds each command to `cli` (one module per area). A command's module
# is imported only when that command runs (or for --help): `triage queue` does not
# pay for the web page, the trainer or the IMAP client. tests/test_cli.py checks
# that this table names every command and the module that defines it.
COMMANDS = {
    "assign": "tickets_cmd",
    "auth": "auth_cmd",
    "backup": "backup_cmd",
    "claim": "tickets_cmd",
    "demo": "admin",
    "done": "tickets_cmd",
    "evaluate": "model_cmd",
    "import": "intake_cmd",
    "init": "admin",
    "model": "model_cmd",
    "move": "tickets_cmd",
    "note": "tickets_cmd",
    "outbox": "outbox_cmd",
    "poll": "intake_cmd",
    "queue": "tickets_cmd",
    "reopen": "tickets_cmd",
    "reply": "tickets_cmd",
    "restore": "backup_cmd",
    "rules": "rules_cmd",
    "run": "daemon_cmd",
    "show": "tickets_cmd",
    "status": "daemon_cmd",
    "train": "model_cmd",
    "user": "web_cmd",
    "wait": "tickets_cmd",
    "web": "web_cmd",
}
COMMAND_MODULES = tuple(sorted(set(COMMANDS.values())))
"""The modules that add commands to `cli` when imported."""

# Each command's one-line summary (the first paragraph of its docstring) as
# `triage --help` lists it, so the listing imports no command module (they pull in
# SQLAlchemy, the ORM models, pydantic and structlog: about 1 s of CPU).
# tests/test_cli.py checks that each equals the command's own.
SUMMARIES = {
    "assign": "Give a ticket to an assistant.",
    "auth": 'OAuth2 sign-in for XOAUTH2 (imap.auth / smtp.auth = "xoauth2"), per [oauth2].',
    "backup": "Back up the database (with its models), rule files and templates into one archive.",
    "claim": "Take a ticket (fails if someone else has it).",
    "demo": "Run the main job on an embedded default: sample inbox, SQLite, acks as files.",
    "done": "Mark a ticket solved.",
    "evaluate": (
        "Score the active model on labeled data (--from), "
        "or cross-validate on the database's labels."
    ),
    "import": "Import an mbox file or a Maildir directory (history, training data).",
    "init": "Validate the config, check rule files and secrets, create and migrate the database.",
    "model": "List the stored models, switch between them, retrain on corrections.",
    "move": "Correct a ticket's queue and/or priority (stored as a training label).",
    "note": "Add an internal note (never mailed to the client); @name tells that assistant.",
    "outbox": "Outgoing mail (acknowledgments, replies, escalations) that is pending or failed.",
    "poll": "One full pass: fetch new mail from every watched folder, route it, send, exit.",
    "queue": "The prioritized queue: breached first, then by due time, priority and age.",
    "reopen": "Reopen a solved or closed ticket (with a new resolution deadline).",
    "reply": "Answer the client through the outbox, as the shared address.",
    "restore": "Restore a backup into the empty database the config names, with its rule files.",
    "rules": "Check rule files and replay stored mail through them.",
    "run": "The daemon: watch the inbox, route, acknowledge, send, watch SLAs.",
    "show": "A ticket: deadlines, routing explanation, messages (newest first), audit trail.",
    "status": "Health: last poll per folder, backlog, outbox, open and breached tickets, model.",
    "train": "Train a routing model and make it the active one.",
    "user": "Accounts of the web page: add, passwd, disable.",
    "wait": "Waiting on the client: the SLA clock pauses.",
    "web": "Serve the assistants' web page until SIGTERM or SIGINT.",
}
"""Command name -> the first paragraph of its help (str), as ``--help`` shortens it."""


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use (see :data:`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, sorted (without importing their modules)."""
        return sorted(set(COMMANDS) | set(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing the module that defines it the first time."""
        module = COMMANDS.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            importlib.import_module(f"triage.cli.{module}")
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The "Commands" section of ``--help`` from :data:`SUMMARIES`, importing nothing.

        Shortened exactly as click shortens a command's help (``get_short_help_str``);
        a command already imported is shown as it is.
        """
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None and name in SUMMARIES:
                command = click.Command(name, help=SUMMARIES[name])
            elif command is None:
                command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                commands.append((name, command))
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        rows = [(name, command.get_short_help_str(limit)) for name, command in commands]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    # triage.cli.context.CONFIG_HELP, not imported: context loads pydantic and structlog
    help="TOML configuration file (default: $TRIAGE_CONFIG). Also accepted after the command.",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    help="Override [logging] format.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(__version__, prog_name="triage")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_format: str | None, verbose: bool) -> None:
    """triage: a shared inbox sorted into assistant queues with SLA deadlines.

    Start with `triage demo` (no server needed), then copy config.example.toml,
    edit it and run `triage init` and `triage run`.
    """
    # imported here, not at the top: `triage --help` needs neither (pydantic, structlog)
    from triage.cli.context import AppContext  # noqa: PLC0415
    from triage.config import find_config_path  # noqa: PLC0415

    app = AppContext(find_config_path(config_path), log_format=log_format, verbose=verbose)
    ctx.obj = app
    ctx.call_on_close(app.close)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 1 failure, 2 user error)."""
    try:
        status = cli.main(args=argv, prog_name="triage", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except (MailboxError, SendError) as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except TriageError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        # a database failure no command turned into a StoreError: still one line
        from triage.store.db import describe_error  # noqa: PLC0415 - SQLAlchemy is loaded

        click.echo(f"error: database: {describe_error(exc)}", err=True)
        return 1
    # standalone_mode=False returns the command's value, or the code given to ctx.exit().
    return status if isinstance(status, int) else 0


def _is_database_error(exc: BaseException) -> TypeGuard[SQLAlchemyError]:
    """Whether ``exc`` is a ``sqlalchemy.exc.SQLAlchemyError``, without importing SQLAlchemy.

    A command that raised one has imported SQLAlchemy already; if it is not loaded,
    ``exc`` cannot be one.
    """
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.SQLAlchemyError)


if __name__ == "__main__":
    sys.exit(main())
