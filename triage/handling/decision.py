"""The decision for one message: one value that the pipeline applies (writes) as it says."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from triage.domain import MessageKind
from triage.handling.reasons import AckReason
from triage.routing import Route

__all__ = ["Acknowledge", "Action", "Decision", "Hit", "NoAck"]


class Action(StrEnum):
    """What becomes of the message."""

    OPEN = "open"
    """Open a ticket on :attr:`Decision.route`."""
    JOIN = "join"
    """Join the ticket it replies to (:attr:`Decision.ticket_id`)."""
    DUPLICATE = "duplicate"
    """File it with the earlier copy's ticket (none when that copy has none)."""
    STORE = "store"
    """Keep it without a ticket."""


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """Acknowledge the message with ``template`` ("" for the queue's default)."""

    template: str = ""


@dataclass(frozen=True, slots=True)
class NoAck:
    """No acknowledgment, for exactly one ``reason``; ``detail`` is the sentence a
    person reads ("" when the reason says it all)."""

    reason: AckReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Hit:
    """One row of a table looked at: ``matched`` True for the row that decided."""

    table: str
    check: str
    matched: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one message (:func:`triage.handling.decide`).

    Attributes:
        action: open, join, file a duplicate, or store only.
        route: queue, priority, how decided (rule, model or fallback) with its
            explanation; for JOIN and DUPLICATE the ticket's own route (the pipeline
            puts the line saying how the message joined first); for STORE no queue ("").
        ack: :class:`Acknowledge` or :class:`NoAck`.
        ticket_id: the ticket joined or filed with (JOIN, DUPLICATE), else None.
        duplicate_of: the earlier copy's ``messages.id`` (DUPLICATE), else None.
        via: how the message joined its ticket, for the explanation (JOIN).
        note: the message joins as a note only (machine mail: nothing else changes).
        kind: the kind to store when the tables see it otherwise than the parser
            (an auto-responder's answer to our acknowledgment), else None.
        escalate: the rules' escalation reasons to record on the ticket (whether it is
            mailed is :func:`triage.escalation.history.history_reason`'s to say).
        undeliverable: (address, status code or None) when a bounce says the ticket's
            client cannot be reached (RFC 3464), else None.
        trail: every row looked at, in order (the hits and misses).
    """

    action: Action
    route: Route
    ack: Acknowledge | NoAck
    ticket_id: int | None = None
    duplicate_of: int | None = None
    via: str = ""
    note: bool = False
    kind: MessageKind | None = None
    escalate: tuple[str, ...] = ()
    undeliverable: tuple[str, str | None] | None = None
    trail: tuple[Hit, ...] = ()

    @property
    def ack_reason(self) -> AckReason | None:
        """The no-ack reason, None when the message is acknowledged."""
        return self.ack.reason if isinstance(self.ack, NoAck) else None

    @property
    def checks(self) -> list[list[str | bool]]:
        """:attr:`trail` as JSON: ``[[table, check, matched], ...]``."""
        return [[hit.table, hit.check, hit.matched] for hit in self.trail]
