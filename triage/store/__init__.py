"""Storage adapter: SQLAlchemy models, the database handle and alembic migrations."""

from triage.store.db import Database, make_engine

__all__ = ["Database", "make_engine"]
