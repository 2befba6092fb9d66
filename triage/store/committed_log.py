"""Log lines that stand for database changes, written only once those changes commit.

A message retried after a database error (a locked SQLite file, a full disk) went
through routing up to seven times and logged ``message_routed`` each time, though it
was stored once. :func:`log_after_commit` keeps the line with the session until its
transaction commits, then writes it; a rollback drops it (the retry logs its own).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

__all__ = ["log_after_commit"]

_KEY = "triage_lines_after_commit"


def log_after_commit(
    session: Session, logger: Any, name: str, *, level: str = "info", **fields: Any
) -> None:
    """Write ``logger.<level>(name, **fields)`` when ``session``'s transaction commits.

    Dropped if it rolls back instead, or if the savepoint it was given in rolls back
    (one message of a batch failing). Lines come out in the order they were given.
    """
    where = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_KEY, []).append((where, getattr(logger, level), name, fields))


@event.listens_for(Session, "after_commit")
def _write(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint: the lines wait for the real commit
        return
    for _where, emit, name, fields in session.info.pop(_KEY, ()):
        emit(name, **fields)


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop(session: Session, previous_transaction: SessionTransaction) -> None:
    kept = [
        line for line in session.info.get(_KEY, ()) if not _within(line[0], previous_transaction)
    ]
    if kept:
        session.info[_KEY] = kept
    else:
        session.info.pop(_KEY, None)
