"""Several workers sending one outbox (PostgreSQL): rows claimed with SKIP LOCKED, and
NOTIFY committed with the queued mail so every worker's dispatcher wakes at once."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text
from test_outbox_dispatch import T0, queue_mail

from triage.clock import FixedClock
from triage.services.dispatch import Dispatcher
from triage.smtp import FolderSender
from triage.store import Database
from triage.store.models import OutboxMail
from triage.store.notify import OUTBOX_CHANNEL, Listener, notify

pytestmark = pytest.mark.postgres


def folder_dispatcher(db: Database, folder: Path) -> Dispatcher:
    return Dispatcher(db, FolderSender(folder), clock=FixedClock(T0), batch_size=100)


def written(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_row_locked_by_another_worker_is_skipped_not_waited_for(
    pg_url: str, tmp_path: Path
) -> None:
    db = Database.open(pg_url)
    try:
        queue_mail(db, 3, tag="skip")
        with db.read_session() as s:
            first = s.scalar(select(OutboxMail.id).order_by(OutboxMail.id))
        # another worker is in the middle of claiming the first row: its lock is held
        with db.engine.connect() as other:
            other.execute(text("SELECT id FROM outbox WHERE id = :id FOR UPDATE"), {"id": first})
            started = time.monotonic()
            stats = asyncio.run(folder_dispatcher(db, tmp_path / "out").run_once())
            took = time.monotonic() - started
            other.rollback()
        assert stats.sent == 2  # the two others; the locked one was left to its worker
        assert took < 10  # it did not wait on the lock
        with db.read_session() as s:
            pending = s.scalars(select(OutboxMail.id).where(OutboxMail.status == "pending"))
            assert list(pending) == [first]
    finally:
        db.dispose()


def test_two_dispatchers_at_once_send_each_row_once(pg_url: str, tmp_path: Path) -> None:
    dbs = [Database.open(pg_url), Database.open(pg_url)]
    try:
        queued = queue_mail(dbs[0], 60, tag="both")
        folders = [tmp_path / "a", tmp_path / "b"]

        async def both() -> None:
            await asyncio.gather(
                *(folder_dispatcher(db, f).run_once() for db, f in zip(dbs, folders, strict=True))
            )

        asyncio.run(both())
        sent = written(folders[0]) + written(folders[1])
        assert len(sent) == len(set(sent)) == len(queued)
        with dbs[0].read_session() as s:
            statuses = set(s.scalars(select(OutboxMail.status)))
        assert statuses == {"sent"}
    finally:
        for db in dbs:
            db.dispose()


def test_notify_is_delivered_when_the_change_commits_and_never_for_a_rollback(
    pg_url: str,
) -> None:
    db = Database.open(pg_url)
    heard: list[str] = []
    stop = threading.Event()
    listener = Listener(db.engine, [OUTBOX_CHANNEL], heard.append, reconnect=0.2)
    thread = threading.Thread(target=listener.run, args=(stop,))
    thread.start()
    try:
        assert listener.listening.wait(20)
        with pytest.raises(RuntimeError), db.session() as s:
            notify(s, OUTBOX_CHANNEL)
            raise RuntimeError("rolled back")
        queue_mail(db, 1, tag="notify")  # enqueue marks its transaction
        deadline = time.monotonic() + 20
        while not heard and time.monotonic() < deadline:
            time.sleep(0.02)
        # notifications arrive in commit order: one of the rolled-back transaction
        # would have come before the committed one
        assert heard == [OUTBOX_CHANNEL]
    finally:
        stop.set()
        thread.join(10)
        db.dispose()


def test_a_listener_wakes_the_dispatcher_of_another_worker(pg_url: str, tmp_path: Path) -> None:
    """Worker B's dispatcher sleeps for a minute between polls; worker A queues an
    acknowledgment; B sends it at once, woken by the notification."""
    db_a, db_b = Database.open(pg_url), Database.open(pg_url)
    dispatcher = Dispatcher(db_b, FolderSender(tmp_path / "out"), poll_interval=60.0)
    stop_thread = threading.Event()
    listener = Listener(db_b.engine, [OUTBOX_CHANNEL], lambda _: dispatcher.wake())
    thread = threading.Thread(target=listener.run, args=(stop_thread,))
    thread.start()

    async def scenario() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        await asyncio.sleep(0.5)  # its first (empty) pass is over: it sleeps now
        assert await asyncio.to_thread(listener.listening.wait, 20)
        started = time.monotonic()
        await asyncio.to_thread(queue_mail, db_a, 1, now=T0, tag="wake")
        while not written(tmp_path / "out") and time.monotonic() - started < 30:  # noqa: ASYNC110 - a file another task writes
            await asyncio.sleep(0.02)
        stop.set()
        await task
        return time.monotonic() - started

    try:
        took = asyncio.run(scenario())
        assert len(written(tmp_path / "out")) == 1
        assert took < 10  # far below the 60 s poll
    finally:
        stop_thread.set()
        thread.join(10)
        db_a.dispose()
        db_b.dispose()
