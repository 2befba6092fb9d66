"""``triage backup --to DIR [--keep N]`` and ``triage restore FILE``."""

from __future__ import annotations

from pathlib import Path

import click

from triage.backup import restore_backup, run_backup
from triage.cli.context import AppContext, pass_app
from triage.cli.main import cli


def _counts(manifest: dict[str, object]) -> str:
    database = manifest.get("database")
    counts = database.get("counts", {}) if isinstance(database, dict) else {}
    return ", ".join(f"{n} {table}" for table, n in counts.items()) or "no tables"


@cli.command()
@click.option(
    "--to",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the archive (created, mode 0700).",
)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    help="Then delete all but the newest N backups in that directory.",
)
@pass_app
def backup(app: AppContext, directory: Path, keep: int | None) -> None:
    """Back up the database (with its models), rule files and templates into one archive.

    Safe while `triage run` runs: SQLite is copied with its online backup API,
    PostgreSQL dumped with pg_dump (custom format) from one snapshot. The archive
    (mode 0600) holds client mail: keep it as safe as the database. The OAuth2
    token cache is not included. Rule files shipped with triage (`shipped:NAME`) are
    recorded by name, not copied. Each run, failed or not, is recorded for
    `triage status`, /health and /metrics.
    """
    result = run_backup(
        app.settings, directory, keep=keep, database=lambda: app.database(create=False)
    )
    database = result.manifest["database"]
    click.echo(f"backup written: {result.path}")
    click.echo(
        f"database: {database['kind']}, schema {database.get('revision')},"
        f" {_counts(result.manifest)}"
    )
    files = [m["name"] for m in result.manifest["members"] if m["kind"] != "database"]
    click.echo(f"files: {', '.join(files) if files else 'none'}")
    shipped = [s["entry"] for s in result.manifest.get("shipped_rule_files", [])]
    if shipped:
        click.echo(f"shipped rule files (come with triage, not copied): {', '.join(shipped)}")
    for path in result.removed:
        click.echo(f"removed old backup: {path}")


@cli.command()
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def restore(app: AppContext, archive: Path) -> None:
    """Restore a backup into the empty database the config names, with its rule files.

    Refuses a database that is not empty, a backup of the other database kind or
    of a newer triage. Rule files and templates go back where this config reads
    them (a warning says when that differs from where they were taken from); an
    existing different file is kept and the backup's copy written beside it as
    FILE.restored. Then start `triage run`: each folder resumes from its
    restored high-water mark and mail that arrived after the backup is fetched again.
    """
    result = restore_backup(app.settings, archive)
    manifest = result.manifest
    click.echo(f"restored: {archive} (made {manifest['created_at']})")
    click.echo(f"database: {manifest['database']['kind']}, {_counts(manifest)}")
    if result.migrations:
        click.echo(f"applied migrations: {', '.join(result.migrations)}")
    for path in result.files_written:
        click.echo(f"wrote: {path}")
    for path in result.files_kept:
        click.echo(f"kept (differs from the backup; its copy is {path}.restored): {path}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo("next: triage init, then start triage run (it fetches what came after the backup)")
