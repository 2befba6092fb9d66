"""What ``triage rules test`` says per rule, and the shape of one change it prints. Pure.

``triage rules test`` replays the whole decision over stored mail
(:mod:`triage.handling.replay` compares it with the stored one). Per rule
(:class:`RuleAccuracy`): how often the rule that chose a queue agrees with what is
known of the right queue: a later correction of the ticket (an assistant moved it:
the truth), else the classifier when it is confident (an estimate). So owners see
which rule costs accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rules.model import RuleDecision

__all__ = ["Change", "RuleAccuracy", "deciding_rule"]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: ``what`` is ``action``, ``queue``, ``priority``, ``escalation``
    or ``acknowledgment``.

    Attributes:
        before: the stored value in words.
        after: the replayed value in words.
        why: what decides the replayed value (a rule's sentence, the model, ...), or "".
    """

    what: str
    before: str
    after: str
    why: str = ""

    def __str__(self) -> str:
        text = f"{self.what}: {self.before} -> {self.after}"
        return f"{text}  ({self.why})" if self.why else text


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
