"""The dispatcher against a real aiosmtpd and real databases: nothing lost, nothing sent twice."""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs
from support.smtp import SmtpServer

from triage.clock import FixedClock
from triage.outbox import ComposedMail, build_mail, enqueue
from triage.services import dispatch
from triage.services.dispatch import Dispatcher, retry_delay
from triage.smtp import FolderSender, SmtpSender
from triage.store import Database
from triage.store.models import OutboxMail

pytestmark = pytest.mark.smtp

T0 = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


def queue_mail(db: Database, count: int, *, now: datetime = T0, tag: str = "") -> list[str]:
    """Queue ``count`` acknowledgments; return their Message-IDs in order."""
    ids = []
    tag = tag or uuid.uuid4().hex[:6]
    with db.session() as s:
        for i in range(count):
            mid = f"<ack.{i}.{tag}@example.com>"
            raw = build_mail(
                message_id=mid,
                sender=("Office", "inbox@example.com"),
                to=[("", f"client{i}@example.net")],
                subject=f"Re: question {i} [#{i}]",
                body="Thank you, we have it.\n",
                now=now,
                auto_submitted="auto-replied",
            )
            mail = ComposedMail(mid, "inbox@example.com", (f"client{i}@example.net",), raw)
            enqueue(s, mail, kind="ack", now=now, dedupe_key=f"test:{tag}:{i}")
            ids.append(mid)
    return ids


def rows(db: Database) -> list[OutboxMail]:
    with db.session() as s:
        return list(s.scalars(select(OutboxMail).order_by(OutboxMail.id)))


def dispatcher(db: Database, server: SmtpServer, clock: FixedClock, **kwargs) -> Dispatcher:
    sender = SmtpSender("127.0.0.1", server.port, security="none", timeout=5)
    options = {"retry_initial": 30.0, "retry_max": 3600.0, "max_attempts": 5}
    return Dispatcher(db, sender, clock=clock, rng=random.Random(7), **{**options, **kwargs})


def received_ids(server: SmtpServer) -> list[str]:
    return [str(r.message["Message-ID"]) for r in server.sink.messages]


def test_smtp_down_for_a_while_loses_nothing_and_sends_each_once(
    database: Database, smtp_server: SmtpServer
) -> None:
    clock = FixedClock(T0)
    d = dispatcher(database, smtp_server, clock)
    smtp_server.stop()
    queued = queue_mail(database, 4)

    first = asyncio.run(d.run_once())
    assert (first.sent, first.deferred, first.failed) == (0, 4, 0)
    for row in rows(database):
        assert row.status == "pending"
        assert row.attempts == 1
        assert "refused" in row.last_error.lower() or "connect" in row.last_error.lower()
        assert T0 + timedelta(seconds=15) <= row.next_attempt_at <= T0 + timedelta(seconds=30)
        assert row.lease_until is None

    # Not due yet: a pass at the same moment touches nothing.
    assert asyncio.run(d.run_once()).handled == 0

    clock.advance(timedelta(minutes=5))
    second = asyncio.run(d.run_once())
    assert second.deferred == 4
    assert {r.attempts for r in rows(database)} == {2}

    smtp_server.start()
    clock.advance(timedelta(hours=1))
    third = asyncio.run(d.run_once())
    assert (third.sent, third.deferred, third.failed) == (4, 0, 0)
    assert sorted(received_ids(smtp_server)) == sorted(queued)
    assert {(r.status, r.attempts) for r in rows(database)} == {("sent", 3)}
    assert all(r.sent_at == T0 + timedelta(minutes=65) for r in rows(database))

    clock.advance(timedelta(hours=5))
    assert asyncio.run(d.run_once()).handled == 0
    time.sleep(0.2)
    assert len(smtp_server.sink.messages) == 4


def test_an_smtp_outage_logs_two_lines_not_one_per_mail_per_retry(
    database: Database, smtp_server: SmtpServer
) -> None:
    """Issue 13.11: a failure is logged when it starts and when it ends, with counts;
    the deferrals in between still reach the metrics (the log tap) but not the log."""
    from triage import logtap  # noqa: PLC0415
    from triage.logs import configure_logging  # noqa: PLC0415

    seen: list[str] = []

    class Tap:
        def observe(self, event: str, _fields: Any) -> None:
            seen.append(event)

    tap = Tap()
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    logtap.attach(tap)
    clock = FixedClock(T0)
    d = dispatcher(database, smtp_server, clock)
    try:
        smtp_server.stop()
        queue_mail(database, 5)
        assert asyncio.run(d.run_once()).deferred == 5
        clock.advance(timedelta(minutes=5))
        assert asyncio.run(d.run_once()).deferred == 5
        smtp_server.start()
        clock.advance(timedelta(hours=1))
        assert asyncio.run(d.run_once()).sent == 5
    finally:
        logtap.detach(tap)
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert events.count("mail_deferred") == 1  # the outage's first line
    [recovered] = [line for line in lines if line["event"] == "sending_recovered"]
    assert (recovered["deferrals"], recovered["mails"]) == (10, 5)
    assert recovered["seconds"] == 3900.0  # from the first deferral to the acceptance
    assert events.count("mail_sent") == 5
    assert "quiet" not in out.getvalue()
    assert seen.count("mail_deferred") == 10  # every deferral is still counted

    # At debug level every deferral is written.
    out = io.StringIO()
    configure_logging("json", "debug", stream=out)
    smtp_server.stop()
    queue_mail(database, 2)
    clock.advance(timedelta(hours=2))
    asyncio.run(d.run_once())
    clock.advance(timedelta(hours=2))
    asyncio.run(d.run_once())
    assert out.getvalue().count('"mail_deferred"') == 4
    smtp_server.start()


def test_451_twice_then_250_is_delivered_once_after_three_attempts(
    database: Database, smtp_server: SmtpServer
) -> None:
    smtp_server.sink.replies = ["451 4.3.0 Try again later", "451 4.3.0 Try again later"]
    clock = FixedClock(T0)
    d = dispatcher(database, smtp_server, clock)
    [mid] = queue_mail(database, 1)
    outcomes = []
    for _ in range(3):
        stats = asyncio.run(d.run_once())
        outcomes.append((stats.sent, stats.deferred))
        clock.advance(timedelta(hours=2))
    assert outcomes == [(0, 1), (0, 1), (1, 0)]
    [row] = rows(database)
    assert row.status == "sent"
    assert row.attempts == 3
    assert smtp_server.sink.attempts == 3
    assert received_ids(smtp_server) == [mid]  # the Message-ID fixed before the first attempt


def test_5xx_marks_the_row_failed_with_the_servers_reply(
    database: Database, smtp_server: SmtpServer
) -> None:
    smtp_server.sink.replies = ["554 5.7.1 Message rejected as spam"]
    clock = FixedClock(T0)
    d = dispatcher(database, smtp_server, clock)
    queue_mail(database, 2)
    with capture_logs() as logs:
        stats = asyncio.run(d.run_once())
    assert (stats.sent, stats.failed) == (1, 1)
    failed = [r for r in rows(database) if r.status == "failed"]
    assert len(failed) == 1
    assert failed[0].last_error == "554 5.7.1 Message rejected as spam"
    assert failed[0].attempts == 1
    event = next(e for e in logs if e["event"] == "mail_failed")
    assert event["outbox"] == failed[0].id
    assert event["message_id"] == failed[0].message_id
    assert event["kind"] == "ack"
    clock.advance(timedelta(days=1))
    assert asyncio.run(d.run_once()).handled == 0


def test_a_row_marked_sent_is_never_sent_again(database: Database, smtp_server: SmtpServer) -> None:
    clock = FixedClock(T0)
    d = dispatcher(database, smtp_server, clock)
    first, second = queue_mail(database, 2)
    with database.session() as s:
        s.execute(
            update(OutboxMail)
            .where(OutboxMail.message_id == first)
            .values(status="sent", sent_at=T0, attempts=1)
        )
    assert asyncio.run(d.run_once()).sent == 1
    for _ in range(3):
        clock.advance(timedelta(hours=1))
        assert asyncio.run(d.run_once()).handled == 0
    assert received_ids(smtp_server) == [second]


def test_a_retry_reuses_the_message_id_and_a_dead_workers_lease_runs_out(
    database: Database, smtp_server: SmtpServer
) -> None:
    clock = FixedClock(T0)
    [mid] = queue_mail(database, 1)
    dead = dispatcher(database, smtp_server, clock, lease=120)
    [row] = rows(database)
    claimed = dead._claim(row.id, T0)  # a worker claims the row, then dies before finishing
    assert claimed is not None
    assert claimed.mail.message_id == mid
    alive = dispatcher(database, smtp_server, clock)
    assert asyncio.run(alive.run_once()).handled == 0  # leased: not touched
    clock.advance(timedelta(seconds=121))
    assert asyncio.run(alive.run_once()).sent == 1
    assert received_ids(smtp_server) == [mid]


def test_temporary_failures_give_up_after_max_attempts(
    database: Database, smtp_server: SmtpServer
) -> None:
    smtp_server.sink.replies = ["452 4.2.2 Mailbox full"] * 10
    clock = FixedClock(T0)
    d = dispatcher(database, smtp_server, clock, max_attempts=3)
    queue_mail(database, 1)
    delays = []
    for _ in range(3):
        asyncio.run(d.run_once())
        [row] = rows(database)
        delays.append((row.next_attempt_at - clock.now()).total_seconds())
        clock.advance(timedelta(hours=2))
    [row] = rows(database)
    assert row.status == "failed"
    assert row.attempts == 3
    assert row.last_error == "gave up after 3 attempts: 452 4.2.2 Mailbox full"
    assert 15 <= delays[0] <= 30  # retry_initial 30 s with equal jitter
    assert 30 <= delays[1] <= 60  # doubled
    assert smtp_server.sink.messages == []


def test_retry_delay_doubles_up_to_the_maximum_with_jitter() -> None:
    assert retry_delay(1, 30, 3600, 0.999999) == pytest.approx(30, rel=1e-5)
    assert retry_delay(1, 30, 3600, 0.0) == 15
    assert retry_delay(2, 30, 3600, 0.999999) == pytest.approx(60, rel=1e-5)
    assert retry_delay(5, 30, 3600, 0.999999) == pytest.approx(480, rel=1e-5)
    assert retry_delay(20, 30, 3600, 0.999999) == pytest.approx(3600, rel=1e-5)
    assert retry_delay(10_000, 30, 3600, 0.5) == 2700
    rng = random.Random(3)
    spread = {round(retry_delay(3, 30, 3600, rng.random())) for _ in range(50)}
    assert len(spread) > 10
    assert all(60 <= d <= 120 for d in spread)


def test_two_workers_at_once_send_each_mail_exactly_once(
    db_url: str, smtp_server: SmtpServer
) -> None:
    a, b = Database.open(db_url), Database.open(db_url)
    try:
        queued = queue_mail(a, 30)
        clock = FixedClock(T0)
        first = dispatcher(a, smtp_server, clock, batch_size=100)
        second = dispatcher(b, smtp_server, clock, batch_size=100)

        async def both():
            return await asyncio.gather(first.run_once(), second.run_once())

        one, two = asyncio.run(both())
        assert one.sent + two.sent == 30
        assert sorted(received_ids(smtp_server)) == sorted(queued)
        assert {r.status for r in rows(a)} == {"sent"}
    finally:
        a.dispose()
        b.dispose()


def test_the_loop_sends_when_woken_and_stops_on_request(
    database: Database, smtp_server: SmtpServer
) -> None:
    d = Dispatcher(
        database,
        SmtpSender("127.0.0.1", smtp_server.port, security="none", timeout=5),
        poll_interval=30,
    )

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        await asyncio.sleep(0.3)  # the first pass found nothing; the loop sleeps 30 s
        started = time.monotonic()
        [mid] = await asyncio.to_thread(queue_mail, database, 1, now=datetime.now(UTC))
        d.wake()
        got = await asyncio.to_thread(smtp_server.sink.wait_for, 1, 10.0)
        latency = time.monotonic() - started
        stop.set()
        await asyncio.wait_for(task, 5)
        return mid, got, latency

    mid, got, latency = asyncio.run(scenario())
    assert [str(r.message["Message-ID"]) for r in got] == [mid]
    assert latency < 5
    assert rows(database)[0].status == "sent"


def test_a_pass_stops_between_rows_when_asked(database: Database, smtp_server: SmtpServer) -> None:
    queue_mail(database, 3)
    stop = asyncio.Event()
    stop.set()
    d = dispatcher(database, smtp_server, FixedClock(T0))
    assert asyncio.run(d.run_once(stop=stop)).handled == 0
    assert {r.status for r in rows(database)} == {"pending"}


def test_folder_mode_writes_files_and_marks_rows_sent(tmp_path: Path, sqlite_url: str) -> None:
    db = Database.open(sqlite_url)
    try:
        queued = queue_mail(db, 2)
        d = Dispatcher(db, FolderSender(tmp_path / "outbox"), clock=FixedClock(T0))
        assert asyncio.run(d.run_once()).sent == 2
        files = sorted(p.name for p in (tmp_path / "outbox").iterdir())
        assert len(files) == 2
        assert all(mid.strip("<>") in name for mid, name in zip(queued, files, strict=True))
        assert {r.status for r in rows(db)} == {"sent"}
    finally:
        db.dispose()


def test_log_events_carry_the_stable_keys_and_no_body(
    database: Database, smtp_server: SmtpServer
) -> None:
    smtp_server.sink.replies = ["451 4.3.0 later"]
    clock = FixedClock(T0)
    d = dispatcher(database, smtp_server, clock)
    [mid] = queue_mail(database, 1)
    with capture_logs() as logs:
        asyncio.run(d.run_once())
        clock.advance(timedelta(hours=1))
        asyncio.run(d.run_once())
    events = {e["event"]: e for e in logs if e["event"].startswith("mail_")}
    assert set(events) == {"mail_deferred", "mail_sent"}
    for event in events.values():
        assert {"outbox", "kind", "ticket", "message_id", "attempts"} <= set(event)
        assert event["message_id"] == mid
    assert events["mail_deferred"]["error"] == "451 4.3.0 later"
    assert "Thank you" not in repr(logs)


class FlakyStore(Dispatcher):
    """Recording "sent" fails twice, as if the database dropped the connection."""

    failures = 2

    def _finish_many(self, items: list[tuple[int, dict[str, object]]]) -> None:
        if any(values.get("status") == "sent" for _, values in items) and self.failures:
            self.failures -= 1
            raise OperationalError("UPDATE outbox", {}, Exception("connection lost"))
        super()._finish_many(items)


def test_recording_sent_is_retried_when_the_database_blinks(
    sqlite_url: str, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "SENT_MARK_RETRIES", (0.01, 0.01, None))
    db = Database.open(sqlite_url)
    try:
        [mid] = queue_mail(db, 1)
        sender = SmtpSender("127.0.0.1", smtp_server.port, security="none", timeout=5)
        d = FlakyStore(db, sender, clock=FixedClock(T0))
        with capture_logs() as logs:
            assert asyncio.run(d.run_once()).sent == 1
        assert [r.status for r in rows(db)] == ["sent"]
        assert received_ids(smtp_server) == [mid]
        assert [e["event"] for e in logs].count("mail_sent_not_recorded") == 2
    finally:
        db.dispose()


class DownForAWhile(Dispatcher):
    """The database refuses the pass's first query ``failures`` times (disk full)."""

    failures = 5

    def _fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise OperationalError("SELECT", {}, Exception("database or disk is full"))

    def _due_ids(self, now: datetime) -> list[int]:  # SQLite's first query
        self._fail()
        return super()._due_ids(now)

    def _claim_next_many(self, due: datetime, limit: int) -> list[Any]:  # PostgreSQL's
        self._fail()
        return super()._claim_next_many(due, limit)


def test_a_failing_database_is_logged_when_it_starts_and_when_it_ends(
    database: Database, smtp_server: SmtpServer
) -> None:
    [mid] = queue_mail(database, 1)
    sender = SmtpSender("127.0.0.1", smtp_server.port, security="none", timeout=5)
    d = DownForAWhile(database, sender, clock=FixedClock(T0), poll_interval=0.01)

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        for _ in range(500):
            if smtp_server.sink.messages:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task

    with capture_logs() as logs:
        asyncio.run(go())
    assert received_ids(smtp_server) == [mid]
    events = [e["event"] for e in logs]
    assert events.count("dispatch_failed") == 1
    [recovered] = [e for e in logs if e["event"] == "dispatch_recovered"]
    assert recovered["failed_passes"] == 5
