"""Comparing a candidate rule set's decisions with the decisions stored for past mail.

Pure: ``triage rules test`` reads the stored decisions and messages, and this
module says what would change. A stored decision came from a rule, the model or
the fallback queue (``decided_by``); the candidate rules only decide a queue
when one of them sets it, so:

- candidate sets a queue that differs from the stored one: the queue changes;
- candidate sets no queue, stored was decided by a rule: "rules no longer decide"
  (the model or the fallback would, which replay cannot know);
- candidate sets no queue, stored was decided by the model or fallback: unchanged.

Priority: a candidate priority that differs from the stored one is a change. When
the candidate sets none, the stored priority is kept if no stored rule matched;
otherwise it is taken to have come from a rule and would fall back to the
default priority. Escalation: the set of rule escalation reasons is compared.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rules.model import RuleDecision
from triage.domain import DecidedBy, Priority

__all__ = ["Change", "ReplayTotals", "StoredDecision", "compare"]

NO_LONGER_DECIDE = "rules no longer decide (model or fallback would)"


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """The parts of a stored ``routing_decisions`` row that replay compares."""

    queue: str
    priority: str
    decided_by: str
    escalate: tuple[str, ...] = ()
    rules_matched: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: ``what`` is ``queue``, ``priority`` or ``escalation``.

    Attributes:
        before: the stored value in words.
        after: the candidate's value in words.
        why: the candidate rule responsible, or a note (:data:`NO_LONGER_DECIDE`).
    """

    what: str
    before: str
    after: str
    why: str = ""

    def __str__(self) -> str:
        text = f"{self.what}: {self.before} -> {self.after}"
        return f"{text}  ({self.why})" if self.why else text


def _rule_applying(candidate: RuleDecision, action: str) -> str:
    for hit in candidate.hits:
        if any(a.startswith(action) for a in hit.applied):
            return hit.sentence
    return ""


def compare(
    stored: StoredDecision, candidate: RuleDecision, *, default_priority: Priority
) -> tuple[Change, ...]:
    """What would change if ``candidate`` replaced the rules behind ``stored``."""
    changes: list[Change] = []
    if candidate.queue is not None:
        if candidate.queue != stored.queue:
            changes.append(
                Change("queue", stored.queue, candidate.queue, _rule_applying(candidate, "queue"))
            )
    elif stored.decided_by == DecidedBy.RULE.value:
        changes.append(Change("queue", stored.queue, "?", NO_LONGER_DECIDE))
    if candidate.priority is not None:
        if candidate.priority.value != stored.priority:
            changes.append(
                Change(
                    "priority",
                    stored.priority,
                    candidate.priority.value,
                    _rule_applying(candidate, "priority"),
                )
            )
    elif stored.rules_matched and stored.priority != default_priority.value:
        changes.append(
            Change("priority", stored.priority, default_priority.value, "no rule sets it")
        )
    before, after = set(stored.escalate), set(candidate.escalate)
    if before != after:
        changes.append(
            Change(
                "escalation",
                "; ".join(sorted(before)) or "none",
                "; ".join(sorted(after)) or "none",
            )
        )
    return tuple(changes)


@dataclass
class ReplayTotals:
    """Counts over one replay."""

    messages: int = 0
    changed: int = 0
    without_decision: int = 0
    unparsed: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    no_longer_decide: int = 0

    def add(self, changes: tuple[Change, ...]) -> None:
        """Count one replayed message with a stored decision and its changes."""
        if changes:
            self.changed += 1
        for change in changes:
            self.changes[change.what] += 1
            if change.why == NO_LONGER_DECIDE:
                self.no_longer_decide += 1

    def lines(self) -> list[str]:
        """The totals in words, one line each."""
        return [
            f"replayed {self.messages} messages: {self.changed} would change",
            (
                f"  queue changes: {self.changes['queue']}"
                f" (of which rules no longer decide: {self.no_longer_decide})"
            ),
            f"  priority changes: {self.changes['priority']}",
            f"  escalation changes: {self.changes['escalation']}",
            f"  without a stored decision: {self.without_decision}",
            f"  with parse errors (replayed as parsed): {self.unparsed}",
        ]
