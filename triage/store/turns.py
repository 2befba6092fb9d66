"""First come, first served turns at SQLite's write lock among one process's threads.

SQLite lets one writer in at a time; a writer that finds the lock taken sleeps in
its busy handler (1, 2, 5, 10 ... 100 ms) and tries again. A thread that commits
back to back (intake during a burst: one transaction per message, holding the
lock while it routes) takes the lock again before a sleeping writer wakes, so
the other writers of the process (the dispatcher recording acknowledgments)
starve: measured, 1.7 acknowledgments/s while intake stored 5.6 messages/s
(benchmarks/burst_bench.py). :class:`WriteTurns` queues this process's writers
in arrival order before they ask SQLite, so each waits for at most the
transactions queued before it. Other processes still meet SQLite's busy handler.

A thread already holding its turn (a nested write session) passes straight in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["WriteTurns"]


class WriteTurns:
    """A fair (FIFO), re-entrant gate: one thread at a time, in the order they came."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0
        self._owner: int | None = None
        self._depth = 0

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for this thread's turn, hold it for the block, then pass it on."""
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
            else:
                ticket = self._next_ticket
                self._next_ticket += 1
                while self._serving != ticket:
                    self._cond.wait()
                self._owner, self._depth = me, 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                    self._serving += 1
                    self._cond.notify_all()
