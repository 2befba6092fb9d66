"""The ticket desk: the one API both front ends (CLI, web page) work tickets through.

:class:`TicketDesk` lists the queue (views, keyset pages, counts), shows a ticket
as a frozen :class:`TicketView`, and performs every action a person takes —
claim, assign, move, wait, done, reopen, reply, note — one transaction each, with
the business rules inside (see :mod:`triage.desk.desk`).
"""

from triage.desk.desk import (
    MAX_BODY_BYTES,
    MAX_PAGE,
    MAX_SNOOZE,
    TicketDesk,
    mentioned,
)
from triage.desk.values import (
    ActionResult,
    AttachmentContent,
    AttachmentView,
    CorrectionView,
    DeadlineState,
    DeadlineView,
    EscalationView,
    EventView,
    MessageView,
    NoteView,
    QueueCount,
    QueueCounts,
    QueuePage,
    QueueRow,
    RoutingView,
    TicketView,
    View,
)

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PAGE",
    "MAX_SNOOZE",
    "ActionResult",
    "AttachmentContent",
    "AttachmentView",
    "CorrectionView",
    "DeadlineState",
    "DeadlineView",
    "EscalationView",
    "EventView",
    "MessageView",
    "NoteView",
    "QueueCount",
    "QueueCounts",
    "QueuePage",
    "QueueRow",
    "RoutingView",
    "TicketDesk",
    "TicketView",
    "View",
    "mentioned",
]
