"""``triage auth login | status | logout``: OAuth2 sign-in for XOAUTH2 (Microsoft 365, Gmail)."""

from __future__ import annotations

import asyncio

import click

from triage.cli.context import AppContext, pass_app
from triage.cli.main import cli
from triage.config import Settings
from triage.errors import ConfigError, MailboxError, SendError, TriageError
from triage.oauth2 import TokenSource, token_getter, token_source


@cli.group()
def auth() -> None:
    """OAuth2 sign-in for XOAUTH2 (imap.auth / smtp.auth = "xoauth2"), per [oauth2].

    Sign in once with `triage auth login`; the daemon refreshes the token itself.
    """


def _source(settings: Settings) -> TokenSource:
    source = token_source(settings)
    if source is None:
        raise ConfigError(
            f"{settings.path}: no [oauth2] section (see config.example.toml and the README,"
            " 'Signing in to Microsoft 365 or Gmail')"
        )
    return source


def _mailbox(settings: Settings) -> str:
    if settings.imap is not None and settings.imap.username:
        return settings.imap.username
    if settings.smtp is not None and settings.smtp.username:
        return settings.smtp.username
    raise ConfigError(f"{settings.path}: no imap.username or smtp.username to sign in for")


@auth.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Google: the localhost port the browser comes back to (0: any free port).",
)
@click.option(
    "--no-browser",
    is_flag=True,
    help="Google: print the address instead of opening a browser here (e.g. over ssh -L).",
)
@pass_app
def login(app: AppContext, port: int, no_browser: bool) -> None:
    """Sign in: Microsoft's device code, or Google's browser flow; stores the token cache.

    Microsoft 365: open the address shown on any device and enter the code.
    Gmail: open the address shown in a browser on this machine, or on yours after
    `ssh -L 8765:localhost:8765 this-server` (use --no-browser there).
    """
    settings = app.settings
    source = _source(settings)
    user = _mailbox(settings)
    click.echo(f"Signing in for {user} ({source.name}).")
    signed = source.sign_in(user, say=click.echo, port=port, browser=not no_browser)
    click.echo(f"signed in: {signed.account}" + (f" ({signed.detail})" if signed.detail else ""))
    source.access_token(user)  # the refresh path works too
    click.echo("access token ok: triage run will refresh it by itself")


@auth.command()
@click.option("--no-servers", is_flag=True, help="Only the token: do not log in to IMAP and SMTP.")
@pass_app
def status(app: AppContext, no_servers: bool) -> None:
    """Who is signed in; get an access token now; log in to IMAP and SMTP with it.

    Exit status 1 when any step fails (the message says what to do).
    """
    settings = app.settings
    source = _source(settings)
    user = _mailbox(settings)
    signed = source.signed_in()
    if signed is None:
        click.echo(f"not signed in ({source.cache_path}): run `triage auth login`")
        raise SystemExit(1)
    click.echo(f"signed in: {signed.account}" + (f" ({signed.detail})" if signed.detail else ""))
    failed = False
    try:
        source.access_token(user)
    except TriageError as exc:
        click.echo(f"access token: FAILED: {exc}")
        raise SystemExit(1) from None
    click.echo("access token: ok")
    if no_servers:
        return
    imap = settings.imap
    if imap is not None and imap.auth == "xoauth2":
        from triage.imap.connect import ImapConnector  # noqa: PLC0415

        connector = ImapConnector(
            imap, resolve=settings.resolve, access_token=token_getter(settings, imap.username)
        )
        try:
            client = connector.connect()
            client.logout()
            click.echo(f"IMAP {connector.where}: XOAUTH2 login as {imap.username} ok")
        except (MailboxError, ConfigError) as exc:
            click.echo(f"IMAP {connector.where}: FAILED: {exc}")
            failed = True
    smtp = settings.smtp
    if smtp is not None and smtp.mode == "send" and smtp.auth == "xoauth2":
        from triage.smtp import SmtpSender, make_sender  # noqa: PLC0415

        sender = make_sender(settings)
        assert isinstance(sender, SmtpSender)  # noqa: S101 - mode = "send"
        try:
            asyncio.run(sender.verify())
            click.echo(f"SMTP {smtp.host}:{smtp.port}: XOAUTH2 login as {smtp.username} ok")
        except SendError as exc:
            click.echo(f"SMTP {smtp.host}:{smtp.port}: FAILED: {exc}")
            failed = True
    if failed:
        raise SystemExit(1)


@auth.command()
@pass_app
def logout(app: AppContext) -> None:
    """Forget the sign-in: delete the token cache (revoke the app's access at the provider too)."""
    source = _source(app.settings)
    if source.sign_out():
        click.echo(f"deleted {source.cache_path}")
    else:
        click.echo(f"no token cache at {source.cache_path}")
