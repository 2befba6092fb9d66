"""WriteTurns: this process's SQLite writers go in the order they asked, never starved."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from triage.store import Database
from triage.store.turns import WriteTurns


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_waiting_threads_enter_in_the_order_they_asked() -> None:
    turns = WriteTurns()
    order: list[int] = []
    release = threading.Event()

    def holder() -> None:
        with turns.turn():
            release.wait(5)

    def writer(n: int) -> None:
        with turns.turn():
            order.append(n)

    first = threading.Thread(target=holder)
    first.start()
    wait_until(lambda: turns._next_ticket == 1)
    threads = []
    for n in range(5):
        t = threading.Thread(target=writer, args=(n,))
        t.start()
        wait_until(lambda n=n: turns._next_ticket == n + 2)
        threads.append(t)
    release.set()
    for t in [first, *threads]:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_a_thread_holding_its_turn_can_nest() -> None:
    turns = WriteTurns()
    with turns.turn(), turns.turn():
        pass
    with turns.turn():  # passed on after the outer block
        pass


def test_a_writer_committing_back_to_back_lets_another_in_between(tmp_path: Path) -> None:
    """The other writer gets in after at most the transaction in progress (and those
    queued before it), not when the busy writer happens to pause."""
    db = Database.open(f"sqlite:///{tmp_path / 't.db'}")
    try:
        with db.session() as s:
            s.execute(text("CREATE TABLE log (who TEXT)"))
        stop = threading.Event()
        busy_started = threading.Event()

        def busy() -> None:
            while not stop.is_set():
                with db.session() as s:
                    s.execute(text("INSERT INTO log VALUES ('busy')"))
                    busy_started.set()
                    sum(range(20_000))  # work done holding the lock and the GIL (routing)

        t = threading.Thread(target=busy)
        t.start()
        busy_started.wait(5)
        for _ in range(20):
            with db.session() as s:
                s.execute(text("INSERT INTO log VALUES ('other')"))
        stop.set()
        t.join(10)
        with db.read_session() as s:
            who = [r[0] for r in s.execute(text("SELECT who FROM log ORDER BY rowid"))]
        first, last = who.index("other"), len(who) - 1 - who[::-1].index("other")
        # each 'other' write waited for the one busy transaction ahead of it, no more:
        # they alternate (without the turns, 40 and more busy ones got in between)
        between = who[first : last + 1]
        assert between.count("other") == 20
        assert between.count("busy") <= 19
    finally:
        db.dispose()
