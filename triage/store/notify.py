"""Wake-ups committed with the change: PostgreSQL ``NOTIFY`` and a ``LISTEN`` thread.

A writer marks its transaction with :func:`notify` (e.g. the outbox got a row);
just before the transaction commits one ``pg_notify`` per marked channel is sent
in it, so PostgreSQL delivers it exactly when the change becomes visible, and
never for a rolled-back change. :class:`Listener` waits for such notifications
on its own connection and calls back (the dispatcher of every worker wakes at
once instead of at its next poll). Polling stays the fallback: a listener that
lost its connection reconnects, and the pollers keep their intervals. On SQLite
nothing is sent (one process; it wakes its dispatcher in-process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["OUTBOX_CHANNEL", "Listener", "install", "notify"]

log = structlog.get_logger("triage.notify")

OUTBOX_CHANNEL = "triage_outbox"
"""Outgoing mail was queued (dispatchers wake)."""

_KEY = "triage_notify"


def notify(session: Session, channel: str) -> None:
    """Send ``channel`` a notification when ``session``'s transaction commits (PostgreSQL)."""
    session.info.setdefault(_KEY, set()).add(channel)


def _before_commit(session: Session) -> None:
    channels: set[str] | None = session.info.pop(_KEY, None)
    if not channels:
        return
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for channel in sorted(channels):
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


def _after_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)


def install(sessions: sessionmaker[Session]) -> None:
    """Make the sessions of ``sessions`` send their :func:`notify` channels at commit."""
    event.listen(sessions, "before_commit", _before_commit)
    event.listen(sessions, "after_rollback", _after_rollback)


class Listener:
    """``LISTEN`` on ``channels`` in a thread; ``callback(channel)`` for each notification.

    Args:
        engine: a PostgreSQL engine (its URL and credentials are reused for one
            dedicated connection outside the pool's transactions).
        channels: the channel names.
        callback: called in the listener's thread; must be quick and not raise.
        reconnect: seconds between attempts while the database is unreachable.
    """

    def __init__(
        self,
        engine: Any,
        channels: Iterable[str],
        callback: Callable[[str], None],
        *,
        reconnect: float = 5.0,
    ) -> None:
        self.engine = engine
        self.channels = tuple(channels)
        self.callback = callback
        self.reconnect = reconnect
        self.listening = threading.Event()
        """Set while a LISTEN connection is open (tests wait for it)."""

    def run(self, stop: threading.Event) -> None:
        """Listen until ``stop`` is set; never raises (a lost connection is retried)."""
        while not stop.is_set():
            try:
                self._listen(stop)
            except (SQLAlchemyError, OSError) as exc:
                self.listening.clear()
                log.warning("listen_failed", channels=list(self.channels), error=str(exc)[:300])
                stop.wait(self.reconnect)
            except Exception as exc:  # noqa: BLE001 - polling still works; keep trying
                self.listening.clear()
                log.warning("listen_failed", channels=list(self.channels), error=repr(exc)[:300])
                stop.wait(self.reconnect)
        self.listening.clear()

    def _listen(self, stop: threading.Event) -> None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for channel in self.channels:
                conn.exec_driver_sql(f'LISTEN "{channel}"')
            raw = conn.connection.driver_connection
            self.listening.set()
            log.info("listening", channels=list(self.channels))
            while not stop.is_set():
                for note in raw.notifies(timeout=0.5):
                    self.callback(note.channel)
