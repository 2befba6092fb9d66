"""The facts about one message that the decision tables read.

A :class:`Facts` value holds what is known when the message arrives (the parsed
message, the settings, the time, how it came in) and asks a :class:`FactSource` for
the rest (an earlier copy, the thread it joins, recent acknowledgments to the sender,
the rules' and the models' answers) only when a check reads it, once: a message the
tables store at its first row costs no thread lookup, and an acknowledgment the
header checks refuse costs no count of recent acknowledgments. The source is the
store inside the message's transaction (:mod:`triage.services.pipeline`), the stored
history (``triage rules test``), or fixed values (:class:`FixedFacts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Protocol

from rules.model import RuleDecision
from triage.config import Settings
from triage.domain import InboundMessage, MessageKind, ParseStatus
from triage.handling.checks import our_addresses, responder_sign
from triage.routing import PredictionLike

__all__ = [
    "EarlierCopy",
    "FactSource",
    "Facts",
    "FixedFacts",
    "Predictions",
    "SentAck",
    "ThreadFact",
    "TicketFact",
]

Predictions = tuple[PredictionLike | None, PredictionLike | None]
"""(queue model's prediction, priority model's prediction); None where no model answered."""


@dataclass(frozen=True, slots=True)
class TicketFact:
    """What the tables need of a stored ticket.

    Attributes:
        id: ``tickets.id``.
        ref: the ticket's reference (``#ref`` in subjects), None before it has one.
        queue, priority, decided_by: its route (``Priority`` and ``DecidedBy`` values).
        client_addr: the client's address, "" when unknown.
    """

    id: int
    ref: int | None
    queue: str
    priority: str
    decided_by: str
    client_addr: str = ""


@dataclass(frozen=True, slots=True)
class ThreadFact:
    """The ticket a message replies to, and the evidence.

    Attributes:
        ticket: the ticket.
        via: ``in_reply_to``, ``references``, ``delivery_report`` or ``subject_ref``.
        matched: the Message-ID or ``#ref`` that matched.
    """

    ticket: TicketFact
    via: str
    matched: str


@dataclass(frozen=True, slots=True)
class EarlierCopy:
    """An inbound message stored before this one with the same Message-ID and sender.

    Attributes:
        id: its ``messages.id``.
        ticket: its ticket, None when it has none.
    """

    id: int
    ticket: TicketFact | None


@dataclass(frozen=True, slots=True)
class SentAck:
    """One of our acknowledgments, named by a reply's In-Reply-To or References.

    Attributes:
        sent_at: when it was handed to the SMTP server (aware UTC), None if not yet.
    """

    sent_at: datetime | None


class FactSource(Protocol):
    """Where the facts not in the message come from; each asked at most once."""

    def earlier_copy(self) -> EarlierCopy | None:
        """The earlier copy of this mail (same Message-ID and sender, RFC 5322 section
        3.6.4); None for a synthesized Message-ID, unparsable mail, or none stored."""
        ...

    def thread(self) -> ThreadFact | None:
        """The ticket the message replies to (In-Reply-To, References, a bounce's
        original Message-ID, ``[#ref]`` in the subject); None for none."""
        ...

    def sent_ack(self, message_id: str) -> SentAck | None:
        """Our acknowledgment with Message-ID ``message_id``; None when it is not one."""
        ...

    def rules(self) -> RuleDecision | None:
        """The rule engine's decision; None when no rules are loaded."""
        ...

    def predictions(self) -> Predictions:
        """The models' answers (the queue model's and the priority model's)."""
        ...

    def recent_acks(self) -> int:
        """Acknowledgments queued to the reply address in the last hour (RFC 3834
        section 2: a bound on loops)."""
        ...

    def answered_ack(self) -> str:
        """The Message-ID of our acknowledgment the message names in In-Reply-To or
        References; "" when none."""
        ...

    def repeat_of(self) -> str:
        """An earlier message in the last hour from the same sender with the same
        subject and text, as ``"message N of <time>"``; "" when none."""
        ...


@dataclass(frozen=True, slots=True)
class FixedFacts:
    """A :class:`FactSource` answering fixed values (pure callers, tests)."""

    copy: EarlierCopy | None = None
    joins: ThreadFact | None = None
    acks: tuple[tuple[str, SentAck], ...] = ()
    rule_decision: RuleDecision | None = None
    answers: Predictions = (None, None)
    acks_in_last_hour: int = 0
    answers_ack: str = ""
    repeat: str = ""

    def earlier_copy(self) -> EarlierCopy | None:
        """:attr:`copy`."""
        return self.copy

    def thread(self) -> ThreadFact | None:
        """:attr:`joins`."""
        return self.joins

    def sent_ack(self, message_id: str) -> SentAck | None:
        """The entry of :attr:`acks` for ``message_id``."""
        return dict(self.acks).get(message_id)

    def rules(self) -> RuleDecision | None:
        """:attr:`rule_decision`."""
        return self.rule_decision

    def predictions(self) -> Predictions:
        """:attr:`answers`."""
        return self.answers

    def recent_acks(self) -> int:
        """:attr:`acks_in_last_hour`."""
        return self.acks_in_last_hour

    def answered_ack(self) -> str:
        """:attr:`answers_ack`."""
        return self.answers_ack

    def repeat_of(self) -> str:
        """:attr:`repeat`."""
        return self.repeat


@dataclass(frozen=True)
class Facts:
    """Everything the tables may read about one message (see the module docstring).

    Attributes:
        message: the parsed message (an error record when it could not be parsed).
        settings: the configuration.
        now: the processing time (aware UTC); None skips the ``too_old`` check.
        source: where the facts not given here come from.
        imported: stored by ``triage import`` (history).
        acknowledge_imports: imported mail is acknowledged too (the demo).
        open_import_tickets: imported mail opens tickets (False: stored only).
        can_send: there is an [smtp] section with its mail templates.
        follow_up: the message joined a ticket (only :func:`~triage.outbox.plan_ack`'s
            callers say so; the tables find the thread themselves).
        model_note: why no model answers, for the explanation ("" when one does).
        threshold: the queue model's confidence threshold
            (:func:`~triage.routing.routing_threshold`); None: the configured one.
        ours: our own addresses, lowercased (:func:`~triage.handling.checks.our_addresses`);
            None: worked out from ``settings``.

    Each lazily read fact (a ``cached_property``) is asked of ``source`` once.
    """

    message: InboundMessage
    settings: Settings
    now: datetime | None
    source: FactSource = field(default_factory=FixedFacts)
    imported: bool = False
    acknowledge_imports: bool = False
    open_import_tickets: bool = True
    can_send: bool = True
    follow_up: bool = False
    model_note: str = ""
    threshold: float | None = None
    ours: frozenset[str] | None = None

    @cached_property
    def earlier_copy(self) -> EarlierCopy | None:
        """:meth:`FactSource.earlier_copy`."""
        return self.source.earlier_copy()

    @cached_property
    def thread(self) -> ThreadFact | None:
        """:meth:`FactSource.thread`; None for unparsable mail (its headers mean nothing)."""
        if self.message.parse_status == ParseStatus.ERROR:
            return None
        return self.source.thread()

    @cached_property
    def rules(self) -> RuleDecision | None:
        """:meth:`FactSource.rules`."""
        return self.source.rules()

    @cached_property
    def predictions(self) -> Predictions:
        """:meth:`FactSource.predictions`."""
        return self.source.predictions()

    @cached_property
    def recent_acks(self) -> int:
        """:meth:`FactSource.recent_acks`."""
        return self.source.recent_acks()

    @cached_property
    def answered_ack(self) -> str:
        """:meth:`FactSource.answered_ack`."""
        return self.source.answered_ack()

    @cached_property
    def repeat_of(self) -> str:
        """:meth:`FactSource.repeat_of`."""
        return self.source.repeat_of()

    @cached_property
    def our_addresses(self) -> frozenset[str]:
        """:attr:`ours`, else worked out from the settings."""
        return self.ours if self.ours is not None else our_addresses(self.settings)

    @cached_property
    def responder(self) -> str:
        """Why a normal-looking reply threaded by one of our acknowledgments' Message-ID
        is an auto-responder's (:func:`~triage.handling.checks.responder_sign`, issue
        12.4); "" when it is not, or joins no ticket."""
        thread = self.thread
        if thread is None or self.message.kind != MessageKind.NORMAL:
            return ""
        if thread.via not in {"in_reply_to", "references"}:
            return ""
        ack = self.source.sent_ack(thread.matched)
        if ack is None:
            return ""
        return responder_sign(self.message, ack_ref=thread.ticket.ref, ack_sent_at=ack.sent_at)

    @cached_property
    def kind(self) -> MessageKind:
        """The message's kind as the tables see it: an auto-responder's answer to our
        acknowledgment (:attr:`responder`) is an auto-reply."""
        if self.responder:
            return MessageKind.AUTO_REPLY
        return MessageKind(self.message.kind)
