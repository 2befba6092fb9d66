"""Finding a ticket by the reference a person typed."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.errors import NotFoundError
from triage.refs import format_ref, parse_ref
from triage.store.models import Ticket

__all__ = ["get_ticket"]


def get_ticket(session: Session, ref: str | int) -> Ticket:
    """The ticket with reference ``ref`` (``1042``, ``"#1042"`` or ``"1042"``).

    Raises:
        NotFoundError: not a reference, or no such ticket.
    """
    number = ref if isinstance(ref, int) else parse_ref(ref)
    ticket = session.scalars(select(Ticket).where(Ticket.ref == number)).first()
    if ticket is None:
        raise NotFoundError(f"no ticket {format_ref(number)}")
    return ticket
