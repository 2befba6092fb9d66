"""The ticket desk: queue views by keyset, the frozen ticket view, and every action's rules.

Runs against SQLite and (when it answers) PostgreSQL, with a fixed clock.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from support.tickets import local, make_settings, store_message

from triage.clock import FixedClock
from triage.desk import DeadlineState, TicketDesk, View, mentioned
from triage.desk import desk as desk_module
from triage.desk.desk import unknown_mentions
from triage.desk.values import AttachmentView
from triage.errors import ConflictError, NotFoundError, UserError
from triage.services.intake import Intake
from triage.services.pipeline import RoutingPipeline
from triage.sla import BusinessCalendar, SlaPolicy
from triage.store import Database
from triage.store import tickets as store_tickets
from triage.store.db import alembic_config
from triage.store.models import (
    Mention,
    OutboxMail,
    RoutingDecision,
    Ticket,
    TicketNote,
    TrainingLabel,
)
from triage.store.tickets import QueueFilter
from triage.tickets import add_client_message, open_ticket
from triage.tickets.queue import queue_order, queue_row

NOW = local(2026, 3, 11, 10)  # a Wednesday, office open
SETTINGS = make_settings()
CALENDAR = BusinessCalendar.from_settings(SETTINGS.calendar)
POLICY = SlaPolicy(SETTINGS, CALENDAR)


@pytest.fixture
def desk(database: Database) -> TicketDesk:
    return TicketDesk(database, SETTINGS, clock=FixedClock(NOW), calendar=CALENDAR)


def _add(
    db: Database,
    n: int,
    *,
    queue: str = "billing",
    priority: str = "normal",
    age: timedelta = timedelta(hours=1),
    due: timedelta | None = timedelta(hours=3),
    status: str = "new",
    assignee: str | None = None,
    attachments: tuple[dict[str, object], ...] = (),
) -> int:
    """A ticket whose first response is due ``due`` from NOW (None: no SLA); its ref."""
    with db.session() as s:
        m = store_message(
            s,
            message_id=f"<d{n}@client.example>",
            received_at=NOW - age,
            subject=f"Question {n}",
            from_addr=f"client{n}@example.com",
            body=f"Body {n}",
            quoted="> earlier\n> text",
            attachments=attachments,
        )
        t = open_ticket(
            s,
            m,
            policy=POLICY,
            queue=queue,
            priority=priority,
            decided_by="model",
            now=NOW - age,
            assignee=assignee,
        )
        t.first_response_due = NOW + due if due is not None else None
        t.resolution_due = NOW + timedelta(days=30) if due is not None else None
        t.status = status
        if status == "waiting":
            t.waiting_since = NOW
        s.add(
            RoutingDecision(
                message_id=m.id,
                ticket_id=t.id,
                queue=queue,
                priority=priority,
                decided_by="model",
                confidence=0.9,
                model_version="m1",
                probabilities=[[queue, 0.9], ["unsorted", 0.1]],
                explanation=["model m1: billing with probability 0.90"],
                ack="",
            )
        )
        return t.ref or 0


def _mixed(db: Database) -> dict[str, int]:
    return {
        "soon": _add(db, 1),
        "overdue_low": _add(db, 2, priority="low", due=-timedelta(hours=2)),
        "overdue_urgent": _add(
            db, 3, priority="urgent", due=-timedelta(minutes=30), assignee="anna"
        ),
        "soon_high": _add(db, 4, priority="high"),
        "soon_old": _add(db, 5, age=timedelta(hours=5)),
        "waiting": _add(db, 6, status="waiting", due=-timedelta(hours=5)),
        "solved": _add(db, 7, status="solved"),
        "scheduling": _add(db, 8, queue="scheduling", due=timedelta(hours=1), assignee="anna"),
        "no_sla": _add(db, 9, queue="bulk", due=None),
        "waiting_anna": _add(db, 10, status="waiting", assignee="anna"),
    }


def _reference_order(db: Database, **where: object) -> list[int]:
    """The queue order computed the old way: every open ticket sorted in Python."""
    with db.read_session() as s:
        stmt = select(Ticket).where(Ticket.status.in_(("new", "open", "waiting")))
        for column, value in where.items():
            stmt = stmt.where(getattr(Ticket, column) == value)
        rows = [queue_row(t, POLICY, NOW) for t in s.scalars(stmt)]
    return [r.ref for r in sorted(rows, key=queue_order)]


def _all_pages(desk: TicketDesk, **kwargs: object) -> list[int]:
    refs: list[int] = []
    cursor = None
    while True:
        page = desk.queue(cursor=cursor, limit=3, **kwargs)  # type: ignore[arg-type]
        refs.extend(r.ref for r in page.rows)
        if page.next_cursor is None:
            return refs
        cursor = page.next_cursor


def test_pages_follow_the_queue_order_of_triage_queue(desk: TicketDesk, database: Database) -> None:
    refs = _mixed(database)
    expected = _reference_order(database)
    assert expected[:5] == [
        refs["overdue_low"],
        refs["overdue_urgent"],
        refs["scheduling"],
        refs["soon_high"],
        refs["soon_old"],
    ]
    assert _all_pages(desk) == expected
    whole = desk.queue(limit=None)
    assert [r.ref for r in whole.rows] == expected
    assert whole.total == len(expected) == 9
    assert whole.breached == 2
    assert whole.next_cursor is None


def test_the_streamed_queue_is_the_whole_queue_read_in_batches(
    desk: TicketDesk, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `triage queue` streams: rows equal to the whole page's, in its order, across
    # keyset batches (size 2 here: the boundaries fall between tied due times too)
    _mixed(database)
    whole = desk.queue(limit=None).rows
    real = store_tickets.queue_listing
    rows: list[int] = []

    def small(
        session: Session, view: QueueFilter, *, limit: int | None = None, size: int = 2000
    ) -> Any:
        for row in real(session, view, limit=limit, size=2):
            rows.append(1)
            yield row

    monkeypatch.setattr(desk_module, "queue_listing", small)
    assert tuple(desk.queue_stream()) == whole
    assert len(rows) == 9
    mine = [r.ref for r in desk.queue_stream(view=View.MINE, actor="anna")]
    assert mine == _reference_order(database, assignee="anna")
    # the JSON lines are json.dumps of the rows' JSON, byte for byte, without the rows
    lines = list(desk.queue_json_lines())
    assert lines == [json.dumps(r.to_json(), ensure_ascii=False) for r in whole]
    assert [r.ref for r in desk.queue_stream(limit=3)] == [r.ref for r in whole[:3]]
    assert list(desk.queue_json_lines(limit=0)) == []
    assert desk.queue_total() == 9


def test_views_mine_unassigned_waiting_and_per_queue(desk: TicketDesk, database: Database) -> None:
    refs = _mixed(database)
    mine = _all_pages(desk, view=View.MINE, actor="anna")
    assert mine == _reference_order(database, assignee="anna")
    assert set(mine) == {refs["overdue_urgent"], refs["scheduling"], refs["waiting_anna"]}
    unassigned = _all_pages(desk, view="unassigned")
    assert refs["overdue_urgent"] not in unassigned
    assert refs["soon"] in unassigned
    assert refs["waiting"] not in unassigned  # nothing to pick up while it waits
    assert _all_pages(desk, view=View.WAITING) == _reference_order(database, status="waiting")
    billing = _all_pages(desk, queue="billing")
    assert billing == _reference_order(database, queue="billing")
    assert refs["scheduling"] not in billing
    counts = desk.counts(actor="anna")
    assert counts.views[View.ALL].total == 9
    assert counts.views[View.ALL].breached == 2
    assert counts.views[View.MINE].total == 3
    assert counts.views[View.MINE].breached == 1
    assert counts.views[View.UNASSIGNED].total == 5
    assert counts.views[View.WAITING].total == 2
    assert counts.queues["billing"].total == 7
    assert counts.queues["scheduling"].total == 1
    assert counts.queues["unsorted"].total == 0
    page = desk.queue(view=View.MINE, actor="anna", limit=2)
    assert page.total == 3
    assert len(page.rows) == 2
    assert page.next_cursor is not None


def test_a_cursor_survives_changes_to_the_tickets_before_it(
    desk: TicketDesk, database: Database
) -> None:
    _mixed(database)
    first = desk.queue(limit=3)
    assert first.next_cursor is not None
    # the first page's tickets are claimed and solved meanwhile: the next page still
    # starts right after the last ticket shown, nothing skipped, nothing repeated
    for row in first.rows:
        desk.done(row.ref, actor="bela")
    rest = desk.queue(cursor=first.next_cursor, limit=None)
    expected = _reference_order(database)
    assert [r.ref for r in first.rows] + [r.ref for r in rest.rows] == [
        r.ref for r in first.rows
    ] + expected


def test_bad_views_limits_and_cursors_are_user_errors(desk: TicketDesk) -> None:
    with pytest.raises(UserError, match="no view 'everything'"):
        desk.queue(view="everything")
    with pytest.raises(UserError, match="1 to 500"):
        desk.queue(limit=0)
    with pytest.raises(UserError, match="not a queue position"):
        desk.queue(cursor="bm9wZQ")
    with pytest.raises(NotFoundError, match="no queue 'nowhere'"):
        desk.queue(queue="nowhere")
    with pytest.raises(UserError, match="needs the actor"):
        desk.queue(view=View.MINE)


def test_show_is_a_frozen_value_with_the_whole_ticket(desk: TicketDesk, database: Database) -> None:
    ref = _add(
        database,
        1,
        attachments=(
            {"filename": "invoice.pdf", "content_type": "application/pdf", "size": 2048},
            {
                "filename": "logo.png",
                "content_type": "image/png",
                "size": 100,
                "content_id": "<logo1@client>",
                "disposition": "inline",
            },
        ),
    )
    with database.session() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        later = store_message(
            s,
            message_id="<d1b@client.example>",
            received_at=NOW - timedelta(minutes=10),
            in_reply_to="<d1@client.example>",
            body="Any news?",
        )
        add_client_message(s, ticket, later, policy=POLICY, now=NOW - timedelta(minutes=10))
    view = desk.show(f"#{ref}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.status = "solved"  # type: ignore[misc]
    assert view.ref == ref
    assert view.ref_text == f"#{ref}"
    assert [m.body for m in view.messages] == ["Any news?", "Body 1"]  # newest first
    first = view.messages[1]
    assert first.quoted == "> earlier\n> text"
    assert [(a.filename, a.inline, a.content_id) for a in first.attachments] == [
        ("invoice.pdf", False, ""),
        ("logo.png", True, "logo1@client"),
    ]
    assert view.routing[0].probabilities == (("billing", 0.9), ("unsorted", 0.1))
    assert view.routing[0].acknowledged
    kinds = {d.kind.value: d for d in view.deadlines}
    assert kinds["first_response"].state is DeadlineState.RUNNING
    # due 13:00, now 10:00, the office closed 12:00-13:00: two hours of office time
    assert kinds["first_response"].seconds == 2 * 3600
    assert kinds["first_response"].text.endswith("due in 2h")
    assert view.next_deadline is not None
    assert view.next_deadline.kind.value == "first_response"
    assert [e.action for e in view.events] == ["opened", "message_added"]
    assert view.events[-1].version == view.version


def test_claim_rules(desk: TicketDesk, database: Database) -> None:
    ref = _add(database, 1)
    done = desk.claim(ref, actor="anna")
    assert done.changed
    assert [e.action for e in done.events] == ["claimed"]
    assert done.version == desk.show(ref).version
    again = desk.claim(ref, actor="anna")
    assert not again.changed
    assert again.events == ()
    assert again.version == done.version
    with pytest.raises(ConflictError, match="already claimed by anna"):
        desk.claim(ref, actor="bela")
    with pytest.raises(NotFoundError, match="no assistant 'zoe'"):
        desk.claim(ref, actor="zoe")
    solved = _add(database, 2)
    desk.done(solved, actor="bela")
    with pytest.raises(ConflictError, match="is solved: there is nothing to claim"):
        desk.claim(solved, actor="anna")
    with pytest.raises(NotFoundError, match="no ticket #4242"):
        desk.claim(4242, actor="anna")
    with pytest.raises(UserError, match="service's own name"):
        desk.done(ref, actor="triage")


def test_two_claims_at_once_one_wins(desk: TicketDesk, database: Database) -> None:
    ref = _add(database, 1)
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, object] = {}

    def worker(name: str) -> None:
        barrier.wait()
        try:
            results[name] = desk.claim(ref, actor=name)
        except ConflictError as exc:
            results[name] = exc

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("anna", "bela")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [n for n, r in results.items() if not isinstance(r, Exception)]
    assert len(winners) == 1
    loser = next(r for r in results.values() if isinstance(r, ConflictError))
    assert f"claimed by {winners[0]}" in str(loser)
    assert desk.show(ref).assignee == winners[0]


def test_an_action_on_an_old_version_names_who_changed_what(
    desk: TicketDesk, database: Database
) -> None:
    ref = _add(database, 1)
    seen = desk.show(ref).version
    desk.claim(ref, actor="anna", expected_version=seen)
    desk.move(ref, actor="anna", queue="scheduling")
    with pytest.raises(ConflictError) as caught:
        desk.reply(ref, "Dear client", actor="bela", expected_version=seen)
    err = caught.value
    assert "anna claimed it" in str(err)
    assert "anna moved it from billing to scheduling" in str(err)
    assert [(c.actor, c.action) for c in err.changes] == [("anna", "claimed"), ("anna", "moved")]
    assert err.current_version == desk.show(ref).version
    with database.read_session() as s:  # nothing of the refused reply was written
        assert s.scalar(select(func.count(OutboxMail.id))) == 0
    # on the current version it goes through
    done = desk.reply(ref, "Dear client", actor="bela", expected_version=err.current_version)
    assert done.recipient == "client1@example.com"
    assert [e.action for e in done.events] == ["replied"]


def test_a_client_message_is_a_change_too(desk: TicketDesk, database: Database) -> None:
    ref = _add(database, 1)
    seen = desk.show(ref).version
    with database.session() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        m = store_message(
            s, message_id="<d1c@client.example>", received_at=NOW, body="One more thing"
        )
        add_client_message(s, ticket, m, policy=POLICY, now=NOW)
    with pytest.raises(ConflictError, match="triage added the client's new message"):
        desk.done(ref, actor="anna", expected_version=seen)


def test_claim_checks_the_version_in_its_update(desk: TicketDesk, database: Database) -> None:
    ref = _add(database, 1)
    seen = desk.show(ref).version
    desk.note(ref, "checking with the bank", actor="bela")
    with pytest.raises(ConflictError, match="bela wrote a note"):
        desk.claim(ref, actor="anna", expected_version=seen)
    assert desk.show(ref).assignee is None


def test_wait_until_wakes_on_time(database: Database) -> None:
    clock = FixedClock(NOW)
    desk = TicketDesk(database, SETTINGS, clock=clock, calendar=CALENDAR)
    ref = _add(database, 1, assignee="anna")
    due_before = desk.show(ref).deadlines[0].due_at
    until = local(2026, 3, 11, 14)
    done = desk.wait(ref, actor="anna", until=until)
    assert [e.action for e in done.events] == ["status_changed"]
    view = desk.show(ref)
    assert view.status == "waiting"
    assert view.wait_until == until
    assert view.deadlines[0].state is DeadlineState.PAUSED
    assert desk.queue(view=View.WAITING).total == 1
    clock.set(local(2026, 3, 11, 13, 59))
    assert desk.wake_snoozed() == []
    clock.set(until)
    assert desk.wake_snoozed() == [ref]
    view = desk.show(ref)
    assert view.status == "open"
    assert view.wait_until is None
    assert view.events[-1].detail["woke"] == "alarm"
    # paused 10:00-14:00 with a lunch hour: 3 business hours later than before
    assert view.deadlines[0].due_at == CALENDAR.add_seconds(due_before, 3 * 3600)


def test_wait_until_wakes_when_the_client_writes(desk: TicketDesk, database: Database) -> None:
    ref = _add(database, 1)
    desk.wait(ref, actor="anna", until=local(2026, 3, 13, 9))
    with database.session() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        m = store_message(s, message_id="<d1r@client.example>", received_at=NOW, body="Here")
        add_client_message(s, ticket, m, policy=POLICY, now=NOW)
    view = desk.show(ref)
    assert view.status == "new"
    assert view.wait_until is None
    assert desk.wake_snoozed() == []


def test_wait_refuses_a_naive_or_past_time_and_a_solved_ticket(
    desk: TicketDesk, database: Database
) -> None:
    ref = _add(database, 1)
    with pytest.raises(UserError, match="time zone"):
        desk.wait(ref, actor="anna", until=datetime(2026, 3, 12, 9))  # noqa: DTZ001
    with pytest.raises(UserError, match="already passed"):
        desk.wait(ref, actor="anna", until=NOW - timedelta(minutes=1))
    with pytest.raises(UserError, match="at most 366 days"):
        desk.wait(ref, actor="anna", until=NOW.replace(year=9999))
    desk.done(ref, actor="anna")
    with pytest.raises(UserError, match="reopen it"):
        desk.wait(ref, actor="anna")
    done = desk.reopen(ref, actor="anna")
    assert [e.action for e in done.events] == ["reopened"]
    assert desk.show(ref).status == "new"
    assert not desk.reopen(ref, actor="anna").changed


def test_move_corrects_queue_and_priority_as_a_training_label(
    desk: TicketDesk, database: Database
) -> None:
    ref = _add(database, 1, due=timedelta(hours=3))
    with database.session() as s:  # real deadlines from the policy, not the fixture's
        ticket = s.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        ticket.first_response_due = POLICY.due(
            "billing", "normal", "first_response", ticket.opened_at
        )
    before = desk.show(ref).deadlines[0].due_at
    done = desk.move(ref, actor="anna", priority="urgent")
    assert done.events[0].detail["priority_to"] == "urgent"
    view = desk.show(ref)
    assert view.priority == "urgent"
    assert view.queue == "billing"
    # billing's urgent first response is 30 minutes, not normal's 4 hours
    assert view.deadlines[0].due_at < before
    with database.read_session() as s:
        label = s.execute(
            select(
                TrainingLabel.queue,
                TrainingLabel.priority,
                TrainingLabel.source,
                TrainingLabel.actor,
            )
        ).one()
    assert tuple(label) == (
        "billing",
        "urgent",
        "correction",
        "anna",
    )
    with pytest.raises(UserError, match="a queue or a priority"):
        desk.move(ref, actor="anna")
    with pytest.raises(NotFoundError, match="no priority 'huge'"):
        desk.move(ref, actor="anna", priority="huge")
    assert not desk.move(ref, actor="anna", queue="billing", priority="urgent").changed


def test_a_note_stays_inside_and_records_mentions(desk: TicketDesk, database: Database) -> None:
    ref = _add(database, 1)
    done = desk.note(
        ref,
        "@Bela can you check? (cc anna@office.example, @nobody, @anna.)",
        actor="anna",
    )
    assert done.mentions == ("bela", "anna")
    assert done.unknown_mentions == ("nobody",)  # the writer is told nobody was notified
    assert [e.action for e in done.events] == ["note_written"]
    view = desk.show(ref)
    assert view.notes[0].body.startswith("@Bela")
    assert view.notes[0].mentions == ("bela", "anna")
    with database.read_session() as s:
        assert s.scalar(select(func.count(OutboxMail.id))) == 0
        assert s.scalar(select(func.count(TicketNote.id))) == 1
        rows = [
            (m.assistant, m.notified_at) for m in s.scalars(select(Mention).order_by(Mention.id))
        ]
    assert rows == [("bela", None), ("anna", None)]
    with pytest.raises(UserError, match="empty"):
        desk.note(ref, "  ", actor="anna")


def test_mentions_ignore_addresses_and_unknown_names() -> None:
    assert mentioned("mail bela@x.hu or @zoe", ["anna", "bela"]) == ()
    assert mentioned("@anna, @ANNA and @bela!", ["anna", "bela"]) == ("anna", "bela")
    assert unknown_mentions("mail bela@x.hu or @zoe, @Zoe and @anna.", ["anna", "bela"]) == ("zoe",)
    assert unknown_mentions("@anna and @bela", ["anna", "bela"]) == ()


def test_queue_rows_carry_version_and_business_seconds(
    desk: TicketDesk, database: Database
) -> None:
    ref = _add(database, 1, due=-timedelta(hours=1))
    row = desk.queue().rows[0]
    assert row.ref == ref
    assert row.breached
    assert row.due_seconds == -3600
    assert row.version == desk.show(ref).version
    assert row.to_json()["version"] == row.version


def test_every_ticket_change_keeps_the_queue_key(database: Database) -> None:
    ref = _add(database, 1)
    with database.session() as s:
        t = s.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        assert (t.in_queue, t.priority_rank, t.queue_due) == (True, 2, NOW + timedelta(hours=3))
        t.status = "solved"
    with database.read_session() as s:
        t = s.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        assert t.in_queue is False
        assert t.queue_due.year == 9999
        assert t.queue_due.tzinfo is not None


def test_the_migration_fills_the_queue_key_of_existing_tickets(db_url: str) -> None:
    db = Database.open(db_url, migrate=False)
    try:
        command.upgrade(alembic_config(db.engine), "0007")
        opened = datetime(2026, 3, 9, 8, tzinfo=UTC)
        due = datetime(2026, 3, 9, 12, tzinfo=UTC)
        rows = [
            {"ref": 1001, "status": "open", "priority": "urgent", "due": due},
            {"ref": 1002, "status": "waiting", "priority": "low", "due": due},
            {"ref": 1003, "status": "closed", "priority": "high", "due": None},
        ]
        with db.engine.begin() as conn:
            for row in rows:
                conn.execute(
                    text(
                        "INSERT INTO tickets (ref, queue, priority, status, subject, client_addr,"
                        " client_name, decided_by, tags, created_at, updated_at, opened_at,"
                        " first_response_due, version) VALUES (:ref, 'billing', :priority,"
                        " :status, '', '', '', 'rule', '[]', :at, :at, :at, :due, 1)"
                    ),
                    {
                        **row,
                        "at": opened.replace(tzinfo=None)
                        if db.engine.dialect.name == "sqlite"
                        else opened,
                        "due": (
                            row["due"].replace(tzinfo=None)
                            if row["due"] and db.engine.dialect.name == "sqlite"
                            else row["due"]
                        ),
                    },
                )
        db.migrate()
        with db.read_session() as s:
            got = {
                t.ref: (t.in_queue, t.priority_rank, t.queue_due) for t in s.scalars(select(Ticket))
            }
    finally:
        db.dispose()
    assert got[1001] == (True, 0, due)
    assert got[1002][:2] == (True, 3)
    assert got[1002][2].year == 9999
    assert got[1003][:2] == (False, 1)


MIXED = b"""From: Client <client@example.com>
To: inbox@office.example
Subject: Invoice with logo
Message-ID: <mixed1@client.example>
Date: Wed, 11 Mar 2026 09:00:00 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

Please see the invoice.
--alt
Content-Type: text/html; charset=iso-8859-2
Content-Transfer-Encoding: quoted-printable

<p>Please see the <b>sz=E1mla</b>.</p><img src=3D"cid:logo1@client">
--alt--
--rel
Content-Type: image/png
Content-ID: <logo1@client>
Content-Disposition: inline
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--rel--
--outer
Content-Type: application/pdf; name="invoice.pdf"
Content-Disposition: attachment; filename="invoice.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--outer--
""".replace(b"\n", b"\r\n")


def test_attachments_inline_parts_and_html_come_from_the_stored_mail(
    desk: TicketDesk, database: Database
) -> None:
    pipeline = RoutingPipeline(SETTINGS, clock=FixedClock(NOW))
    Intake(database, pipeline=pipeline, clock=FixedClock(NOW)).import_message(MIXED)
    ref = desk.queue().rows[0].ref
    message = desk.show(ref).messages[0]
    [pdf_view] = message.attachments
    assert (pdf_view.filename, pdf_view.content_type) == ("invoice.pdf", "application/pdf")
    [logo_view] = message.inline_parts
    assert (logo_view.inline, logo_view.content_id) == (True, "logo1@client")
    pdf = desk.attachment(ref, message.id, pdf_view.index)
    assert pdf.data == b"%PDF-1.4\n"
    assert pdf.filename == "invoice.pdf"
    logo = desk.inline_part(ref, message.id, "<logo1@client>")
    assert logo.content_type == "image/png"
    assert logo.data.startswith(b"\x89PNG")
    html = desk.html(ref, message.id)
    assert html is not None
    assert "számla" in html
    with pytest.raises(NotFoundError):
        desk.attachment(ref, message.id, 7)
    with pytest.raises(NotFoundError):
        desk.inline_part(ref, message.id, "other@client")
    with pytest.raises(NotFoundError, match="no message"):
        desk.html(ref, message.id + 1000)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (38, "38 B"),
        (1023, "1023 B"),
        (1024, "1 KB"),
        (20_480, "20 KB"),
        (1024 * 1024, "1.0 MB"),
        (int(2.4 * 1024 * 1024), "2.4 MB"),
        (None, ""),
    ],
)
def test_attachment_size_text_never_says_zero_kb(size: int | None, text: str) -> None:
    view = AttachmentView(index=0, filename="a", content_type="text/plain", size=size)
    assert view.size_text == text
