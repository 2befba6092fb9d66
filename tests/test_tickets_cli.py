"""The assistants' commands as a user runs them (in-process: `support.cli.run_triage`).

The database is an SQLite file filled with SQLAlchemy; deadlines are set relative
to the real clock, since the CLI reads it.
"""

from __future__ import annotations

import email
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy as email_policy
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select
from support.cli import run_triage
from support.tickets import make_policy, store_message, write_config

from triage.store import Database
from triage.store.models import OutboxMail, RoutingDecision, Ticket, TicketEvent, TrainingLabel
from triage.tickets import open_ticket

POLICY = make_policy()
REQUIRED_KEYS = {
    "ref",
    "queue",
    "priority",
    "status",
    "subject",
    "from",
    "assignee",
    "received_at",
    "due_at",
    "breached",
    "decided_by",
}


@dataclass
class Desk:
    config: Path
    db: Database
    tmp: Path

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        full = {"TRIAGE_CONFIG": str(self.config), "COLUMNS": "200", **(env or {})}
        return run_triage(*args, env=full)


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    db = Database.open(url)
    try:
        yield Desk(write_config(tmp_path / "triage.toml", url), db, tmp_path)
    finally:
        db.dispose()


def _add(
    db: Database,
    n: int,
    *,
    priority: str = "normal",
    queue: str = "billing",
    due: timedelta | None = None,
    age: timedelta = timedelta(hours=1),
    status: str = "new",
    assignee: str | None = None,
    decided_by: str = "model",
    now: datetime | None = None,
) -> int:
    """A ticket whose first response is due ``due`` from ``now``; returns its ref."""
    now = now or datetime.now(UTC).replace(microsecond=0)
    with db.session() as s:
        m = store_message(
            s,
            message_id=f"<q{n}@client.example>",
            received_at=now - age,
            subject=f"Question {n}",
            from_addr=f"client{n}@example.com",
            from_name=f"Client {n}",
        )
        t = open_ticket(
            s,
            m,
            policy=POLICY,
            queue=queue,
            priority=priority,
            decided_by=decided_by,
            now=now,
            assignee=assignee,
        )
        t.status = status
        t.first_response_due = (now + due) if due is not None else None
        t.resolution_due = now + timedelta(days=30)
        if status == "waiting":
            t.waiting_since = now
        return t.ref or 0


def _queue_fixture(db: Database) -> dict[str, int]:
    soon = timedelta(hours=3)
    # one "now" for all: A, D and E must be due at the same instant (a second boundary
    # crossed between two of them would otherwise decide their order)
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "A": _add(db, 1, due=soon, now=now),
        "B": _add(db, 2, priority="low", due=-timedelta(hours=2), now=now),
        "C": _add(db, 3, priority="urgent", due=-timedelta(minutes=30), assignee="anna", now=now),
        "D": _add(db, 4, priority="high", due=soon, decided_by="rule", now=now),
        "E": _add(db, 5, due=soon, age=timedelta(hours=5), decided_by="fallback", now=now),
        "F": _add(db, 6, status="waiting", due=-timedelta(hours=5), now=now),
        "G": _add(db, 7, status="solved", due=-timedelta(hours=5), now=now),
        "H": _add(db, 8, queue="scheduling", due=timedelta(hours=1), assignee="anna", now=now),
    }


def test_queue_json_is_ordered_breached_due_priority_age(desk: Desk) -> None:
    refs = _queue_fixture(desk.db)
    done = desk.run("queue", "--json")
    assert done.exit_code == 0, done.stderr
    rows = json.loads(done.stdout)
    order = [r["ref"] for r in rows]
    assert order == [refs[k] for k in ("B", "C", "H", "D", "E", "A", "F")]
    for row in rows:
        assert row.keys() >= REQUIRED_KEYS
        assert isinstance(row["ref"], int)
        assert isinstance(row["breached"], bool)
        assert row["decided_by"] in {"rule", "model", "fallback"}
        assert "@" in row["from"]
        received = datetime.fromisoformat(row["received_at"])
        assert received.utcoffset() == timedelta(0)
        assert row["received_at"].endswith("Z")
    by_ref = {r["ref"]: r for r in rows}
    assert by_ref[refs["B"]]["breached"] is True
    assert by_ref[refs["A"]]["breached"] is False
    assert by_ref[refs["F"]]["due_at"] is None  # waiting: the clock is paused
    assert by_ref[refs["F"]]["breached"] is False
    assert by_ref[refs["C"]]["assignee"] == "anna"
    assert by_ref[refs["D"]]["decided_by"] == "rule"
    assert by_ref[refs["A"]]["from"] == "client1@example.com"
    with desk.db.session() as s:
        a = s.scalars(select(Ticket).where(Ticket.ref == refs["A"])).one()
        assert datetime.fromisoformat(by_ref[refs["A"]]["due_at"]) == a.first_response_due


def test_queue_filters(desk: Desk) -> None:
    refs = _queue_fixture(desk.db)
    only = json.loads(desk.run("queue", "--queue", "scheduling", "--json").stdout)
    assert [r["ref"] for r in only] == [refs["H"]]
    mine = json.loads(desk.run("queue", "--mine", "--as", "anna", "--json").stdout)
    assert [r["ref"] for r in mine] == [refs["C"], refs["H"]]
    env_mine = desk.run("queue", "--mine", "--json", env={"TRIAGE_USER": "anna"})
    assert [r["ref"] for r in json.loads(env_mine.stdout)] == [refs["C"], refs["H"]]


def test_queue_table_on_a_pipe_is_plain_text(desk: Desk) -> None:
    refs = _queue_fixture(desk.db)
    done = desk.run("queue")
    assert done.exit_code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "REF",
        "QUEUE",
        "PRIO",
        "CLIENT",
        "SUBJECT",
        "STATUS",
        "ASSIGNEE",
        "DUE",
    ]
    assert lines[1].startswith(f"#{refs['B']}")
    assert "overdue by" in lines[1]
    assert "Client 2 <client2@example.com>" in lines[1]
    assert "paused (waiting)" in lines[-1]
    assert "\x1b[" not in done.stdout  # no colour codes in a pipe


def test_queue_table_lists_the_most_urgent_and_says_how_many_more(desk: Desk) -> None:
    refs = _queue_fixture(desk.db)  # 7 open tickets, B most urgent, F (waiting) last
    first = desk.run("queue", "--limit", "2")
    assert first.exit_code == 0, first.stderr
    lines = first.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:3]] == [f"#{refs['B']}", f"#{refs['C']}"]
    assert lines[3] == (
        "... and 5 more open tickets (triage queue --all lists them all, --limit N the first N)"
    )
    every = desk.run("queue", "--all").stdout.splitlines()
    assert len(every) == 1 + 7
    assert "more open tickets" not in desk.run("queue", "--limit", "7").stdout
    # --json lists every ticket (the contract) unless --limit says otherwise
    assert len(json.loads(desk.run("queue", "--json").stdout)) == 7
    top = json.loads(desk.run("queue", "--json", "--limit", "3").stdout)
    assert [r["ref"] for r in top] == [refs["B"], refs["C"], refs["H"]]
    assert json.loads(desk.run("queue", "--json", "--limit", "0").stdout) == []
    both = desk.run("queue", "--all", "--limit", "3")
    assert both.exit_code == 2
    assert "--all and --limit" in both.stderr


def test_unknown_queue_ticket_and_assistant_are_one_line_exit_2(desk: Desk) -> None:
    ref = _add(desk.db, 1, due=timedelta(hours=1))
    for args, message in [
        (("queue", "--queue", "nowhere"), "no queue 'nowhere'"),
        (("show", "#9999"), "no ticket #9999"),
        (("show", "abc"), "not a ticket reference"),
        (
            ("claim", str(ref), "--as", "zoltan"),
            "you are 'zoltan', who is not in [team.assistants]",
        ),
        (("assign", str(ref), "zoltan", "--as", "anna"), "no assistant 'zoltan'"),
        (("move", str(ref), "nowhere", "--as", "anna"), "no queue 'nowhere'"),
    ]:
        done = desk.run(*args)
        assert done.exit_code == 2, (args, done.stderr)
        assert done.stderr.startswith("error: "), args
        assert message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, args
        assert "Traceback" not in done.stderr


def test_claim_assign_wait_done(desk: Desk) -> None:
    ref = _add(desk.db, 1, due=timedelta(hours=1))
    claimed = desk.run("claim", f"#{ref}", "--as", "anna")
    assert claimed.exit_code == 0, claimed.stderr
    assert f"#{ref} claimed by anna" in claimed.stdout
    taken = desk.run("claim", str(ref), env={"TRIAGE_USER": "bela"})
    assert taken.exit_code == 2
    assert f"#{ref} is already claimed by anna" in taken.stderr
    assert desk.run("assign", str(ref), "bela", "--as", "anna").exit_code == 0
    assert desk.run("wait", str(ref), "--as", "bela").exit_code == 0
    waiting = json.loads(desk.run("queue", "--json").stdout)
    assert (waiting[0]["status"], waiting[0]["assignee"]) == ("waiting", "bela")
    done = desk.run("done", str(ref), "--as", "bela")
    assert done.exit_code == 0
    assert "solved" in done.stdout
    assert json.loads(desk.run("queue", "--json").stdout) == []
    # claiming a solved ticket says it is solved (not "already claimed by bela")
    late = desk.run("claim", str(ref), "--as", "anna")
    assert late.exit_code == 2
    assert late.stderr.strip() == (
        f"error: #{ref} is solved (assigned to bela): there is nothing to claim;"
        " a new message from the client reopens it"
    )
    with desk.db.session() as s:
        events = s.scalars(select(TicketEvent).order_by(TicketEvent.id)).all()
        assert [(e.actor, e.action) for e in events] == [
            ("triage", "opened"),
            ("anna", "claimed"),
            ("anna", "assigned"),
            ("bela", "status_changed"),
            ("bela", "status_changed"),
        ]


def test_move_stores_a_training_label(desk: Desk) -> None:
    ref = _add(desk.db, 1, due=timedelta(hours=1))
    done = desk.run("move", str(ref), "scheduling", "--as", "bela")
    assert done.exit_code == 0, done.stderr
    assert f"#{ref} moved to scheduling" in done.stdout
    with desk.db.session() as s:
        label = s.scalars(select(TrainingLabel)).one()
        assert (label.queue, label.source, label.actor) == ("scheduling", "correction", "bela")
        assert label.message_id is not None
        assert s.scalars(select(Ticket)).one().queue == "scheduling"


def test_show_prints_messages_routing_deadlines_and_audit(desk: Desk) -> None:
    now = datetime.now(UTC)
    with desk.db.session() as s:
        first = store_message(
            s,
            message_id="<s1@client.example>",
            received_at=now - timedelta(hours=2),
            subject="Számla kérdés",
            body="A májusi számla hibás.",
        )
        s.add(
            RoutingDecision(
                message_id=first.id,
                queue="billing",
                priority="normal",
                decided_by="rule",
                rules_matched=["invoice-words"],
                explanation=["rule 'invoice-words': subject contains 'számla'"],
            )
        )
        s.flush()
        ticket = open_ticket(
            s, first, policy=POLICY, queue="billing", priority="normal", decided_by="rule", now=now
        )
        second = store_message(
            s,
            message_id="<s2@client.example>",
            received_at=now - timedelta(hours=1),
            subject="Re: Számla kérdés",
            body="Csatolom a számlát.",
            quoted="> A májusi számla hibás.\n> Üdv",
            attachments=(
                {"filename": "szamla.pdf", "content_type": "application/pdf", "size": 20480},
            ),
        )
        second.ticket_id = ticket.id
        ref = ticket.ref
    for arg in (str(ref), f"#{ref}"):
        done = desk.run("show", arg)
        assert done.exit_code == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"#{ref}  Számla kérdés")
    for section in (
        "Deadlines (business time):",
        "Routing:",
        "Messages (2, newest first):",
        "Audit trail:",
    ):
        assert section in out
    assert "rule 'invoice-words': subject contains 'számla'" in out
    assert "szamla.pdf (application/pdf, 20 KB)" in out
    assert "[quoted history: 2 lines folded; --quoted shows it]" in out
    assert "> Üdv" not in out
    assert out.index("Csatolom a számlát.") < out.index("A májusi számla hibás.")  # newest first
    assert "triage: opened" in out
    unfolded = desk.run("show", str(ref), "--quoted").stdout
    assert "> Üdv" in unfolded


def test_reply_from_a_file_and_from_the_editor(desk: Desk) -> None:
    ref = _add(desk.db, 1, due=timedelta(hours=1))
    body = desk.tmp / "reply.txt"
    body.write_text("Köszönjük, javítjuk.\n", encoding="utf-8")
    done = desk.run("reply", str(ref), "--body-file", str(body), "--as", "anna")
    assert done.exit_code == 0, done.stderr
    assert f"reply to #{ref} queued for client1@example.com" in done.stdout
    editor = desk.tmp / "editor.sh"
    editor.write_text(
        '#!/bin/sh\n{ printf \'Second answer.\\n\'; cat "$1"; } > "$1.new" && mv "$1.new" "$1"\n'
    )
    editor.chmod(0o755)
    again = desk.run("reply", str(ref), "--as", "bela", env={"EDITOR": str(editor)})
    assert again.exit_code == 0, again.stderr
    with desk.db.session() as s:
        rows = s.scalars(select(OutboxMail).order_by(OutboxMail.id)).all()
        assert [r.kind for r in rows] == ["reply", "reply"]
        texts = [
            email.message_from_bytes(r.raw, policy=email_policy.default).get_content() for r in rows
        ]
        assert texts[0].replace("\r\n", "\n") == "Köszönjük, javítjuk.\n"
        assert texts[1].replace("\r\n", "\n") == "Second answer.\n"  # '#' hint lines left out
        ticket = s.scalars(select(Ticket)).one()
        assert ticket.first_response_at is not None
        actors = s.scalars(
            select(TicketEvent.actor)
            .where(TicketEvent.action == "replied")
            .order_by(TicketEvent.id)
        ).all()
        assert actors == ["anna", "bela"]


def test_empty_reply_sends_nothing(desk: Desk) -> None:
    ref = _add(desk.db, 1, due=timedelta(hours=1))
    body = desk.tmp / "empty.txt"
    body.write_text("\n", encoding="utf-8")
    done = desk.run("reply", str(ref), "--body-file", str(body), "--as", "anna")
    assert done.exit_code == 2
    assert "empty" in done.stderr
    with desk.db.session() as s:
        assert s.scalars(select(OutboxMail)).all() == []


def test_a_reply_over_the_desks_limit_is_refused_as_on_the_web_page(desk: Desk) -> None:
    ref = _add(desk.db, 1, due=timedelta(hours=1))
    body = desk.tmp / "huge.txt"
    body.write_text("x" * (12 * 1024 * 1024), encoding="utf-8")  # the tester's 12 MB
    done = desk.run("reply", str(ref), "--body-file", str(body), "--as", "anna")
    assert done.exit_code == 2, done.stderr
    error = done.stderr.strip()
    assert len(error.splitlines()) == 1
    assert "over the limit of 1,048,576 bytes (1 MiB)" in error
    with desk.db.session() as s:
        assert s.scalars(select(OutboxMail)).all() == []


def test_an_editor_that_cannot_start_is_a_one_line_user_error(desk: Desk) -> None:
    ref = _add(desk.db, 1, due=timedelta(hours=1))
    done = desk.run(
        "reply", str(ref), "--as", "anna", env={"EDITOR": "nonexistent-editor", "VISUAL": ""}
    )
    assert done.exit_code == 2, done.stderr
    error = done.stderr.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith("error: cannot write the reply in the editor: ")
    assert "nonexistent-editor" in error
    assert "--body-file" in error
    with desk.db.session() as s:
        assert s.scalars(select(OutboxMail)).all() == []
