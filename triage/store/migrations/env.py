"""Alembic environment: runs migrations on the engine triage passes in."""

import warnings
from typing import Any

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.exc import SAWarning

from triage.store.models import Base

config = context.config
target_metadata = Base.metadata


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """Leave the full-text search table (per-database shapes, migration 0005) out of checks."""
    return not (type_ == "table" and name is not None and name.startswith("search_docs"))


EXPRESSION_INDEXES = frozenset({"ix_messages_sender_received"})
"""Indexes on an expression (migration 0014). SQLite's reflection cannot read them
back, so there the check of models against migrations leaves them out (PostgreSQL
compares them)."""


def _include_object_sqlite(
    _obj: object, name: str | None, type_: str, _reflected: bool, _compare_to: object
) -> bool:
    return not (type_ == "index" and name in EXPRESSION_INDEXES)


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no engine and no sqlalchemy.url given to alembic")
        engine = create_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        driver: Any = connection.connection.driver_connection
        if sqlite:
            # SQLite alters a table by building a new one and dropping the old
            # (alembic's batch mode); with foreign keys on, dropping a table that
            # other rows reference fails. SQLite's documented procedure
            # (https://www.sqlite.org/lang_altertable.html#otheralter): foreign keys
            # off outside the transaction, foreign_key_check before the commit.
            driver.execute("PRAGMA foreign_keys=OFF")
        try:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=sqlite,
                compare_type=True,
                include_name=include_name,
                include_object=_include_object_sqlite if sqlite else None,
            )
            with context.begin_transaction(), warnings.catch_warnings():
                if sqlite:
                    warnings.filterwarnings(
                        "ignore",
                        message="Skipped unsupported reflection of expression-based index",
                        category=SAWarning,
                    )
                    warnings.filterwarnings(
                        "ignore", message="autogenerate skipping metadata-specified expression"
                    )
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(
                            f"migration left {len(broken)} rows whose foreign key points"
                            f" nowhere (first: table {broken[0][0]}, row {broken[0][1]})"
                        )
            connection.commit()
        finally:
            if sqlite:
                driver.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
