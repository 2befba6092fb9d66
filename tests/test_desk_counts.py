"""The queue views' counts (the web page's tabs) are exactly what the views list.

Every view's and queue's count is summed from one grouped query
(``triage.store.tickets.queue_tally``); these tests list each view in full and
compare, on SQLite and (when it answers) PostgreSQL, and check with EXPLAIN that
the grouped query reads its covering index, not the table.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from sqlalchemy import event
from support.tickets import local, make_settings, store_message

from triage.clock import FixedClock
from triage.desk import QueueCount, TicketDesk, View
from triage.sla import BusinessCalendar, SlaPolicy
from triage.store import Database
from triage.store.models import Escalation
from triage.store.tickets import queue_tally
from triage.tickets import open_ticket

NOW = local(2026, 3, 11, 10)  # a Wednesday, office open
SETTINGS = make_settings()
CALENDAR = BusinessCalendar.from_settings(SETTINGS.calendar)
POLICY = SlaPolicy(SETTINGS, CALENDAR)
QUEUES = sorted(SETTINGS.queues)
ACTORS = ("anna", "bela", None)


def _fill(db: Database, count: int = 80, seed: int = 5) -> None:
    """``count`` tickets of every kind: queues (one no longer configured), assignees,
    statuses, deadlines past, future and none, owner escalations and warnings."""
    rng = random.Random(seed)
    with db.session() as s:
        for n in range(count):
            m = store_message(
                s,
                message_id=f"<c{n}@client.example>",
                received_at=NOW - timedelta(hours=rng.randint(1, 90)),
                subject=f"Question {n}",
                from_addr=f"client{n}@example.com",
            )
            queue = rng.choice([*QUEUES, "retired"])
            t = open_ticket(
                s,
                m,
                policy=POLICY,
                queue=queue,
                priority=rng.choice(["urgent", "high", "normal", "low"]),
                decided_by="model",
                now=m.received_at,
                assignee=rng.choice([None, None, "anna", "bela"]),
            )
            due = rng.choice([None, -5, -1, 1, 30])
            t.first_response_due = NOW + timedelta(hours=due) if due is not None else None
            t.resolution_due = NOW + timedelta(days=3) if due is not None else None
            t.status = rng.choice(["new", "open", "waiting", "waiting", "solved", "closed"])
            if t.status == "waiting":
                t.waiting_since = NOW
            s.flush()
            for kind in rng.choice([(), (), ("first_response",), ("rule",), ("warning_x",)]):
                s.add(Escalation(ticket_id=t.id, kind=kind, cycle=0, reason="", created_at=NOW))


def _listed(desk: TicketDesk, **kwargs: Any) -> QueueCount:
    """A view counted the slow way: every row it lists."""
    rows = []
    cursor = None
    while True:
        page = desk.queue(cursor=cursor, limit=7, **kwargs)
        rows.extend(page.rows)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len({r.ref for r in rows}) == len(rows)
    return QueueCount(len(rows), sum(r.breached for r in rows))


def test_every_views_count_is_what_it_lists(database: Database) -> None:
    _fill(database)
    desk = TicketDesk(database, SETTINGS, clock=FixedClock(NOW), calendar=CALENDAR)
    everything = _listed(desk)
    assert 20 < everything.total < 80  # solved and closed ones are not listed
    assert 0 < everything.breached < everything.total
    for actor in ACTORS:
        counts = desk.counts(actor=actor)
        for view in View:
            if view is View.MINE and actor is None:
                assert counts.views[view] == QueueCount(0, 0)
                continue
            listed = _listed(desk, view=view, actor=actor)
            assert counts.views[view] == listed, (actor, view)
            page = desk.queue(view=view, actor=actor, limit=5)
            assert (page.total, page.breached) == (listed.total, listed.breached)
            assert page.counts == counts
            for queue in QUEUES:  # a view narrowed to one queue
                narrow = desk.queue(view=view, queue=queue, actor=actor, limit=5)
                listed = _listed(desk, view=view, queue=queue, actor=actor)
                assert (narrow.total, narrow.breached) == (listed.total, listed.breached)
        for queue in QUEUES:
            assert counts.queues[queue] == _listed(desk, queue=queue), queue
        # a queue removed from the configuration still shows its tickets' count
        assert counts.queues["retired"].total > 0
        assert sum(c.total for c in counts.queues.values()) == everything.total
    assert desk.counts(actor="anna").views[View.MINE].total > 0
    assert desk.counts(actor="anna").views[View.ESCALATED].total > 0


def test_counts_follow_changes(database: Database) -> None:
    _fill(database, count=12, seed=9)
    desk = TicketDesk(database, SETTINGS, clock=FixedClock(NOW), calendar=CALENDAR)
    before = desk.counts(actor="anna")
    target = next(
        r for r in desk.queue(view=View.UNASSIGNED, limit=None).rows if r.assignee is None
    )
    desk.claim(target.ref, actor="anna")
    after = desk.counts(actor="anna")
    assert after.views[View.MINE].total == before.views[View.MINE].total + 1
    assert after.views[View.UNASSIGNED].total == before.views[View.UNASSIGNED].total - 1
    assert after.views[View.ALL] == before.views[View.ALL]
    assert after.views[View.MINE] == _listed(desk, view=View.MINE, actor="anna")


def test_the_grouped_count_reads_its_covering_index(database: Database, db_url: str) -> None:
    """EXPLAIN of the one query behind every count: the index ``ix_tickets_tally``
    alone (migration 0015), never the table rows."""
    _fill(database, count=10)
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "GROUP BY" in statement:
            seen.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        with database.read_session() as s:
            queue_tally(s, NOW)
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    (statement, parameters), _escalated = seen
    with database.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        if db_url.startswith("sqlite"):
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = " | ".join(str(row[3]) for row in cursor.fetchall())
            assert "tickets USING COVERING INDEX ix_tickets_tally" in plan, plan
        else:
            # a tiny table is cheaper to scan: ask whether the index can serve at all,
            # with the visibility map set (as autovacuum keeps it on a live table)
            with database.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            ) as maintenance:
                maintenance.exec_driver_sql("VACUUM ANALYZE tickets")
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("SET enable_bitmapscan = off")
            cursor.execute("EXPLAIN " + statement, parameters)
            plan = " | ".join(str(row[0]) for row in cursor.fetchall())
            assert "Index Only Scan using ix_tickets_tally on tickets" in plan, plan
        cursor.close()
