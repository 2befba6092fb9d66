"""Administrative commands: ``init`` and ``demo``."""

from __future__ import annotations

import json
import ssl
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from triage.cli.context import AppContext, pass_app
from triage.cli.main import cli
from triage.cli.tables import plain_table
from triage.config import Settings
from triage.errors import ConfigError
from triage.logs import configure_logging
from triage.rule_files import load_configured_rules
from triage.secrets import check_secrets


@cli.command()
@pass_app
def init(app: AppContext) -> None:
    """Validate the config, check rule files and secrets, create and migrate the database.

    Everything `triage run` would refuse is refused here first: a broken rule file,
    a password variable or file that cannot be read.
    """
    settings = app.settings
    ruleset = load_configured_rules(settings) if settings.routing.rule_files else None
    problems = file_problems(settings)
    if problems:
        raise ConfigError("\n".join(f"{settings.path}: {p}" for p in problems))
    try:
        check_secrets(settings)
    except ConfigError as exc:
        secrets_problem = str(exc)
    else:
        secrets_problem = ""
    db = app.database(check=False)
    applied = db.migrate()
    revision = db.current_revision()
    click.echo(f"config ok: {settings.path}")
    click.echo(f"database: {db.url} (schema {revision})")
    if applied:
        click.echo(f"applied migrations: {', '.join(applied)}")
    else:
        click.echo("schema already current")
    click.echo(f"rules: {len(ruleset) if ruleset is not None else 0} rules loaded")
    if settings.imap is None:
        click.echo("note: no [imap] section: `triage run` and `poll --once` have no inbox to watch")
    if settings.smtp is None:
        click.echo("note: no [smtp] section: nothing can be sent (acknowledgments, replies)")
    if not settings.owners.addresses:
        click.echo("note: [owners] addresses is empty: breaches and rule escalations reach nobody")
    if secrets_problem:
        where = (
            "unless it is set where they run (e.g. in the service's environment)"
            if "environment variable" in secrets_problem
            else "until it is fixed"  # a file, a sign-in or its token cache
        )
        click.echo(
            f"warning: {secrets_problem} here; `triage run` and `triage poll` refuse to start"
            f" {where}",
            err=True,
        )


def file_problems(settings: Settings) -> list[str]:
    """Files and directories the config names that `run` and `poll` would refuse.

    Checks ``acknowledgments.templates_dir`` (a directory, resolved as the outbox
    resolves it: :meth:`MailTemplates.from_settings`) and ``imap.ca_file`` /
    ``smtp.ca_file`` (a readable PEM bundle, relative to the config's directory).

    Returns:
        one ``key: problem`` line per problem; empty when all is well.
    """
    from triage.outbox.templates import MailTemplates  # noqa: PLC0415 - loads Jinja2

    problems: list[str] = []
    try:
        MailTemplates.from_settings(settings)
    except ConfigError as exc:
        problems.append(str(exc))
    for key, section in (("imap", settings.imap), ("smtp", settings.smtp)):
        if section is None or not section.ca_file:
            continue
        if key == "smtp" and settings.smtp is not None and settings.smtp.mode != "send":
            continue
        path = settings.resolve(section.ca_file)
        if not path.is_file():
            what = "is a directory, not a PEM file" if path.is_dir() else "does not exist"
            problems.append(f"{key}.ca_file: {path} {what}")
            continue
        try:
            ssl.create_default_context().load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            problems.append(f"{key}.ca_file: cannot load {path} as PEM certificates: {exc}")
    problems.extend(unwritable_places(settings))
    return problems


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def unwritable_places(settings: Settings) -> list[str]:
    """Places the daemon writes that this user cannot write, one ``key: problem`` line each.

    The SQLite database's directory (the file, its ``-wal`` and ``-shm`` files, the send
    journal and the daemon lock go there) and ``smtp.folder`` (``mode = "folder"``):
    the directory, or the nearest existing one above it that would hold it. Under
    systemd only ``/var/lib/triage`` is writable (``ReadWritePaths=``), not the
    config's directory ``/etc/triage`` that relative paths resolve against.
    """
    import os  # noqa: PLC0415

    from sqlalchemy.engine import make_url  # noqa: PLC0415

    hint = "under systemd it must be in /var/lib/triage (the only place the daemon may write)"
    out: list[str] = []
    try:
        url = make_url(settings.database_url)
    except Exception:  # noqa: BLE001 - a bad URL is reported when the database is opened
        url = None
    database = url.database if url is not None and url.get_backend_name() == "sqlite" else ""
    if database and database != ":memory:" and not database.startswith("file:"):
        where = _nearest_existing(Path(database).parent)
        if not os.access(where, os.W_OK | os.X_OK):
            out.append(
                f"database.url: cannot write in {where}, where the SQLite file {database}"
                f" and its journal files go; {hint}, e.g. sqlite:////var/lib/triage/triage.db"
            )
    smtp = settings.smtp
    if smtp is not None and smtp.mode == "folder":
        folder = settings.resolve(smtp.folder)
        where = _nearest_existing(folder)
        if not os.access(where, os.W_OK | os.X_OK):
            out.append(
                f"smtp.folder: cannot write in {where} (for {folder}); {hint},"
                " e.g. /var/lib/triage/outbox"
            )
    return out


@cli.command()
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("triage-demo"),
    show_default=True,
    help="Working folder: database, config and the outgoing mail (.eml).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Then serve the assistants' web page with demo accounts (printed).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="With --serve.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8025, show_default=True, help="With --serve."
)
@click.pass_obj
def demo(app: AppContext, workdir: Path, serve: bool, host: str, port: int) -> None:
    """Run the main job on an embedded default: sample inbox, SQLite, acks as files.

    Trains the model on the sample data shipped with triage, ingests the sample
    inbox (English and Hungarian client mail, auto-replies, a bounce, a mailing
    list, a reply to an earlier mail, legacy charsets) through the same pipeline
    as the daemon, writes acknowledgments and escalations as .eml files and prints
    the prioritized queue. No server is needed. With --serve it then serves the
    web page until Ctrl-C, with a login for every demo assistant.
    """
    from triage.demo import run_demo  # noqa: PLC0415 - loads scikit-learn

    configure_logging(app.log_format or "auto", "debug" if app.verbose else "warning")
    if serve:  # a taken port fails here, in one line, before the demo's work
        from triage.web.serve import check_bindable  # noqa: PLC0415 - uvicorn

        check_bindable(host, port)
    started = time.monotonic()
    result = run_demo(workdir)
    elapsed = time.monotonic() - started
    tz = ZoneInfo(result.timezone)
    click.echo(
        f"triage demo in {result.workdir}/ - the sample inbox as of"
        f" {result.now.astimezone(tz):%a %d %b %Y %H:%M} ({result.timezone})\n"
    )
    click.echo(f"model: {result.model_version}, trained on {result.n_train} labeled sample emails")
    click.echo(f"ingested: {result.stored} messages from the sample inbox\n")
    click.echo(f"The prioritized queue ({len(result.queue)} open tickets):\n")
    click.echo(plain_table(result.queue))
    stats = result.stats
    routed = ", ".join(f"{n} by {k}" for k, n in stats.routed.items())
    click.echo(
        f"\nrouted: {routed}; {stats.joined} joined an existing ticket;"
        f" {stats.no_ticket} opened none (bounce)"
    )
    suppressed = ", ".join(
        f"{n} {k.replace('_', ' ')}" for k, n in sorted(stats.acks_suppressed.items())
    )
    click.echo(f"acknowledgments: {stats.acks_queued} written; not sent: {suppressed or 'none'}")
    click.echo(
        f"SLA watch: {result.escalations} warnings/escalations; outgoing mail written:"
        f" {result.sent.sent} .eml files in {result.workdir / 'outbox'}/"
    )
    click.echo(f"\nfinished in {elapsed:.1f} s. Look around:")
    config = result.workdir / "triage.toml"
    first = result.queue[0].ref if result.queue else 1001
    program = sys.argv[0] if "/" in sys.argv[0] else "triage"
    for command in (f"show {first}", "queue --json", "status"):
        click.echo(f"  {program} --config {config} {command}")
    if serve:
        _serve_demo(config, host, port)


def _serve_demo(config: Path, host: str, port: int) -> None:
    """Serve the demo's web page with fresh demo accounts, until Ctrl-C.

    The served address goes into the demo's config as ``[web] host``/``port``, so links
    in mail (mentions) sent by any later command on that config point at this page.
    """
    from triage.config import load_config  # noqa: PLC0415
    from triage.store import Database  # noqa: PLC0415
    from triage.web.demo import make_demo_accounts  # noqa: PLC0415
    from triage.web.serve import serve_forever  # noqa: PLC0415 - starlette, uvicorn

    with config.open("a", encoding="utf-8") as out:  # the demo's own config has no [web]
        out.write(f"\n[web]\nhost = {json.dumps(host)}\nport = {port}\n")
    settings = load_config(config)
    db = Database.open(settings.database_url)
    accounts = make_demo_accounts(db, settings)
    click.echo(f"\nThe web page: {settings.web.origin()}/  (Ctrl-C stops it)")
    click.echo("Log in as (throwaway demo passwords):")
    for account in accounts:
        click.echo(f"  {account.name:<8} {account.password}   ({account.role})")
    try:
        serve_forever(settings, db)
    finally:
        db.dispose()
