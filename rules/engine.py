"""The interpreter: a compiled rule set and the one loop that applies it to a message.

Like GNU Mailman's chain runner, the loop is small and the policy is data: for
each rule in file order, test its condition; on a hit, record why (the reasons
are worked out only for rules that matched) and apply its actions:

- ``queue``: the first rule that sets one keeps it; later ones are noted as overridden.
- ``priority``: the first one sets it; later rules may only raise it.
- ``tags``, ``escalate``: accumulate. ``no_ack``: any rule suppresses the acknowledgment.
- ``ack_template``, ``assign``: the first rule that sets one keeps it.
- ``stop``: no later rule runs.

Evaluation is pure and bounded: field values are cut to the limits in
:mod:`rules.text`, and regular expressions run on RE2 (linear time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rules.conditions import Check, compile_condition
from rules.fields import MessageView, SlotTable
from rules.model import Rule, RuleDecision, RuleHit
from triage.domain import PRIORITIES, InboundMessage, Priority
from triage.errors import RuleFileError

__all__ = ["RuleSet"]


class RuleSet:
    """Rules compiled for evaluation, in order.

    Args:
        rules: evaluated in this order; names must be unique.
        timezone: IANA zone for ``received.weekday`` / ``received.time``
            (``[calendar] timezone``).
        lists: named lists for ``in_list`` (``[lists]`` in the config); a list a
            rule names but this mapping lacks is empty.
        names_checked: whether queue and list names were checked against a
            config when loading (``triage rules check`` without a config does not).

    Raises:
        RuleFileError: duplicate names, an unknown time zone, or a condition that
            does not compile (the loader reports these per file and rule first).
    """

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        *,
        timezone: str = "UTC",
        lists: Mapping[str, Sequence[str]] | None = None,
        names_checked: bool = True,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.timezone = timezone
        self.lists: Mapping[str, Sequence[str]] = dict(lists or {})
        self.names_checked = names_checked
        problems: list[str] = []
        try:
            self._zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise RuleFileError([f"unknown time zone {timezone!r}"]) from None
        seen: set[str] = set()
        self._slots = SlotTable()
        checks: list[Check] = []
        for rule in self.rules:
            where = f"{rule.source}: " if rule.source else ""
            if rule.name in seen:
                problems.append(f"{where}rule '{rule.name}': a rule with this name comes earlier")
            seen.add(rule.name)
            try:
                checks.append(
                    compile_condition(
                        rule.condition, slots=self._slots, lists=self.lists, zone_name=timezone
                    )
                )
            except (ValueError, TypeError) as exc:
                problems.append(f"{where}rule '{rule.name}': {exc}")
        if problems:
            raise RuleFileError(problems)
        self._slots.finish()
        self._compiled: tuple[tuple[Rule, Check], ...] = tuple(zip(self.rules, checks, strict=True))
        segments: list[list[tuple[int, Callable[[MessageView], bool]]]] = [[]]
        for position, (rule, check) in enumerate(self._compiled):
            segments[-1].append((position, check.test))
            if rule.actions.stop:
                segments.append([])
        self._segments = tuple(tuple(segment) for segment in segments if segment)

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def names(self) -> tuple[str, ...]:
        """The rule names, in evaluation order."""
        return tuple(rule.name for rule in self.rules)

    def evaluate(self, message: InboundMessage) -> RuleDecision:
        """Apply the rules to ``message`` and return what they decided, with reasons.

        Pure: no I/O, no clock (``received_at`` is the message's own time). Never
        raises for any message content.
        """
        view = MessageView(message, self._zone, self._slots.fillers)
        outcome = _Outcome()
        compiled = self._compiled
        for segment in self._segments:
            # The fast path: which rules of this segment match. A segment ends at a
            # rule with `stop`, so only its last rule can end the evaluation.
            matched = [i for i, test in segment if test(view)]
            for position in matched:
                rule, check = compiled[position]
                outcome.apply(rule, check.reasons(view))
                if rule.actions.stop:
                    if position < len(compiled) - 1:
                        outcome.stopped_by = rule.name
                    return outcome.decision()
        return outcome.decision()


_RANK = {priority: priority.rank for priority in PRIORITIES}
"""Priority -> rank (0 = urgent), looked up once per hit."""


class _Outcome:
    """The decision being built by one evaluation: the actions' precedence lives here."""

    __slots__ = (
        "ack_template",
        "assign_rule",
        "assignee",
        "escalate",
        "hits",
        "priority",
        "queue",
        "queue_rule",
        "stopped_by",
        "suppress_ack",
        "tags",
        "template_rule",
    )

    def __init__(self) -> None:
        self.queue: str | None = None
        self.queue_rule = ""
        self.priority: Priority | None = None
        self.tags: dict[str, None] = {}
        self.escalate: list[str] = []
        self.suppress_ack = False
        self.ack_template: str | None = None
        self.template_rule = ""
        self.assignee: str | None = None
        self.assign_rule = ""
        self.hits: list[RuleHit] = []
        self.stopped_by: str | None = None

    def apply(self, rule: Rule, reasons: list[str]) -> None:
        """Apply ``rule``'s actions under the precedence rules and record the hit."""
        actions = rule.actions
        applied: list[str] = []
        overridden: list[str] = []
        if actions.queue is not None:
            if self.queue is None:
                self.queue, self.queue_rule = actions.queue, rule.name
                applied.append(f"queue {actions.queue}")
            elif actions.queue != self.queue:
                overridden.append(
                    f"queue {actions.queue} not applied:"
                    f" rule '{self.queue_rule}' already chose {self.queue}"
                )
        if actions.priority is not None:
            if self.priority is None or _RANK[actions.priority] < _RANK[self.priority]:
                self.priority = actions.priority
                applied.append(f"priority {actions.priority.value}")
            elif actions.priority != self.priority:
                overridden.append(
                    f"priority {actions.priority.value} not applied: it is already"
                    f" {self.priority.value} and rules only raise it"
                )
        new_tags = [t for t in actions.tags if t not in self.tags]
        if new_tags:
            self.tags.update(dict.fromkeys(new_tags))
            applied.append(("tag " if len(new_tags) == 1 else "tags ") + ", ".join(new_tags))
        if actions.escalate is not None:
            self.escalate.append(f"rule '{rule.name}': {actions.escalate}")
            applied.append(f"escalate to owners ({actions.escalate})")
        if actions.no_ack:
            if not self.suppress_ack:
                applied.append("no acknowledgment")
            self.suppress_ack = True
        if actions.ack_template is not None:
            if self.ack_template is None:
                self.ack_template, self.template_rule = actions.ack_template, rule.name
                applied.append(f"acknowledgment template {actions.ack_template}")
            elif actions.ack_template != self.ack_template:
                overridden.append(
                    f"acknowledgment template {actions.ack_template} not applied:"
                    f" rule '{self.template_rule}' already chose {self.ack_template}"
                )
        if actions.assign is not None:
            if self.assignee is None:
                self.assignee, self.assign_rule = actions.assign, rule.name
                applied.append(f"assign to {actions.assign}")
            elif actions.assign != self.assignee:
                overridden.append(
                    f"assignment to {actions.assign} not applied:"
                    f" rule '{self.assign_rule}' already assigned {self.assignee}"
                )
        self.hits.append(
            RuleHit(
                rule=rule.name,
                reasons=tuple(reasons),
                applied=tuple(applied),
                overridden=tuple(overridden),
            )
        )

    def decision(self) -> RuleDecision:
        """The finished decision."""
        return RuleDecision(
            queue=self.queue,
            priority=self.priority,
            tags=tuple(self.tags),
            escalate=tuple(self.escalate),
            suppress_ack=self.suppress_ack,
            ack_template=self.ack_template,
            assignee=self.assignee,
            hits=tuple(self.hits),
            stopped_by=self.stopped_by,
        )
