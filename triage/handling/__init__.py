"""Decide, then apply: what becomes of one inbound message, as one value. Pure; no I/O.

The pipeline (:mod:`triage.services.pipeline`) gathers the :class:`Facts` about a
stored message, calls :func:`decide`, and writes what the :class:`Decision` says: open
a ticket, join one, file a duplicate, or store only; the route (queue, priority, how
decided, the explanation); any escalation; and either :class:`Acknowledge` with a
template or exactly one :class:`NoAck` reason (:class:`AckReason`). The policy is two
commented tables in :mod:`.builtin`, read by a small loop that records every row it
looked at (GNU Mailman 3's chains). ``triage rules test`` replays the same function
over stored mail.

Sources of the checks: RFC 3834 (automatic responses), RFC 3464 and RFC 6522
(delivery status notifications), RFC 2369 and RFC 2919 (mailing lists), RFC 5965
(feedback reports), RFC 8098 (read receipts), RFC 5322 section 3.6.4 (Message-IDs).
"""

from triage.handling.builtin import (
    ACK_POLICY,
    ACKNOWLEDGMENT,
    DISPOSITION,
    INTAKE_ACK,
    NOTE_KINDS,
    STORED_ONLY_KINDS,
    Link,
    decide,
    decide_acknowledgment,
    first_match,
)
from triage.handling.decision import Acknowledge, Action, Decision, Hit, NoAck
from triage.handling.facts import (
    EarlierCopy,
    Facts,
    FactSource,
    FixedFacts,
    Predictions,
    SentAck,
    ThreadFact,
    TicketFact,
)
from triage.handling.reasons import AckReason

__all__ = [
    "ACKNOWLEDGMENT",
    "ACK_POLICY",
    "DISPOSITION",
    "INTAKE_ACK",
    "NOTE_KINDS",
    "STORED_ONLY_KINDS",
    "AckReason",
    "Acknowledge",
    "Action",
    "Decision",
    "EarlierCopy",
    "FactSource",
    "Facts",
    "FixedFacts",
    "Hit",
    "Link",
    "NoAck",
    "Predictions",
    "SentAck",
    "ThreadFact",
    "TicketFact",
    "decide",
    "decide_acknowledgment",
    "first_match",
]
