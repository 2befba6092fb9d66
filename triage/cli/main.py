"""Entry point of the ``triage`` command: the group, global options and error handling.

User errors (:class:`~triage.errors.UserError`: bad config, unknown ticket, bad
file) and unreachable servers become one line on stderr and exit status 2 (1 for
other triage errors), never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click
from sqlalchemy.exc import SQLAlchemyError

from triage import __version__
from triage.cli.context import CONFIG_HELP, AppContext
from triage.config import find_config_path
from triage.errors import MailboxError, SendError, StoreError, TriageError, UserError
from triage.store.db import describe_error

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


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help=CONFIG_HELP + " Also accepted after the command.",
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
    except SQLAlchemyError as exc:
        # a database failure no command turned into a StoreError: still one line
        click.echo(f"error: database: {describe_error(exc)}", err=True)
        return 1
    except TriageError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    # standalone_mode=False returns the command's value, or the code given to ctx.exit().
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
