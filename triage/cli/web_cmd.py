"""``triage web`` (serve the assistants' page) and ``triage user ...`` (its accounts)."""

from __future__ import annotations

import sys

import click

from triage.cli.context import AppContext, pass_app
from triage.cli.main import cli
from triage.clock import utcnow
from triage.errors import UserError


@cli.command()
@click.option("--host", help="Listen address (default: [web] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: [web] port).")
@pass_app
def web(app: AppContext, host: str | None, port: int | None) -> None:
    """Serve the assistants' web page until SIGTERM or SIGINT.

    Accounts come from `triage user add`. Put a TLS proxy in front of it and set
    [web] base_url when people reach it from other machines.
    """
    from triage.web.serve import check_bindable, serve_forever  # noqa: PLC0415 - uvicorn

    settings = app.settings
    check_bindable(host or settings.web.host, port or settings.web.port)  # before the database
    db = app.database(create=True)
    serve_forever(settings, db, host=host, port=port)


def read_password(*, confirm: bool = True) -> str:
    """The new password: asked twice on a terminal, else one line of stdin.

    Never from argv (it would show in ``ps`` and the shell's history).

    Raises:
        UserError: the two entries differ, or stdin is empty.
    """
    if sys.stdin.isatty():
        first = click.prompt("Password", hide_input=True, err=True)
        if confirm:
            second = click.prompt("Repeat the password", hide_input=True, err=True)
            if first != second:
                raise UserError("the two passwords differ: nothing was changed")
        return str(first)
    line = sys.stdin.readline()
    if not line:
        raise UserError("no password on stdin (give it as one line)")
    return line.rstrip("\r\n")


@cli.group()
def user() -> None:
    """Accounts of the web page: add, passwd, disable."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["assistant", "owner"]),
    default="assistant",
    show_default=True,
    help="An assistant is a name in [team.assistants].",
)
@pass_app
def user_add(app: AppContext, name: str, role: str) -> None:
    """Add a user; the password is read from the terminal or one line of stdin."""
    from triage.accounts import add_user  # noqa: PLC0415

    settings = app.settings
    password = read_password()
    with app.database(create=True).session() as session:
        account = add_user(session, settings, name, role=role, password=password, now=utcnow())
    click.echo(f"user {account.name} added ({account.role})")


@user.command("passwd")
@click.argument("name")
@pass_app
def user_passwd(app: AppContext, name: str) -> None:
    """Set a new password (ends the user's sessions, enables a disabled user)."""
    from triage.accounts import set_password  # noqa: PLC0415

    password = read_password()
    with app.db.session() as session:
        account = set_password(session, name, password, now=utcnow())
    click.echo(f"password of {account.name} changed; their sessions were ended")


@user.command("unlock")
@click.argument("name")
@pass_app
def user_unlock(app: AppContext, name: str) -> None:
    """Forget a name's failed logins, so it may log in again at once."""
    from triage.accounts import unlock_user  # noqa: PLC0415

    with app.db.session() as session:
        count = unlock_user(session, name)
    click.echo(f"{name}: {count} failed logins forgotten")


@user.command("disable")
@click.argument("name")
@pass_app
def user_disable(app: AppContext, name: str) -> None:
    """Disable a user: no more logins; their open sessions end at once."""
    from triage.accounts import disable_user  # noqa: PLC0415

    with app.db.session() as session:
        account = disable_user(session, name)
    click.echo(f"user {account.name} disabled; their sessions were ended")
