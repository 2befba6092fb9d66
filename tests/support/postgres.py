"""A throwaway PostgreSQL database at 127.0.0.1:5432 (user postgres), when one answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

PG_HOST = "127.0.0.1"
PG_PORT = 5432


def postgres_unavailable_reason() -> str | None:
    """None when PostgreSQL answers; else why the PostgreSQL tests are skipped."""
    try:
        import psycopg  # noqa: PLC0415
    except ImportError:
        return "psycopg is not installed (pip install '.[test]')"
    try:
        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", connect_timeout=3
        ):
            return None
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL is not running at {PG_HOST}:{PG_PORT} (user postgres): {first}"


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Create a fresh database, yield its SQLAlchemy URL, drop it afterwards."""
    import psycopg  # noqa: PLC0415

    name = f"triage_test_{uuid.uuid4().hex[:12]}"
    admin = {
        "host": PG_HOST,
        "port": PG_PORT,
        "user": "postgres",
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**admin) as conn:  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(**admin) as conn:  # type: ignore[arg-type]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
