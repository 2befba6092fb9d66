"""The rule engine's values: conditions, actions, rules, hits and decisions.

All frozen dataclasses, built by :mod:`rules.loader` from rule files (or in code)
and read by :mod:`rules.engine`. A condition is a tree::

    Condition = Match | AllOf | AnyOf | Not | Always

A :class:`Match` tests one field of the message with one operator; the
combinators nest freely. Actions are data too (:class:`Actions`); the engine is
one small loop that applies them in file order and records every hit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from triage.domain import Priority

__all__ = [
    "Actions",
    "AllOf",
    "Always",
    "AnyOf",
    "Condition",
    "Match",
    "Not",
    "Rule",
    "RuleDecision",
    "RuleHit",
]


@dataclass(frozen=True, slots=True)
class Match:
    """One test of one field: ``subject contains 'számla'``.

    Attributes:
        field: a field name from :data:`rules.fields.FIELDS` or ``header.<Name>``.
        operator: one of :data:`rules.conditions.OPERATORS`.
        values: the operator's values, already normalized by the loader: strings for
            text operators (any one may match), the list name for ``in_list``, a
            bool for ``exists``, integers for numbers (bytes, counts), minutes after
            midnight for times, weekday numbers (Monday = 0) for weekdays, and two
            values (low, high) for ``between``.
        ignore_case: text comparison ignores case (default).
        ignore_accents: text comparison ignores diacritics (``szamla`` = ``Számla``).
    """

    field: str
    operator: str
    values: tuple[str | int | bool, ...]
    ignore_case: bool = True
    ignore_accents: bool = False


@dataclass(frozen=True, slots=True)
class AllOf:
    """Matches when every one of ``conditions`` matches (and-ed, evaluated in order)."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Matches when at least one of ``conditions`` matches."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """Matches when ``condition`` does not."""

    condition: Condition


@dataclass(frozen=True, slots=True)
class Always:
    """Matches every message (``when = { always = true }``)."""


Condition = Match | AllOf | AnyOf | Not | Always


@dataclass(frozen=True, slots=True)
class Actions:
    """What a matching rule does. Every field is optional.

    Attributes:
        queue: route to this queue, unless an earlier rule already chose one.
        priority: set the priority; a later rule can only raise it, never lower it.
        tags: added to the ticket (duplicates are dropped, order kept).
        escalate: escalate to the owners at once, with this reason.
        no_ack: send no acknowledgment.
        ack_template: the acknowledgment template's name (first rule to set it wins).
        assign: assign the ticket to this assistant (first rule to set it wins).
        stop: no later rule is evaluated.
    """

    queue: str | None = None
    priority: Priority | None = None
    tags: tuple[str, ...] = ()
    escalate: str | None = None
    no_ack: bool = False
    ack_template: str | None = None
    assign: str | None = None
    stop: bool = False

    def describe(self) -> tuple[str, ...]:
        """The actions in words: ``("queue billing", "priority high", "tag vip")``."""
        parts: list[str] = []
        if self.queue is not None:
            parts.append(f"queue {self.queue}")
        if self.priority is not None:
            parts.append(f"priority {self.priority.value}")
        if self.tags:
            parts.append(("tag " if len(self.tags) == 1 else "tags ") + ", ".join(self.tags))
        if self.escalate is not None:
            parts.append(f"escalate to owners ({self.escalate})")
        if self.no_ack:
            parts.append("no acknowledgment")
        if self.ack_template is not None:
            parts.append(f"acknowledgment template {self.ack_template}")
        if self.assign is not None:
            parts.append(f"assign to {self.assign}")
        if self.stop:
            parts.append("stop")
        return tuple(parts)

    def is_empty(self) -> bool:
        """True when the rule would do nothing at all."""
        return not self.describe()


@dataclass(frozen=True, slots=True)
class Rule:
    """One named rule: when ``condition`` matches, apply ``actions``.

    Attributes:
        name: unique within a rule set; shown in explanations.
        source: the file it came from ("" when built in code).
    """

    name: str
    condition: Condition
    actions: Actions
    description: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule that matched one message, and why.

    Attributes:
        rule: the rule's name.
        reasons: the conditions that made it match, in words
            (``"from domain example.com is in vip_clients"``).
        applied: the actions that took effect (``"queue billing"``).
        overridden: actions that did not, and why
            (``"queue records not applied: rule 'invoice' already chose billing"``).
    """

    rule: str
    reasons: tuple[str, ...]
    applied: tuple[str, ...] = ()
    overridden: tuple[str, ...] = ()

    @property
    def sentence(self) -> str:
        """``rule 'vip-client': from domain example.com is in vip_clients → priority high``."""
        text = f"rule '{self.rule}': " + " and ".join(self.reasons)
        if self.applied:
            text += " → " + ", ".join(self.applied)
        return text


@dataclass(frozen=True, slots=True)
class RuleDecision:
    """What the rules decided for one message. ``None``/empty means "no rule said".

    Attributes:
        queue: the first matching rule's queue; None lets the model or the fallback decide.
        priority: the highest priority any matching rule set; None for the default.
        tags: every tag added, in order, without duplicates.
        escalate: the escalation reasons, each as ``"rule 'NAME': reason"``.
        suppress_ack: some rule said ``no_ack``.
        ack_template: the first template chosen, or None for the default.
        assignee: the first assistant chosen, or None.
        hits: every rule that matched, in evaluation order.
        stopped_by: the rule whose ``stop`` ended evaluation, if any.
    """

    queue: str | None = None
    priority: Priority | None = None
    tags: tuple[str, ...] = ()
    escalate: tuple[str, ...] = ()
    suppress_ack: bool = False
    ack_template: str | None = None
    assignee: str | None = None
    hits: tuple[RuleHit, ...] = field(default=())
    stopped_by: str | None = None

    @property
    def matched(self) -> tuple[str, ...]:
        """Names of the rules that matched, in order (for ``routing_decisions.rules_matched``)."""
        return tuple(hit.rule for hit in self.hits)

    @property
    def explanation(self) -> tuple[str, ...]:
        """Owner-readable sentences: one per hit, then each overridden action.

        e.g. ``("rule 'vip-client': from domain example.com is in vip_clients → priority high",
        "rule 'records': queue records not applied: rule 'invoice' already chose billing")``.
        """
        sentences = [hit.sentence for hit in self.hits]
        sentences.extend(
            f"rule '{hit.rule}': {note}" for hit in self.hits for note in hit.overridden
        )
        if self.stopped_by is not None:
            sentences.append(
                f"rule '{self.stopped_by}' stopped evaluation; later rules did not run"
            )
        return tuple(sentences)
