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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Each name's module, imported on first access (PEP 562): importing one submodule
# (triage.tickets.queue for `triage queue`) does not load the write side (lifecycle,
# assignment, the outbox and its templates). tests/test_startup.py checks it.
_HOME = {
    "extract_refs": "triage.refs",
    "format_ref": "triage.refs",
    "normalize_subject": "triage.refs",
    "parse_ref": "triage.refs",
    "assign": "triage.tickets.assignment",
    "claim": "triage.tickets.assignment",
    "move": "triage.tickets.assignment",
    "insert_escalation": "triage.tickets.escalations",
    "record_rule_escalation": "triage.tickets.escalations",
    "Joined": "triage.tickets.lifecycle",
    "add_client_message": "triage.tickets.lifecycle",
    "open_ticket": "triage.tickets.lifecycle",
    "record_team_reply": "triage.tickets.lifecycle",
    "set_status": "triage.tickets.lifecycle",
    "get_ticket": "triage.tickets.lookup",
    "ThreadMatch": "triage.tickets.matching",
    "find_ticket": "triage.tickets.matching",
    "find_ticket_for": "triage.tickets.matching",
    "QueueRow": "triage.tickets.queue",
    "queue_row": "triage.tickets.queue",
    "queue_reply": "triage.tickets.reply",
    "record_sent_reply": "triage.tickets.sent",
}

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


def __getattr__(name: str) -> Any:
    """A public name of the package, importing its module on first use.

    Raises:
        AttributeError: not a name of the package.
    """
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
