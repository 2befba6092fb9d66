"""Ticket search on SQLite (FTS5) and PostgreSQL (tsvector): accent-insensitive, by ref,
client, subject and body."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from support.tickets import make_policy, store_message

from triage.store import Database
from triage.store.models import Message
from triage.store.search import fold, search_tickets, terms
from triage.tickets import open_ticket

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def _ticket(db: Database, n: int, *, subject: str, body: str, name: str, addr: str) -> int:
    with db.session() as session:
        message = store_message(
            session,
            message_id=f"<s{n}@example.com>",
            received_at=NOW,
            subject=subject,
            body=body,
            from_name=name,
            from_addr=addr,
        )
        ticket = open_ticket(
            session,
            message,
            policy=make_policy(),
            queue="billing",
            priority="normal",
            decided_by="rule",
            now=NOW,
        )
        return ticket.id


@pytest.fixture
def tickets(database: Database) -> dict[str, int]:
    return {
        "invoice": _ticket(
            database,
            1,
            subject="Számla hiba",
            body="A számlán rossz az összeg.",
            name="Kovács Péter",
            addr="peter.kovacs@ugyfel.hu",
        ),
        "meeting": _ticket(
            database,
            2,
            subject="Időpont",
            body="Kedden tíz órakor megfelel?",
            name="Nagy Éva",
            addr="eva@example.com",
        ),
        "english": _ticket(
            database,
            3,
            subject="Invoice copy",
            body="Could you resend the invoice?",
            name="Ann Smith",
            addr="ann@smith.example",
        ),
    }


def _find(db: Database, query: str) -> list[int]:
    with db.read_session() as session:
        return search_tickets(session, query)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("szamla", ["invoice"]),  # no accents typed
        ("SZÁMLA", ["invoice"]),
        ("számlán", ["invoice"]),  # a word of the body
        ("osszeg", ["invoice"]),
        ("kovacs", ["invoice"]),  # the sender's name
        ("Kovács Péter", ["invoice"]),
        ("peter.kovacs@ugyfel.hu", ["invoice"]),  # the address
        ("ugyfel.hu", ["invoice"]),
        ("idopont", ["meeting"]),
        ("orakor", ["meeting"]),
        ("invoice", ["english"]),
        ("invo", ["english"]),  # the start of a word
        ("resend invoice", ["english"]),
        ("szamla resend", []),  # every word must occur
        ("nothing-like-this", []),
        ("", []),
        ('"; DROP TABLE tickets; --', []),
    ],
)
def test_search(
    database: Database, tickets: dict[str, int], query: str, expected: list[str]
) -> None:
    assert _find(database, query) == [tickets[k] for k in expected]


def test_a_reference_finds_its_ticket_first(database: Database, tickets: dict[str, int]) -> None:
    from triage.store.models import Ticket  # noqa: PLC0415

    with database.read_session() as session:
        ref = session.get(Ticket, tickets["meeting"]).ref
    assert _find(database, f"#{ref}") == [tickets["meeting"]]
    assert _find(database, str(ref))[0] == tickets["meeting"]


def test_the_index_follows_changes_to_messages(database: Database, tickets: dict[str, int]) -> None:
    with database.session() as session:
        session.execute(
            update(Message)
            .where(Message.ticket_id == tickets["meeting"])
            .values(subject="Árvíztűrő")
        )
    assert _find(database, "arvizturo") == [tickets["meeting"]]
    assert _find(database, "idopont") == []


def test_fold_and_terms() -> None:
    assert fold("Árvíztűrő tükörfúrógép ŐŰ") == "arvizturo tukorfurogep ou"
    assert terms("peter.kovacs@ugyfel.hu") == ["peter", "kovacs", "ugyfel", "hu"]
    assert len(terms("a " * 50)) == 8
