"""Opening the database and applying migrations.

SQLite (default) gets WAL mode, foreign keys, a busy timeout and ``BEGIN
IMMEDIATE`` transactions, so two processes writing at once wait for each other
instead of failing. PostgreSQL is used as is (several workers may share it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from triage.errors import ConfigError, StoreError
from triage.store import notify as notifications
from triage.store.turns import WriteTurns

if TYPE_CHECKING:  # alembic loads only to migrate or read the schema revision
    from alembic.config import Config as AlembicConfig

__all__ = ["Database", "alembic_config", "describe_error", "make_engine"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY_OPTION = "triage_read_only"


def describe_error(exc: SQLAlchemyError) -> str:
    """One line for a database error: the driver's message, without SQL, parameters
    (which may hold mail text) or SQLAlchemy's "Background on this error" link."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    return text.split("\n", 1)[0].split(" (Background on this error", 1)[0].strip()


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable database URL)"


def make_engine(url: str, *, password: str = "", echo: bool = False) -> Engine:
    """Create an SQLAlchemy engine for ``url``.

    Args:
        url: ``sqlite:///path`` or ``postgresql+psycopg://user@host/db``.
        password: PostgreSQL password read from a secret (never put in the URL text).
        echo: log SQL (debugging).

    Raises:
        ConfigError: the URL is malformed or its driver is not installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database.url: {_safe_url(url)!r} is not a database URL") from None
    if password:
        parsed = parsed.set(password=password)
    kwargs: dict[str, Any] = {"echo": echo}
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (ImportError, ModuleNotFoundError) as exc:
        hint = (
            " (install the postgres extra: pip install 'triage[postgres]')" if not is_sqlite else ""
        )
        raise ConfigError(f"database.url: cannot use {_safe_url(url)!r}: {exc}{hint}") from None
    except ArgumentError as exc:
        raise ConfigError(f"database.url: cannot use {_safe_url(url)!r}: {exc}") from None
    if is_sqlite:
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock at once: a writer never fails half-way on
        # SQLITE_BUSY when upgrading from a read, it waits up to the busy timeout.
        # Read-only sessions (Database.read_session) begin DEFERRED: in WAL mode they
        # never block the daemon's writes.
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(engine: Engine | None = None) -> AlembicConfig:
    """An alembic configuration for the migrations shipped inside the package."""
    from alembic.config import Config as AlembicConfig  # noqa: PLC0415 - start-up time

    # stdout given now: alembic's default is whatever sys.stdout was when it was imported
    cfg = AlembicConfig(stdout=sys.stdout)
    cfg.set_main_option("script_location", str(files("triage.store") / "migrations"))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def shipped_head() -> str:
    """The newest schema revision shipped with this triage, without importing alembic.

    Migrations are named ``NNNN_what.py`` with revision ``"NNNN"``, one chain each
    following the one before (tests/test_store.py checks both against alembic's own
    answer), so the head is the highest number: a directory listing, where alembic
    would take a quarter of a second to load every script.
    """
    names = [entry.name for entry in (files("triage.store") / "migrations" / "versions").iterdir()]
    return max(name[:4] for name in names if name[:4].isdigit() and name.endswith(".py"))


class Database:
    """The store's engine and session factory.

    Use :meth:`session` for one transaction: it commits on success and rolls
    back on any exception.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self._turns = WriteTurns() if engine.dialect.name == "sqlite" else None
        """SQLite: the process's writers take turns in arrival order (triage.store.turns)."""
        notifications.install(self.sessions)  # NOTIFY committed with the change (PostgreSQL)

    @classmethod
    def open(
        cls, url: str, *, password: str = "", migrate: bool = True, check: bool = False
    ) -> Database:
        """Open the database at ``url``; by default apply pending migrations.

        Args:
            url: the database URL.
            password: PostgreSQL password from a secret.
            migrate: apply pending migrations (``triage init``, the daemon's start,
                the demo, tests).
            check: when not migrating, verify the schema is current (read-only, see
                :meth:`check_schema`); every other CLI command opens it this way.

        Raises:
            ConfigError: bad URL or missing driver.
            StoreError: the database cannot be reached or migrated, or (``check``)
                its schema is not current.
        """
        db = cls(make_engine(url, password=password))
        if migrate:
            db.migrate()
        elif check:
            db.check_schema()
        return db

    @property
    def url(self) -> str:
        """The URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def migrate(self) -> list[str]:
        """Apply pending alembic migrations; return the revisions applied (oldest first).

        Raises:
            StoreError: the database cannot be reached or a migration fails.
        """
        from alembic import command  # noqa: PLC0415 - start-up time
        from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
        from alembic.script import ScriptDirectory  # noqa: PLC0415

        cfg = alembic_config(self.engine)
        script = ScriptDirectory.from_config(cfg)
        try:
            with self.engine.connect() as conn:
                current = MigrationContext.configure(conn).get_current_heads()
            head = script.get_current_head()
            if head is not None and head in current:
                return []
            applied = [
                rev.revision
                for rev in script.iterate_revisions(head, current[0] if current else None)
            ]
            command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise StoreError(f"cannot open database {self.url}: {exc.orig}") from None
        except DBAPIError as exc:
            raise StoreError(f"cannot use database {self.url}: {exc.orig}") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot migrate database {self.url}: {describe_error(exc)}") from None
        return list(reversed(applied))

    def current_revision(self) -> str | None:
        """The schema revision the database is at, None when empty.

        Read in a read-only transaction: on SQLite it never waits for, nor holds up,
        a writer (a deferred ``BEGIN`` in WAL mode).

        Raises:
            StoreError: the database cannot be reached.
        """
        try:
            with self.engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as conn:
                if not inspect(conn).has_table("alembic_version"):
                    return None
                heads = list(conn.scalars(text("SELECT version_num FROM alembic_version")))
                conn.rollback()
        except DBAPIError as exc:
            raise StoreError(f"cannot open database {self.url}: {describe_error(exc)}") from None
        return heads[0] if heads else None

    def check_schema(self) -> None:
        """Make sure the schema is the one this triage was built for, without changing it.

        Only ``triage init``, the daemon's start and ``triage demo`` migrate
        (:meth:`migrate`); every other command calls this, which reads the revision
        in a read-only transaction and so never takes the SQLite write lock.

        Raises:
            StoreError: the database cannot be reached, is empty, or its schema is
                behind (or ahead of) this triage's, naming both revisions and what to do.
        """
        current = self.current_revision()
        if current is not None and current == shipped_head():
            return
        from alembic.script import ScriptDirectory  # noqa: PLC0415 - start-up time

        script = ScriptDirectory.from_config(alembic_config())
        head = script.get_current_head()
        if current == head:
            return
        if current is None:
            raise StoreError(f"database {self.url} has no triage schema yet: run `triage init`")
        known = {rev.revision for rev in script.walk_revisions()}
        if current not in known:
            raise StoreError(
                f"database {self.url} has schema {current}, which this triage does not know"
                f" (it needs {head}): it was written by a newer triage; upgrade triage"
            )
        raise StoreError(
            f"database {self.url} has schema {current} but this triage needs {head}:"
            " run `triage init` to migrate it (or restart `triage run`, which migrates at start)"
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commit when the block ends, roll back if it raises.

        On SQLite the threads of this process wait their turn for it in the order
        they asked (so a thread committing back to back cannot starve the others).
        """
        if self._turns is None:
            with self.sessions() as session, session.begin():
                yield session
            return
        with self._turns.turn(), self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A transaction for reading only: nothing is committed (it is rolled back at the end).

        On SQLite it does not take the write lock, so listings never hold up the daemon.
        """
        with self.sessions() as session:
            session.connection(execution_options={READ_ONLY_OPTION: True})
            try:
                yield session
            finally:
                session.rollback()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
