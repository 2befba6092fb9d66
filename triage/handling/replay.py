"""Comparing a replayed :class:`~triage.handling.Decision` with the one stored. Pure.

``triage rules test`` replays the whole decision (:func:`triage.handling.decide`:
duplicates, threads, machine mail, rules, mailing lists, the model, the fallback,
the acknowledgment) over stored mail with candidate rules and the active models, and
this module says what would change, message by message, and counts it.

What is compared: what becomes of the message (open, join, duplicate, store), the
acknowledgment (queued, or its :class:`~triage.handling.AckReason`) and the rules'
escalation; for a message that opens a ticket both times, its queue (with what
decides it now: a rule, mailing-list routing, the model or the fallback) and
priority. A message that joins a ticket or is a duplicate both times follows its
ticket, whose queue may have been corrected since: its queue is not compared.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rules.replay import Change
from triage.domain import DecidedBy
from triage.handling.decision import Action, Decision, NoAck

__all__ = ["ReplayCounts", "StoredOutcome", "compare_decisions", "stored_action"]

_JOINED = "joined ticket "
"""How the pipeline starts the explanation of a message that joined a ticket."""


def stored_action(queue: str, ack: str, explanation: tuple[str, ...]) -> Action:
    """What became of a stored message, read from its ``routing_decisions`` row."""
    if ack == "duplicate":
        return Action.DUPLICATE
    if not queue:
        return Action.STORE
    if explanation and explanation[0].startswith(_JOINED):
        return Action.JOIN
    return Action.OPEN


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """The parts of a stored ``routing_decisions`` row that a replay compares.

    Attributes:
        action: :func:`stored_action` of the row.
        queue, priority, decided_by: the stored route.
        escalate: the rules' escalation reasons.
        ack: "" when an acknowledgment was queued, else the reason's code.
    """

    action: Action
    queue: str
    priority: str
    decided_by: str
    escalate: tuple[str, ...] = ()
    ack: str = ""


def _ack_words(code: str) -> str:
    return code or "queued"


def _why(decision: Decision) -> str:
    """What decides the replayed queue, in words: the rule's sentence, mailing-list
    routing, the model's answer, or why the fallback queue."""
    route = decision.route
    if route.decided_by == DecidedBy.RULE:
        for sentence in route.explanation:
            if sentence.startswith("rule '") and f"queue {route.queue}" in sentence:
                return sentence
    if route.decided_by == DecidedBy.MODEL and route.confidence is not None:
        return f"the model: {route.queue} with probability {route.confidence:.2f}"
    for sentence in route.explanation:
        if route.queue in sentence and ("queue" in sentence):
            return sentence
    return str(route.decided_by)


def _priority_why(decision: Decision) -> str:
    """What sets the replayed priority: a rule's sentence, the priority model's, or none."""
    route = decision.route
    for sentence in route.explanation:
        if sentence.startswith("rule '") and f"priority {route.priority}" in sentence:
            return sentence
        if sentence.startswith("priority model"):
            return sentence
    return "no rule sets it"


def compare_decisions(stored: StoredOutcome, replayed: Decision) -> tuple[Change, ...]:
    """The differences between ``stored`` and ``replayed`` (see the module docstring)."""
    changes: list[Change] = []
    if stored.action is not replayed.action:
        changes.append(Change("action", str(stored.action), str(replayed.action)))
    route = replayed.route
    if stored.action is Action.OPEN and replayed.action is Action.OPEN:
        if route.queue != stored.queue:
            changes.append(Change("queue", stored.queue, route.queue, _why(replayed)))
        if str(route.priority) != stored.priority:
            changes.append(
                Change("priority", stored.priority, str(route.priority), _priority_why(replayed))
            )
    before, after = set(stored.escalate), set(replayed.escalate)
    if before != after:
        changes.append(
            Change(
                "escalation",
                "; ".join(sorted(before)) or "none",
                "; ".join(sorted(after)) or "none",
            )
        )
    reason = replayed.ack_reason
    new_ack = reason.value if reason is not None else ""
    if new_ack != stored.ack:
        detail = replayed.ack.detail if isinstance(replayed.ack, NoAck) else ""
        changes.append(
            Change("acknowledgment", _ack_words(stored.ack), _ack_words(new_ack), detail)
        )
    return tuple(changes)


@dataclass
class ReplayCounts:
    """Counts over one replay of whole decisions."""

    messages: int = 0
    changed: int = 0
    without_decision: int = 0
    unparsed: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    """What becomes of the replayed messages now (open, join, ...)."""

    def add(self, replayed: Decision, changes: tuple[Change, ...]) -> None:
        """Count one replayed message with a stored decision and its changes."""
        self.actions[str(replayed.action)] += 1
        if changes:
            self.changed += 1
        for change in changes:
            self.changes[change.what] += 1

    def lines(self) -> list[str]:
        """The totals in words, one line each."""
        now = ", ".join(f"{action} {n}" for action, n in sorted(self.actions.items()))
        return [
            f"replayed {self.messages} messages: {self.changed} would change",
            f"  action changes (open, join, duplicate, store): {self.changes['action']}",
            f"  queue changes: {self.changes['queue']}",
            f"  priority changes: {self.changes['priority']}",
            f"  escalation changes: {self.changes['escalation']}",
            f"  acknowledgment changes: {self.changes['acknowledgment']}",
            f"  replayed now: {now or 'nothing'}",
            f"  without a stored decision: {self.without_decision}",
            f"  with parse errors (replayed as parsed): {self.unparsed}",
        ]
