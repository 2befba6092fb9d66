"""Comparing a candidate rule set's decisions with the decisions stored for past mail.

Pure: ``triage rules test`` reads the stored decisions and messages, and this
module says what would change. A stored decision came from a rule, the model or
the fallback queue (``decided_by``); the candidate rules only decide a queue
when one of them sets it, so:

- candidate sets a queue that differs from the stored one: the queue changes;
- candidate sets no queue, stored was decided by a rule: "rules no longer decide"
  (the model or the fallback would, which replay cannot know);
- candidate sets no queue, stored was decided by the model or fallback: unchanged.

Per rule (:class:`RuleAccuracy`): how often the rule that chose a queue agrees with
what is known of the right queue: a later correction of the ticket (an assistant
moved it: the truth), else the classifier when it is confident (an estimate). So
owners see which rule costs accuracy.

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

__all__ = ["Change", "ReplayTotals", "RuleAccuracy", "StoredDecision", "compare", "deciding_rule"]

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


def deciding_rule(candidate: RuleDecision) -> str | None:
    """The name of the rule whose queue ``candidate`` took, None when no rule set one."""
    if candidate.queue is None:
        return None
    for hit in candidate.hits:
        if any(a.startswith("queue") for a in hit.applied):
            return hit.rule
    return None


@dataclass
class _RuleCounts:
    decided: int = 0
    corrected: int = 0
    corrected_agree: int = 0
    model: int = 0
    model_agree: int = 0

    @property
    def checked(self) -> int:
        return self.corrected + self.model

    @property
    def agree(self) -> int:
        return self.corrected_agree + self.model_agree


@dataclass
class RuleAccuracy:
    """Per rule: the queues it chose, checked against corrections and a confident model.

    A message counts once per rule, for the rule that chose its queue: against its
    correction when an assistant corrected the ticket (``triage move``), else against
    the classifier's answer when that reaches the routing threshold, else unchecked.
    """

    rules: dict[str, _RuleCounts] = field(default_factory=dict)

    def add(
        self,
        rule: str,
        queue: str,
        *,
        corrected: str | None = None,
        model: tuple[str, float] | None = None,
        threshold: float = 1.0,
    ) -> None:
        """Count one message whose queue ``rule`` chose as ``queue``.

        Args:
            corrected: the queue an assistant corrected the ticket to, if any.
            model: the classifier's (label, confidence) for the message, if any.
            threshold: the confidence from which the model's answer is counted.
        """
        counts = self.rules.setdefault(rule, _RuleCounts())
        counts.decided += 1
        if corrected is not None:
            counts.corrected += 1
            counts.corrected_agree += corrected == queue
        elif model is not None and model[1] >= threshold:
            counts.model += 1
            counts.model_agree += model[0] == queue

    def lines(self) -> list[str]:
        """One line per rule that chose a queue, least accurate first."""
        if not self.rules:
            return ["per-rule accuracy: no rule chose a queue"]
        heading = (
            "per-rule accuracy (the queue a rule chose, against later corrections, else the"
            " model when confident):"
        )
        out = [heading]

        def key(item: tuple[str, _RuleCounts]) -> tuple[float, str]:
            counts = item[1]
            return (counts.agree / counts.checked if counts.checked else 2.0, item[0])

        for name, c in sorted(self.rules.items(), key=key):
            share = f"{c.agree / c.checked:.2f}" if c.checked else "-"
            out.append(
                f"  {name}: chose {c.decided}; agrees {share}"
                f" (corrections: {c.corrected_agree} of {c.corrected} agree;"
                f" confident model: {c.model_agree} of {c.model} agree;"
                f" unchecked: {c.decided - c.checked})"
            )
        return out
