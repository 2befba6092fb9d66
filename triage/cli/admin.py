"""Administrative commands: ``init`` and ``demo``."""

from __future__ import annotations

import click

from triage.cli.context import AppContext, pass_app
from triage.cli.main import cli


@cli.command()
@pass_app
def init(app: AppContext) -> None:
    """Validate the config, create the database and apply migrations."""
    settings = app.settings
    db = app.database(migrate=False)
    applied = db.migrate()
    revision = db.current_revision()
    click.echo(f"config ok: {settings.path}")
    click.echo(f"database: {db.url} (schema {revision})")
    if applied:
        click.echo(f"applied migrations: {', '.join(applied)}")
    else:
        click.echo("schema already current")


@cli.command()
def demo() -> None:
    """Run the main job on an embedded default: sample inbox, SQLite, acks as files."""
    click.echo(
        "triage demo is not built yet: it arrives with the daemon (issue 8).\n"
        "What works now: `triage --config config.example.toml init`."
    )
    raise SystemExit(1)
