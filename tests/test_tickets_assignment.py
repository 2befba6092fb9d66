"""Claim (two assistants at once: exactly one wins), assign, and move (a training label)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from support.tickets import local, make_policy, store_message

from triage.errors import ConflictError, NotFoundError
from triage.store import Database
from triage.store.models import Ticket, TicketEvent, TrainingLabel
from triage.tickets import assign, claim, get_ticket, move, open_ticket, set_status

POLICY = make_policy()
NOW = datetime(2026, 3, 9, 9, tzinfo=UTC)


def _ticket(db: Database, n: int = 1, *, queue: str = "billing", priority: str = "normal") -> int:
    with db.session() as s:
        m = store_message(
            s,
            message_id=f"<t{n}@client.example>",
            received_at=local(2026, 3, 9, 9),
            subject="Számla kérdés",
            body="A májusi számla hibás.",
        )
        t = open_ticket(
            s, m, policy=POLICY, queue=queue, priority=priority, decided_by="model", now=NOW
        )
        return t.ref or 0


def _race(db: Database, ref: int, names: tuple[str, ...]) -> dict[str, object]:
    """Each name claims ``ref`` in its own thread and connection, as close together as possible."""
    postgres = db.engine.dialect.name == "postgresql"
    barrier = threading.Barrier(len(names), timeout=30)
    results: dict[str, object] = {}

    def worker(name: str) -> None:
        try:
            if not postgres:
                # SQLite takes the write lock at BEGIN: line the threads up before it
                barrier.wait()
            with db.session() as s:
                ticket = get_ticket(s, ref)
                if postgres:
                    # both have read the unclaimed ticket before either updates it
                    barrier.wait()
                results[name] = claim(s, ticket, name, now=NOW)
        except ConflictError as exc:
            results[name] = exc

    threads = [threading.Thread(target=worker, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.parametrize("attempt", range(3))
def test_two_assistants_claiming_at_once_exactly_one_wins(database: Database, attempt: int) -> None:
    ref = _ticket(database, attempt)
    results = _race(database, ref, ("anna", "bela"))
    winners = [name for name, r in results.items() if r is True]
    losers = [r for r in results.values() if isinstance(r, ConflictError)]
    assert len(winners) == 1, results
    assert len(losers) == 1, results
    winner = winners[0]
    assert f"already claimed by {winner}" in str(losers[0])
    with database.session() as s:
        ticket = get_ticket(s, ref)
        assert ticket.assignee == winner
        assert ticket.status == "open"
        claims = s.scalars(
            select(TicketEvent).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.action == "claimed"
            )
        ).all()
        assert [e.actor for e in claims] == [winner]


def test_claiming_again_and_claiming_a_taken_ticket(database: Database) -> None:
    ref = _ticket(database)
    with database.session() as s:
        assert claim(s, get_ticket(s, ref), "anna", now=NOW) is True
    with database.session() as s:
        assert claim(s, get_ticket(s, ref), "anna", now=NOW) is False
    with pytest.raises(ConflictError, match="already claimed by anna"), database.session() as s:
        claim(s, get_ticket(s, ref), "bela", now=NOW)


def test_assign_replaces_the_assignee_with_an_audit_row(database: Database) -> None:
    ref = _ticket(database)
    with database.session() as s:
        ticket = get_ticket(s, ref)
        assert assign(s, ticket, "anna", actor="bela", now=NOW)
        assert ticket.status == "open"
        assert assign(s, ticket, "bela", actor="bela", now=NOW)
        assert not assign(s, ticket, "bela", actor="bela", now=NOW)
        events = s.scalars(
            select(TicketEvent).where(TicketEvent.action == "assigned").order_by(TicketEvent.id)
        ).all()
        assert [(e.detail["from"], e.detail["to"]) for e in events] == [
            (None, "anna"),
            ("anna", "bela"),
        ]


def test_unknown_ticket_is_not_found(database: Database) -> None:
    with pytest.raises(NotFoundError, match="no ticket #4242"), database.session() as s:
        get_ticket(s, "#4242")


def test_move_writes_a_training_label_and_recomputes_deadlines(database: Database) -> None:
    ref = _ticket(database, queue="unsorted", priority="urgent")
    with database.session() as s:
        ticket = get_ticket(s, ref)
        assert ticket.first_response_due == local(2026, 3, 9, 10)  # urgent: 1h
        assert move(s, ticket, "billing", actor="anna", policy=POLICY, now=NOW)
        assert ticket.queue == "billing"
        assert ticket.first_response_due == local(2026, 3, 9, 9, 30)  # billing's urgent: 30m
        assert ticket.resolution_due == local(2026, 3, 9, 14)  # 4h with the lunch break
        assert not move(s, ticket, "billing", actor="anna", policy=POLICY, now=NOW)
    with database.session() as s:
        (label,) = s.scalars(select(TrainingLabel)).all()
        ticket = get_ticket(s, ref)
        first = ticket.messages[0]
        assert label.message_id == first.id
        assert (label.queue, label.source, label.actor) == ("billing", "correction", "anna")
        assert label.subject == "Számla kérdés"
        assert label.body == "A májusi számla hibás."
        assert label.sender == "client@example.com"
        moved = s.scalars(select(TicketEvent).where(TicketEvent.action == "moved")).one()
        assert (moved.actor, moved.detail["from"], moved.detail["to"]) == (
            "anna",
            "unsorted",
            "billing",
        )


def test_move_keeps_paused_time(database: Database) -> None:
    ref = _ticket(database, queue="unsorted")
    with database.session() as s:
        ticket = get_ticket(s, ref)
        set_status(s, ticket, "waiting", actor="anna", policy=POLICY, now=local(2026, 3, 9, 10))
        set_status(s, ticket, "open", actor="anna", policy=POLICY, now=local(2026, 3, 9, 11))
        assert ticket.first_response_due == local(2026, 3, 9, 15)  # 4h + 1h paused
        move(s, ticket, "scheduling", actor="anna", policy=POLICY, now=NOW)
        assert ticket.first_response_due == local(2026, 3, 9, 15)  # same targets, same pause
        move(s, ticket, "billing", actor="anna", policy=POLICY, now=NOW)
        assert ticket.first_response_due == local(2026, 3, 9, 15)  # billing: normal is global


def test_move_to_an_unknown_queue(database: Database) -> None:
    ref = _ticket(database)
    with pytest.raises(NotFoundError, match="no queue 'nowhere'"), database.session() as s:
        move(s, get_ticket(s, ref), "nowhere", actor="anna", policy=POLICY, now=NOW)
    with database.session() as s:
        assert s.scalars(select(Ticket)).one().queue == "billing"
        assert s.scalars(select(TrainingLabel)).all() == []
