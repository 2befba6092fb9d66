"""Log lines of database changes are written once, when the change commits (issue 13.11)."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from triage.logs import get_logger
from triage.store.committed_log import log_after_commit

log = get_logger("test")


def _events(logs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["event"], e.get("n")) for e in logs]


def test_a_retried_transaction_logs_its_change_once() -> None:
    # a message retried after a database error logged message_routed up to 7 times
    engine = create_engine("sqlite://")
    with capture_logs() as logs:
        for attempt in range(3):
            with Session(engine) as session:
                try:
                    with session.begin():
                        session.execute(text("SELECT 1"))
                        log_after_commit(session, log, "message_routed", n=attempt)
                        if attempt < 2:
                            raise RuntimeError("database is locked")  # noqa: TRY301
                except RuntimeError:
                    continue
        assert _events(logs) == [("message_routed", 2)]


def test_a_savepoint_rolled_back_drops_only_its_own_lines() -> None:
    # one message of a batch fails in its savepoint; the others' lines are written
    engine = create_engine("sqlite://")
    with capture_logs() as logs, Session(engine) as session, session.begin():
        for n in range(3):
            nested = session.begin_nested()
            log_after_commit(session, log, "message_routed", n=n)
            if n == 1:
                nested.rollback()
            else:
                nested.commit()
        assert logs == []  # nothing before the commit
    assert _events(logs) == [("message_routed", 0), ("message_routed", 2)]


def test_the_level_is_the_callers() -> None:
    engine = create_engine("sqlite://")
    with capture_logs() as logs, Session(engine) as session, session.begin():
        log_after_commit(session, log, "message_routed", level="debug", n=1)
    assert [e["log_level"] for e in logs] == ["debug"]
