"""The ticket life cycle with its SLA clocks: open, follow-up, reply, wait, solve, reopen, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select
from support.tickets import local, make_policy, store_message

from triage.domain import Address, InboundMessage
from triage.store import Database
from triage.store.models import Escalation, Message, Ticket, TicketEvent
from triage.tickets import (
    Joined,
    add_client_message,
    open_ticket,
    record_rule_escalation,
    record_sent_reply,
    record_team_reply,
    set_status,
)
from triage.tickets.deadlines import cycles

POLICY = make_policy()
HOUR = 3600


def _open(
    s,
    received_at: datetime,
    *,
    queue: str = "billing",
    assignee: str | None = None,
    message_id: str = "<first@client.example>",
):
    m = store_message(s, message_id=message_id, received_at=received_at)
    return open_ticket(
        s,
        m,
        policy=POLICY,
        queue=queue,
        priority="normal",
        decided_by="model",
        now=received_at + timedelta(seconds=5),
        tags=["invoice"],
        assignee=assignee,
    )


def _client(s, ticket: Ticket, n: int, at: datetime, kind: str = "normal") -> Joined:
    m = store_message(s, message_id=f"<m{n}@client.example>", received_at=at, kind=kind)
    return add_client_message(s, ticket, m, policy=POLICY, now=at)


def _events(s, ticket: Ticket) -> list[TicketEvent]:
    return list(
        s.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        )
    )


def test_open_ticket_gets_ref_deadlines_and_an_audit_row(database: Database) -> None:
    received = local(2026, 3, 13, 16, 30)  # a Friday afternoon
    with database.session() as s:
        t = _open(s, received)
        ticket_id = t.id
    with database.session() as s:
        t = s.get(Ticket, ticket_id)
        assert t.ref == 1000 + t.id
        assert t.status == "new"
        assert t.opened_at == received
        assert t.awaiting_since == received
        assert t.first_response_due == local(2026, 3, 16, 11, 30)  # 4h, across the weekend
        assert t.resolution_due == local(2026, 3, 18, 16, 30)  # 3 working days
        assert t.next_response_due is None
        assert t.subject == "Invoice question"
        assert t.client_addr == "client@example.com"
        assert t.tags == ["invoice"]
        message = s.scalars(select(Message)).one()
        assert message.ticket_id == t.id
        (event,) = _events(s, t)
        assert (event.action, event.actor) == ("opened", "triage")
        assert event.detail["queue"] == "billing"
        assert event.detail["decided_by"] == "model"
        assert event.detail["first_response_due"] == "2026-03-16T10:30:00Z"


def test_a_ticket_gets_its_reference_in_its_own_insert(database: Database) -> None:
    """Issue 18.2: no UPDATE follows the INSERT of a new ticket (reference and version
    are written by it), and the reference is ``1000 + id`` also when two transactions
    open tickets at once (PostgreSQL: interleaved; SQLite takes turns)."""
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(" ".join(statement.split()))

    received = local(2026, 3, 13, 16, 30)
    event.listen(database.engine, "before_cursor_execute", count)
    try:
        opened: dict[int, int] = {}
        with database.session() as first:
            if database.engine.dialect.name == "postgresql":
                with database.session() as second:
                    for n in range(3):
                        for s, who in ((first, "a"), (second, "b")):
                            m = store_message(
                                s, message_id=f"<{who}{n}@client.example>", received_at=received
                            )
                            t = open_ticket(
                                s,
                                m,
                                policy=POLICY,
                                queue="billing",
                                priority="normal",
                                decided_by="model",
                                now=received,
                            )
                            opened[t.id] = t.ref or 0
            else:
                for n in range(6):
                    t = _open(first, received, message_id=f"<a{n}@client.example>")
                    opened[t.id] = t.ref or 0
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    assert not [x for x in statements if x.startswith("UPDATE tickets")]
    with database.session() as s:
        stored = {t.id: (t.ref, t.version) for t in s.scalars(select(Ticket))}
        events = list(s.scalars(select(TicketEvent)))
    assert len(stored) == 6
    assert stored == {i: (1000 + i, 2) for i in opened}  # read back = what open_ticket said
    assert opened == {i: 1000 + i for i in opened}
    assert sorted((e.ticket_id, e.version, e.action) for e in events) == [
        (i, 2, "opened") for i in sorted(opened)
    ]


def test_ticket_opened_with_an_assignee_is_open(database: Database) -> None:
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9), assignee="anna")
        assert (t.status, t.assignee) == ("open", "anna")


def test_queue_without_sla_has_no_deadlines(database: Database) -> None:
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9), queue="bulk")
        assert t.first_response_due is None
        assert t.resolution_due is None


def test_client_writing_again_before_the_first_response_keeps_its_deadline(
    database: Database,
) -> None:
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9))
        due = t.first_response_due
        assert _client(s, t, 2, local(2026, 3, 9, 10)) is Joined.FOLLOW_UP
        assert t.first_response_due == due
        assert t.awaiting_since == local(2026, 3, 9, 9)
        assert t.next_response_due is None


def test_team_reply_stops_first_response_then_next_response_cycle(database: Database) -> None:
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9))
        reply_at = local(2026, 3, 9, 10)
        record_team_reply(s, t, at=reply_at, actor="anna", policy=POLICY, now=reply_at)
        assert t.first_response_at == reply_at
        assert t.awaiting_since is None
        # the client answers: a next response is due 8 business hours later
        assert _client(s, t, 2, local(2026, 3, 9, 10, 30)) is Joined.FOLLOW_UP
        assert t.awaiting_since == local(2026, 3, 9, 10, 30)
        assert t.next_response_due == local(2026, 3, 10, 10, 30)
        # writing again while waiting for that answer keeps the deadline
        _client(s, t, 3, local(2026, 3, 9, 11))
        assert t.next_response_due == local(2026, 3, 10, 10, 30)
        # a second reply does not move the first response
        second = local(2026, 3, 9, 11, 30)
        record_team_reply(s, t, at=second, actor="bela", policy=POLICY, now=second)
        assert t.first_response_at == reply_at
        assert t.next_response_due is None
        assert t.awaiting_since is None
        assert cycles(s, [t.id])[t.id].response == 2


def test_waiting_pauses_the_clock_and_a_client_reply_resumes_it(database: Database) -> None:
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9))  # Monday 09:00
        assert t.first_response_due == local(2026, 3, 9, 14)
        resolution = t.resolution_due
        assert set_status(s, t, "waiting", actor="anna", policy=POLICY, now=local(2026, 3, 9, 10))
        assert t.waiting_since == local(2026, 3, 9, 10)
        # the client answers on Tuesday 10:00: 8 business hours were spent waiting
        assert _client(s, t, 2, local(2026, 3, 10, 10)) is Joined.RESUMED
        assert t.status == "new"
        assert t.waiting_since is None
        assert t.first_response_due == local(2026, 3, 10, 14)
        assert t.resolution_due == POLICY.shift(resolution, 8 * HOUR)
        event = _events(s, t)[-1]
        assert event.action == "resumed"
        assert event.detail["paused_seconds"] == 8 * HOUR
        assert (event.detail["from"], event.detail["to"]) == ("waiting", "new")


def test_assistant_ending_the_wait_resumes_the_clock(database: Database) -> None:
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9), assignee="anna")
        set_status(s, t, "waiting", actor="anna", policy=POLICY, now=local(2026, 3, 9, 10))
        set_status(s, t, "open", actor="anna", policy=POLICY, now=local(2026, 3, 9, 11))
        assert t.first_response_due == local(2026, 3, 9, 15)  # one business hour later
        assert t.status == "open"


def test_client_reply_reopens_a_solved_ticket(database: Database) -> None:
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9), assignee="anna")
        at = local(2026, 3, 9, 10)
        record_team_reply(s, t, at=at, actor="anna", policy=POLICY, now=at)
        set_status(s, t, "solved", actor="anna", policy=POLICY, now=local(2026, 3, 9, 11))
        assert t.solved_at == local(2026, 3, 9, 11)
        assert _client(s, t, 2, local(2026, 3, 11, 9)) is Joined.REOPENED
        assert t.status == "open"
        assert t.solved_at is None
        assert t.next_response_due == local(2026, 3, 12, 9)  # 8h: 09-12, 13-17, then 08-09
        assert t.resolution_due == local(2026, 3, 16, 9)  # 3 working days from Wednesday
        assert _events(s, t)[-1].action == "reopened"
        assert cycles(s, [t.id])[t.id].resolution == 1


def test_auto_reply_is_a_note_and_changes_nothing(database: Database) -> None:
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9))
        set_status(s, t, "waiting", actor="anna", policy=POLICY, now=local(2026, 3, 9, 10))
        before = (t.first_response_due, t.resolution_due, t.waiting_since)
        assert _client(s, t, 2, local(2026, 3, 9, 11), kind="auto_reply") is Joined.NOTE
        assert t.status == "waiting"
        assert (t.first_response_due, t.resolution_due, t.waiting_since) == before
        assert _events(s, t)[-1].action == "note_added"


def test_every_change_is_in_the_audit_trail(database: Database) -> None:
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9))
        record_team_reply(
            s, t, at=local(2026, 3, 9, 10), actor="anna", policy=POLICY, now=local(2026, 3, 9, 10)
        )
        set_status(s, t, "waiting", actor="anna", policy=POLICY, now=local(2026, 3, 9, 10, 5))
        _client(s, t, 2, local(2026, 3, 9, 12, 30))
        set_status(s, t, "solved", actor="bela", policy=POLICY, now=local(2026, 3, 9, 15))
        set_status(s, t, "closed", actor="bela", policy=POLICY, now=local(2026, 3, 9, 16))
        assert not set_status(s, t, "closed", actor="bela", policy=POLICY, now=local(2026, 3, 9))
        trail = [(e.actor, e.action, e.at) for e in _events(s, t)]
    assert trail == [
        ("triage", "opened", local(2026, 3, 9, 9, 0, 5)),
        ("anna", "replied", local(2026, 3, 9, 10)),
        ("anna", "status_changed", local(2026, 3, 9, 10, 5)),
        ("triage", "resumed", local(2026, 3, 9, 12, 30)),
        ("bela", "status_changed", local(2026, 3, 9, 15)),
        ("bela", "status_changed", local(2026, 3, 9, 16)),
    ]


def _sent(message_id: str, to: str, *, at: datetime, in_reply_to: str = "", subject: str = ""):
    return InboundMessage(
        message_id=message_id,
        subject=subject or "Re: Invoice question",
        received_at=at,
        from_=Address("Example Office", "inbox@office.example"),
        to=(Address("", to),),
        in_reply_to=in_reply_to,
    )


def test_reply_seen_in_the_sent_folder_stops_the_clock_once(database: Database) -> None:
    at = local(2026, 3, 9, 10)
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9))
        reply = _sent(
            "<r1@office.example>", "Client@Example.com", at=at, in_reply_to="<first@client.example>"
        )
        assert record_sent_reply(s, reply, policy=POLICY, now=at) is t
        assert t.first_response_at == at
        # seen again (a resync): nothing new
        assert record_sent_reply(s, reply, policy=POLICY, now=at + timedelta(hours=1)) is t
        replies = [e for e in _events(s, t) if e.action == "replied"]
        assert len(replies) == 1
        assert replies[0].detail["via"] == "sent_folder"
        # an internal forward to a colleague is not a reply to the client
        forward = _sent(
            "<f1@office.example>", "anna@office.example", at=at, subject=f"Fwd: [#{t.ref}] x"
        )
        assert record_sent_reply(s, forward, policy=POLICY, now=at) is None
        # unrelated mail from the shared address
        other = _sent("<o1@office.example>", "client@example.com", at=at, subject="Hello")
        assert record_sent_reply(s, other, policy=POLICY, now=at) is None


def test_late_sent_folder_reply_answers_only_what_came_before_it(database: Database) -> None:
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9))
        _client(s, t, 2, local(2026, 3, 9, 10, 30))  # written after the team's reply below
        reply = _sent(
            "<r1@office.example>",
            "client@example.com",
            at=local(2026, 3, 9, 10),
            subject=f"Re: [#{t.ref}] x",
        )
        record_sent_reply(s, reply, policy=POLICY, now=local(2026, 3, 9, 11))
        assert t.first_response_at == local(2026, 3, 9, 10)
        assert t.awaiting_since == local(2026, 3, 9, 10, 30)
        assert t.next_response_due == local(2026, 3, 10, 10, 30)


def test_rule_escalation_is_recorded_once_per_cycle(database: Database) -> None:
    now = datetime(2026, 3, 9, 8, tzinfo=UTC)
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9))
        first = record_rule_escalation(s, t, ["vip client: bigclient.example"], now=now)
        assert first is not None
        assert (first.kind, first.cycle, first.reason) == (
            "rule",
            0,
            "vip client: bigclient.example",
        )
        assert first.notified_at is None
        assert record_rule_escalation(s, t, ["vip client: bigclient.example"], now=now) is None
        assert record_rule_escalation(s, t, [], now=now) is None
        record_team_reply(s, t, at=now, actor="anna", policy=POLICY, now=now)
        again = record_rule_escalation(s, t, ["legal words: lawyer"], now=now)
        assert again is not None
        assert again.cycle == 1
        rows = s.scalars(select(Escalation)).all()
        assert len(rows) == 2
        assert [e.action for e in _events(s, t)].count("escalated") == 2


@pytest.mark.parametrize("status", ["bogus", ""])
def test_unknown_status_is_refused(database: Database, status: str) -> None:
    with database.session() as s:
        t = _open(s, local(2026, 3, 9, 9))
        with pytest.raises(ValueError):
            set_status(s, t, status, actor="anna", policy=POLICY, now=local(2026, 3, 9, 10))
