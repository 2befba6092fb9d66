"""Tickets: threading, the ticket life cycle with its SLA clocks, the queue, replies.

Pure parts: :mod:`~triage.refs` (``#1042``, subjects) and
:mod:`~triage.tickets.compose` (the reply mail). The rest works on a SQLAlchemy
``Session`` inside the caller's transaction and never commits:

- :mod:`~triage.tickets.matching`: which ticket an incoming mail belongs to;
- :mod:`~triage.tickets.lifecycle`: open, add a client message, record a reply, status;
- :mod:`~triage.tickets.assignment`: claim (atomic), assign, move (training label);
- :mod:`~triage.tickets.escalations`: escalation rows, one per (ticket, kind, cycle);
- :mod:`~triage.tickets.reply`: a reply written to the outbox;
- :mod:`~triage.tickets.sent`: a reply seen in the Sent folder;
- :mod:`~triage.tickets.queue`: the prioritized queue;
- :mod:`~triage.tickets.audit`: the audit log (``ticket_events``).
"""

from triage.refs import extract_refs, format_ref, normalize_subject, parse_ref
from triage.tickets.assignment import assign, claim, move
from triage.tickets.escalations import insert_escalation, record_rule_escalation
from triage.tickets.lifecycle import (
    Joined,
    add_client_message,
    open_ticket,
    record_team_reply,
    set_status,
)
from triage.tickets.lookup import get_ticket
from triage.tickets.matching import ThreadMatch, find_ticket, find_ticket_for
from triage.tickets.queue import QueueRow, queue_row
from triage.tickets.reply import queue_reply
from triage.tickets.sent import record_sent_reply

__all__ = [
    "Joined",
    "QueueRow",
    "ThreadMatch",
    "add_client_message",
    "assign",
    "claim",
    "extract_refs",
    "find_ticket",
    "find_ticket_for",
    "format_ref",
    "get_ticket",
    "insert_escalation",
    "move",
    "normalize_subject",
    "open_ticket",
    "parse_ref",
    "queue_reply",
    "queue_row",
    "record_rule_escalation",
    "record_sent_reply",
    "record_team_reply",
    "set_status",
]
