"""Backups and restores: the database (models included), rule files and templates, one archive.

``triage backup --to DIR`` writes ``DIR/triage-backup-<UTC time>.tar.gz`` (mode
0600: it holds client mail) while the daemon runs:

- SQLite: the online backup API (``sqlite3.Connection.backup``) copies the
  database in one step, i.e. in one read transaction: under WAL the daemon keeps
  writing meanwhile and the copy is the database as of that transaction's start.
  The copy is checked with ``PRAGMA integrity_check``.
- PostgreSQL: ``pg_dump --format=custom`` of a snapshot exported by a
  ``REPEATABLE READ`` transaction (``pg_export_snapshot()``), so the counts and
  schema revision in the manifest describe exactly what was dumped. ``pg_dump``
  must be at least the server's major version (it says so itself; the error
  names both versions).
- Trained models live in the database's ``models`` table and come with it;
  the configured rule files, the templates directory (if any) and the config
  file are added as files. Rule files shipped with triage (``shipped:NAME``)
  come with the package: the manifest records them by name and SHA-256 only.
  The OAuth2 token cache is NOT included (it is a credential): sign in again
  with ``triage auth login`` on a new machine.

``manifest.json`` in the archive records the format, the time, the database kind,
schema revision, counts and the SHA-256 of every member. ``--keep N`` then deletes
all but the newest N backups in DIR.

``triage restore FILE`` checks the archive (format, checksums, no path leaving
the archive), refuses a database that is not empty or of the other kind, loads
the database (SQLite: the backup API into a new file; PostgreSQL:
``pg_restore --single-transaction``), applies pending migrations (a backup from
an older triage), and writes the rule files and templates back where the
current config reads them (where they were taken from when the config does not
name them), never over a different file (that one gets a ``.restored`` copy
beside it); it warns when those locations differ from the archive's, or when a
rule file the config names is not in the archive.

:func:`run_backup` (``triage backup``) records every run, failed or not, in
``backup_runs``: ``triage status``, ``/health`` and ``/metrics`` show it.

The daemon started on the restored database resumes each folder from its
restored high-water mark, so mail that arrived after the backup is fetched again
and nothing is lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from triage import __version__
from triage.config import Settings
from triage.errors import BackupError, ConfigError, TriageError
from triage.rule_files import SHIPPED, resolve_rule_file
from triage.secrets import read_secret

__all__ = [
    "BACKUP_PREFIX",
    "FORMAT",
    "BackupResult",
    "RestoreResult",
    "make_backup",
    "prune_backups",
    "restore_backup",
    "run_backup",
]

if TYPE_CHECKING:
    from triage.store import Database

log = structlog.get_logger("triage.backup")

FORMAT = 1
"""Version of the archive layout (manifest.json ``format``)."""
BACKUP_PREFIX = "triage-backup-"
SUFFIX = ".tar.gz"
COUNTED_TABLES = ("messages", "tickets", "outbox", "models", "folders")
TOOL_TIMEOUT = 6 * 3600.0
"""Seconds pg_dump / pg_restore may take at most."""


@dataclass(frozen=True)
class BackupResult:
    """A backup written.

    Attributes:
        path: the archive.
        manifest: what ``manifest.json`` in it says.
        removed: older backups deleted by ``--keep``.
    """

    path: Path
    manifest: dict[str, Any]
    removed: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class RestoreResult:
    """A restore done.

    Attributes:
        manifest: the archive's manifest.
        migrations: schema revisions applied after loading (a backup of an older triage).
        files_written: rule files and templates written where they were taken from.
        files_kept: existing different files left alone (``<path>.restored`` written beside).
        warnings: where the archive's rule files and templates and the current config's
            locations differ (restored where the current config reads them), or a rule
            file the config names is not in the archive; one line each.
    """

    manifest: dict[str, Any]
    migrations: list[str]
    files_written: list[Path] = field(default_factory=list)
    files_kept: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# -- helpers -------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _db_password(settings: Settings) -> str:
    db = settings.database
    if not (db.password_env or db.password_file):
        return ""
    return read_secret(
        "database",
        env=db.password_env,
        file=settings.resolve(db.password_file) if db.password_file else "",
    )


def _url(settings: Settings) -> URL:
    try:
        return make_url(settings.database_url)
    except Exception:  # noqa: BLE001 - any parse failure is a config error
        raise ConfigError("database.url: not a database URL") from None


def _sqlite_path(url: URL) -> Path:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError(f"database.url: {database or '(empty)'} is not an SQLite file")
    return Path(database)


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI (no password) and the environment carrying the password."""
    plain = url.set(drivername="postgresql", password=None)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed: install the PostgreSQL client tools of the server's"
            " major version (Debian: apt-get install postgresql-client)"
        )
    return found


def _run_tool(argv: list[str], env: dict[str, str], doing: str) -> None:
    try:
        done = subprocess.run(  # noqa: S603 - fixed program, arguments built here
            argv, env=env, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise BackupError(
            f"{doing}: {Path(argv[0]).name} took longer than {TOOL_TIMEOUT:.0f} s"
        ) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        detail = "; ".join(lines[-3:]) or f"exit status {done.returncode}"
        hint = ""
        if "version mismatch" in detail or "unsupported version" in detail:
            hint = (
                " (install the client tools of the server's major version, e.g."
                " postgresql-client-16, and put them first on PATH)"
            )
        raise BackupError(f"{doing}: {Path(argv[0]).name} failed: {detail}{hint}")


# -- backup --------------------------------------------------------------------------------


def _backup_sqlite(url: URL, target: Path) -> dict[str, Any]:
    source_path = _sqlite_path(url)
    if not source_path.exists():
        raise BackupError(f"no database at {source_path}")
    source = sqlite3.connect(str(source_path), timeout=30)
    try:
        copy = sqlite3.connect(str(target))
        try:
            source.backup(copy)  # all pages in one step: one consistent read transaction
            checked = copy.execute("PRAGMA integrity_check").fetchone()
            if not checked or checked[0] != "ok":
                raise BackupError(f"the copy of {source_path} fails its integrity check: {checked}")
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            info = _describe_sqlite(copy)
        finally:
            copy.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source_path}: {exc}") from None
    finally:
        source.close()
    return info


def _describe_sqlite(conn: sqlite3.Connection) -> dict[str, Any]:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    revision = None
    if "alembic_version" in tables:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    counts = {
        t: int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0])  # noqa: S608 - fixed names
        for t in COUNTED_TABLES
        if t in tables
    }
    return {"revision": revision, "counts": counts}


def _backup_postgres(url: URL, target: Path) -> dict[str, Any]:
    pg_dump = _tool("pg_dump")
    uri, env = _libpq(url)
    engine = create_engine(url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn:
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            tables = set(
                conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                ).scalars()
            )
            revision = None
            if "alembic_version" in tables:
                revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            counts = {
                t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one())  # noqa: S608
                for t in COUNTED_TABLES
                if t in tables
            }
            # the dump sees exactly this transaction's snapshot (kept open until it ends)
            _run_tool(
                [pg_dump, "--format=custom", f"--snapshot={snapshot}", "--no-password",
                 f"--file={target}", f"--dbname={uri}"],
                env,
                "backing up the PostgreSQL database",
            )  # fmt: skip
    except BackupError:
        raise
    except Exception as exc:  # noqa: BLE001 - a database error becomes one line
        raise BackupError(f"cannot back up the PostgreSQL database: {_first_line(exc)}") from None
    finally:
        engine.dispose()
    return {"revision": revision, "counts": counts}


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return (str(orig if orig is not None else exc).strip().splitlines() or [type(exc).__name__])[0]


def _config_files(settings: Settings) -> list[tuple[str, Path, str, str]]:
    """(archive name, source path, kind, config entry) of the files to include.

    ``shipped:`` rule files are not files of the installation (they come with the
    package): see :func:`_shipped_rule_files`.

    Raises:
        BackupError: ``acknowledgments.templates_dir`` is not a directory.
    """
    out: list[tuple[str, Path, str, str]] = []
    for i, rule_file in enumerate(settings.routing.rule_files):
        if rule_file.startswith(SHIPPED):
            continue
        path = resolve_rule_file(settings, rule_file)
        out.append((f"rules/{i:02d}-{path.name}", path, "rule_file", rule_file))
    templates = settings.acknowledgments.templates_dir
    if templates:
        root = settings.resolve(templates)
        if not root.is_dir():
            raise BackupError(f"acknowledgments.templates_dir: {root} is not a directory")
        out.extend(
            (f"templates/{p.relative_to(root).as_posix()}", p, "template", templates)
            for p in sorted(root.rglob("*"))
            if p.is_file()
        )
    if settings.path is not None and Path(settings.path).is_file():  # None: built in code
        out.append((f"config/{settings.path.name}", Path(settings.path), "config", ""))
    return out


def _shipped_rule_files(settings: Settings) -> list[dict[str, Any]]:
    """The ``shipped:NAME`` rule files the config names, recorded by reference.

    They come with the triage package (``rules/NAME``), so the archive holds only
    their name and SHA-256 (a restore under another triage version says when the
    shipped file differs); nothing is read from the config's directory.

    Raises:
        BackupError: this triage ships no such file.
    """
    out: list[dict[str, Any]] = []
    for entry in settings.routing.rule_files:
        if not entry.startswith(SHIPPED):
            continue
        path = resolve_rule_file(settings, entry)
        try:
            digest = _sha256(path)
        except OSError:
            raise BackupError(
                f"routing.rule_files: {entry}: triage {__version__} ships no such rule file"
            ) from None
        out.append({"entry": entry, "sha256": digest})
    return out


def make_backup(settings: Settings, directory: Path, *, keep: int | None = None) -> BackupResult:
    """Write a backup of ``settings``' installation into ``directory`` (created, mode 0700).

    Args:
        settings: the configuration (database URL, rule files, templates).
        directory: where the archive goes.
        keep: afterwards delete all but the newest ``keep`` backups there (None: none).

    Raises:
        BackupError: the database cannot be copied, pg_dump is missing or refused, a
            rule file cannot be read, or the directory cannot be written.
    """
    if keep is not None and keep < 1:
        raise BackupError("--keep must be at least 1 (the backup just made)")
    url = _url(settings)
    kind = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"
    if kind == "postgresql":
        password = _db_password(settings)
        if password:
            url = url.set(password=password)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BackupError(f"cannot create {directory}: {exc.strerror}") from None
    now = datetime.now(UTC)
    name = f"{BACKUP_PREFIX}{now.strftime('%Y%m%dT%H%M%S')}Z{SUFFIX}"
    final = directory / name
    n = 1
    while final.exists():  # two backups in one second
        n += 1
        final = directory / f"{BACKUP_PREFIX}{now.strftime('%Y%m%dT%H%M%S')}Z-{n}{SUFFIX}"
    files = _config_files(settings)  # config problems first, before the database is copied
    shipped = _shipped_rule_files(settings)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".backup-") as tmp:
        work = Path(tmp)
        db_name = "database.sqlite" if kind == "sqlite" else "database.pgdump"
        db_file = work / db_name
        info = _backup_sqlite(url, db_file) if kind == "sqlite" else _backup_postgres(url, db_file)
        members: list[dict[str, Any]] = [
            {"name": db_name, "kind": "database", "sha256": _sha256(db_file),
             "size": db_file.stat().st_size},
        ]  # fmt: skip
        extra: list[tuple[str, Path]] = []
        for arcname, source, file_kind, entry in files:
            try:
                digest, size = _sha256(source), source.stat().st_size
            except OSError as exc:
                what = "routing.rule_files" if file_kind == "rule_file" else file_kind
                raise BackupError(f"{what}: cannot read {source}: {exc.strerror}") from None
            member = {"name": arcname, "kind": file_kind, "source": str(source.resolve()),
                      "sha256": digest, "size": size}  # fmt: skip
            if entry:
                member["entry"] = entry
            members.append(member)
            extra.append((arcname, source))
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "created_at": now.isoformat().replace("+00:00", "Z"),
            "triage_version": __version__,
            "database": {"kind": kind, "file": db_name, **info},
            "members": members,
            "shipped_rule_files": shipped,
        }
        manifest_file = work / "manifest.json"
        manifest_file.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        partial = work / "archive.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                tar.add(manifest_file, arcname="manifest.json")
                tar.add(db_file, arcname=db_name)
                for arcname, source in extra:
                    tar.add(source, arcname=arcname)
                tar.close()
                raw.flush()
                os.fsync(raw.fileno())
            partial.replace(final)
        except OSError as exc:
            raise BackupError(f"cannot write {final}: {exc.strerror}") from None
    removed = prune_backups(directory, keep) if keep is not None else []
    log.info(
        "backup_written",
        path=str(final),
        database=kind,
        revision=info["revision"],
        counts=info["counts"],
        removed=[str(p) for p in removed],
    )
    return BackupResult(final, manifest, removed)


def run_backup(
    settings: Settings,
    directory: Path,
    *,
    keep: int | None = None,
    database: Callable[[], Database],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BackupResult:
    """:func:`make_backup`, then record the run in ``backup_runs`` (worked or failed).

    ``triage status``, ``/health`` and ``/metrics`` show the newest run, so a nightly
    backup that fails is seen without reading the journal. A failure is logged
    (``backup_failed``), recorded and raised again; when the database itself cannot
    be opened or written, the run cannot be recorded (``backup_not_recorded``).

    Args:
        database: opens the installation's database (called once, after the backup).
        now: the clock (UTC-aware), for the record.

    Raises:
        BackupError, ConfigError: as :func:`make_backup`.
    """
    try:
        result = make_backup(settings, directory, keep=keep)
    except Exception as exc:
        error = str(exc) or type(exc).__name__
        log.error("backup_failed", error=error)  # noqa: TRY400 - one line, the reason
        _record_run(database, ok=False, at=now(), error=error)
        raise
    _record_run(database, ok=True, at=now(), archive=str(result.path))
    return result


def _record_run(database: Callable[[], Database], **run: Any) -> None:
    from triage.store.backups import record_backup_run  # noqa: PLC0415

    try:
        with database().session() as session:
            record_backup_run(session, **run)
    except (TriageError, SQLAlchemyError) as exc:
        log.warning("backup_not_recorded", error=str(exc) or type(exc).__name__)


def prune_backups(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` ``triage-backup-*.tar.gz`` files in ``directory``.

    Newest by the UTC time in the name (which sorts as text). Other files are never
    touched. Returns the paths deleted, oldest first.
    """
    backups = sorted(
        (p for p in directory.glob(f"{BACKUP_PREFIX}*{SUFFIX}") if p.is_file()),
        key=lambda p: p.name,
    )
    doomed = backups[: max(0, len(backups) - keep)]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


# -- restore -------------------------------------------------------------------------------


def _read_archive(archive: Path, into: Path) -> dict[str, Any]:
    """Extract ``archive`` into ``into`` safely and return its checked manifest."""
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            tar.extractall(into, filter="data")  # no absolute paths, no "..", no devices
    except FileNotFoundError:
        raise BackupError(f"{archive}: no such file") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{archive}: not a readable triage backup ({exc})") from None
    try:
        manifest: dict[str, Any] = json.loads((into / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise BackupError(f"{archive}: no manifest.json: not a triage backup") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise BackupError(
            f"{archive}: backup format {found} is not one this triage reads ({FORMAT})"
        )
    for member in manifest.get("members", []):
        path = into / member["name"]
        if not path.is_file() or _sha256(path) != member["sha256"]:
            raise BackupError(f"{archive}: {member['name']} is missing or damaged (checksum)")
    return manifest


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    from triage.store.db import alembic_config  # noqa: PLC0415

    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def _restore_sqlite(url: URL, source: Path) -> None:
    target = _sqlite_path(url)
    if target.exists() and target.stat().st_size > 0:
        conn = sqlite3.connect(str(target))
        try:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
        finally:
            conn.close()
        if tables:
            raise BackupError(
                f"{target} is not empty ({len(tables)} tables): restore needs an empty"
                " database (move the file away, or point database.url at a new one)"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(str(source))
    try:
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot restore into {target}: {exc}") from None
    finally:
        src.close()
    with contextlib.suppress(OSError):
        target.chmod(0o600)


def _restore_postgres(url: URL, source: Path) -> None:
    pg_restore = _tool("pg_restore")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = list(
                conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                ).scalars()
            )
    except Exception as exc:  # noqa: BLE001 - a database error becomes one line
        raise BackupError(f"cannot reach the PostgreSQL database: {_first_line(exc)}") from None
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            f"the PostgreSQL database {url.database} is not empty ({len(tables)} tables):"
            " restore needs an empty database (createdb a new one and point database.url at it)"
        )
    uri, env = _libpq(url)
    _run_tool(
        [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
         "--no-password", f"--dbname={uri}", str(source)],
        env,
        "restoring the PostgreSQL database",
    )  # fmt: skip


def _restore_target(settings: Settings, member: dict[str, Any]) -> tuple[Path, str]:
    """Where a rule file or template of the archive goes back, and a warning ("" if none).

    A file the current config names (the same ``routing.rule_files`` entry, or the
    ``acknowledgments.templates_dir``) goes where the current config resolves it,
    which is where the restored daemon reads it; otherwise (or for an archive
    without config entries) back to where it was taken from.
    """
    source = Path(member["source"])
    entry = member.get("entry")
    if member["kind"] == "rule_file":
        if entry and entry in settings.routing.rule_files:
            target = resolve_rule_file(settings, entry)
            if target.resolve() != source:
                return target, (
                    f"rule file {entry}: the archive took it from {source}; this config"
                    f" reads it from {target}: restored there"
                )
            return target, ""
        return source, (
            f"rule file {source}: this config's routing.rule_files does not name it"
            f" ({entry or 'no entry recorded'}): restored where it was taken from"
        )
    templates = settings.acknowledgments.templates_dir
    if entry and templates:
        relative = member["name"].removeprefix("templates/")
        root = settings.resolve(templates)
        target = root / relative
        if target.resolve() != source:
            taken = source.as_posix().removesuffix("/" + relative)
            return target, (
                f"templates: the archive took them from {taken}; this config"
                f" reads them from {root}: restored there"
            )
        return target, ""
    if not templates:
        return source, (
            "templates: this config has no acknowledgments.templates_dir:"
            " restored where they were taken from"
        )
    return source, ""


def _restore_files(
    settings: Settings, manifest: dict[str, Any], extracted: Path
) -> tuple[list[Path], list[Path], list[str]]:
    written: list[Path] = []
    kept: list[Path] = []
    warnings: list[str] = []
    for member in manifest.get("members", []):
        if member.get("kind") not in {"rule_file", "template"}:
            continue
        source = extracted / member["name"]
        target, warning = _restore_target(settings, member)
        if warning and warning not in warnings:
            warnings.append(warning)
        if target.exists():
            if target.is_file() and _sha256(target) == member["sha256"]:
                continue
            beside = target.with_name(target.name + ".restored")
            shutil.copyfile(source, beside)
            kept.append(target)
            log.warning("restore_file_kept", path=str(target), restored_copy=str(beside))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    warnings.extend(_check_rule_entries(settings, manifest))
    for warning in warnings:
        log.warning("restore_location_differs", warning=warning)
    return written, kept, warnings


def _check_rule_entries(settings: Settings, manifest: dict[str, Any]) -> list[str]:
    """Warnings for rule files the current config names that the archive does not hold
    (or, ``shipped:``, that this triage ships differently or not at all)."""
    members = manifest.get("members", [])
    in_archive = {m.get("entry") for m in members if m.get("kind") == "rule_file"}
    sources = {m.get("source") for m in members if m.get("kind") == "rule_file"}
    shipped = {s.get("entry"): s.get("sha256") for s in manifest.get("shipped_rule_files", [])}
    out: list[str] = []
    for entry in settings.routing.rule_files:
        path = resolve_rule_file(settings, entry)
        if entry.startswith(SHIPPED):
            if entry not in shipped:
                continue  # named now, not at the backup: nothing to compare
            try:
                same = _sha256(path) == shipped[entry]
            except OSError:
                out.append(f"rule file {entry}: triage {__version__} does not ship it")
                continue
            if not same:
                out.append(
                    f"rule file {entry}: the one shipped with this triage differs from the"
                    " one in use at the backup (another triage version)"
                )
        elif entry not in in_archive and str(path.resolve()) not in sources:
            state = "exists" if path.is_file() else "is missing"
            out.append(
                f"rule file {entry} of this config ({path}) is not in the archive; it {state}"
            )
    return out


def restore_backup(settings: Settings, archive: Path) -> RestoreResult:
    """Restore ``archive`` into the (empty) database ``settings`` names, plus its files.

    Raises:
        BackupError: the archive is not a (readable, intact) triage backup, is of the
            other database kind, was made by a newer triage, the database is not empty,
            or pg_restore failed.
    """
    from triage.store import Database  # noqa: PLC0415 - alembic only when restoring

    url = _url(settings)
    kind = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"
    password = _db_password(settings) if kind == "postgresql" else ""
    if password:
        url = url.set(password=password)
    with tempfile.TemporaryDirectory(prefix="triage-restore-") as tmp:
        extracted = Path(tmp)
        manifest = _read_archive(archive, extracted)
        database = manifest["database"]
        if database["kind"] != kind:
            raise BackupError(
                f"{archive} is a {database['kind']} backup; database.url is {kind}:"
                " restore into a database of the same kind"
            )
        revision = database.get("revision")
        if revision is not None and revision not in _known_revisions():
            raise BackupError(
                f"{archive} was made by a newer triage (schema {revision}); upgrade triage first"
            )
        source = extracted / database["file"]
        if kind == "sqlite":
            _restore_sqlite(url, source)
        else:
            _restore_postgres(url, source)
        written, kept, warnings = _restore_files(settings, manifest, extracted)
    db = Database.open(settings.database_url, password=password, migrate=False)
    try:
        migrations = db.migrate()
    finally:
        db.dispose()
    log.info(
        "backup_restored",
        archive=str(archive),
        database=kind,
        revision=revision,
        migrations=migrations,
        files_written=[str(p) for p in written],
        files_kept=[str(p) for p in kept],
    )
    return RestoreResult(manifest, migrations, written, kept, warnings)
