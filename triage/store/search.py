"""Ticket search, one interface over SQLite FTS5 and PostgreSQL full-text search.

:func:`search_tickets` finds tickets by reference (``#1042``, ``1042``), client
address or name, subject and body text of any of their messages. Every word of
the query must occur (as a word or the start of one), accents ignored on both
sides: "szamla" finds "számla", "Kovacs" finds "Kovács". The index is the
``search_docs`` table that migration 0005 keeps up to date with triggers.
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from triage.store.models import Ticket

__all__ = ["MAX_RESULTS", "fold", "search_tickets", "terms"]

MAX_RESULTS = 100
FETCH_FACTOR = 4
"""Matching messages read per ticket wanted (a ticket has several messages)."""
MAX_TERMS = 8

_SPECIAL = {"ø": "o", "đ": "d", "ł": "l", "Ø": "O", "Đ": "D", "Ł": "L", "ß": "ss"}
_WORD = re.compile(r"\w+")
_REF = re.compile(r"#?\s*(\d{1,9})")


def fold(value: str) -> str:
    """Lowercase ``value`` without accents: ``"Számla Őrző"`` -> ``"szamla orzo"``."""
    decomposed = unicodedata.normalize("NFKD", "".join(_SPECIAL.get(c, c) for c in value))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def terms(query: str) -> list[str]:
    """The words of a query, folded (at most :data:`MAX_TERMS`; ``@`` and ``.`` split)."""
    return _WORD.findall(fold(query).replace("_", " "))[:MAX_TERMS]


def search_tickets(session: Session, query: str, *, limit: int = 50) -> list[int]:
    """Ids of the tickets matching ``query`` (at most ``limit``), those with the newest
    matching message first.

    A query that is a ticket reference puts that ticket first. An empty query
    finds nothing.
    """
    limit = max(1, min(limit, MAX_RESULTS))
    found: list[int] = []
    ref = _REF.fullmatch(query.strip())
    if ref is not None:
        hit = session.scalar(select(Ticket.id).where(Ticket.ref == int(ref.group(1))))
        if hit is not None:
            found.append(hit)
    words = terms(query)
    if not words:
        return found
    # Newest messages first, read until enough tickets: both indexes walk their
    # matches in id order and stop early (ranking every match of a common word such
    # as "számla" costs seconds at 10^5 tickets).
    fetch = limit * FETCH_FACTOR
    if session.get_bind().dialect.name == "sqlite":
        match = " AND ".join(f'"{w}"*' for w in words)
        rows = session.execute(
            text(
                "SELECT ticket_id FROM search_docs WHERE search_docs MATCH :q"
                " ORDER BY rowid DESC LIMIT :n"
            ),
            {"q": match, "n": fetch},
        )
    else:
        tsquery = " & ".join(f"{w}:*" for w in words)
        rows = session.execute(
            text(
                "SELECT ticket_id FROM search_docs WHERE doc @@ to_tsquery('simple', :q)"
                " ORDER BY message_id DESC LIMIT :n"
            ),
            {"q": tsquery, "n": fetch},
        )
    for (ticket_id,) in rows:
        if ticket_id is not None and ticket_id not in found:
            found.append(int(ticket_id))
    return found[:limit]
