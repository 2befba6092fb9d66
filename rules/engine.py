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

from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rules.conditions import Check, compile_condition
from rules.fields import MessageView, SlotTable
from rules.model import Rule, RuleDecision, RuleHit
from triage.domain import InboundMessage, Priority
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
        self._checks = tuple(checks)
        self._compiled = tuple(
            (rule, check.test, check) for rule, check in zip(self.rules, checks, strict=True)
        )

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
        queue: str | None = None
        queue_rule = ""
        priority: Priority | None = None
        tags: dict[str, None] = {}
        escalate: list[str] = []
        suppress_ack = False
        ack_template: str | None = None
        template_rule = ""
        assignee: str | None = None
        assign_rule = ""
        hits: list[RuleHit] = []
        stopped_by: str | None = None
        last = len(self._compiled) - 1
        for position, (rule, test, check) in enumerate(self._compiled):
            if not test(view):
                continue
            actions = rule.actions
            applied: list[str] = []
            overridden: list[str] = []
            if actions.queue is not None:
                if queue is None:
                    queue, queue_rule = actions.queue, rule.name
                    applied.append(f"queue {queue}")
                elif actions.queue != queue:
                    overridden.append(
                        f"queue {actions.queue} not applied:"
                        f" rule '{queue_rule}' already chose {queue}"
                    )
            if actions.priority is not None:
                if priority is None or actions.priority.rank < priority.rank:
                    priority = actions.priority
                    applied.append(f"priority {priority.value}")
                elif actions.priority != priority:
                    overridden.append(
                        f"priority {actions.priority.value} not applied: it is already"
                        f" {priority.value} and rules only raise it"
                    )
            new_tags = [t for t in actions.tags if t not in tags]
            if new_tags:
                tags.update(dict.fromkeys(new_tags))
                applied.append(("tag " if len(new_tags) == 1 else "tags ") + ", ".join(new_tags))
            if actions.escalate is not None:
                escalate.append(f"rule '{rule.name}': {actions.escalate}")
                applied.append(f"escalate to owners ({actions.escalate})")
            if actions.no_ack:
                if not suppress_ack:
                    applied.append("no acknowledgment")
                suppress_ack = True
            if actions.ack_template is not None:
                if ack_template is None:
                    ack_template, template_rule = actions.ack_template, rule.name
                    applied.append(f"acknowledgment template {ack_template}")
                elif actions.ack_template != ack_template:
                    overridden.append(
                        f"acknowledgment template {actions.ack_template} not applied:"
                        f" rule '{template_rule}' already chose {ack_template}"
                    )
            if actions.assign is not None:
                if assignee is None:
                    assignee, assign_rule = actions.assign, rule.name
                    applied.append(f"assign to {assignee}")
                elif actions.assign != assignee:
                    overridden.append(
                        f"assignment to {actions.assign} not applied:"
                        f" rule '{assign_rule}' already assigned {assignee}"
                    )
            hits.append(
                RuleHit(
                    rule=rule.name,
                    reasons=tuple(check.reasons(view)),
                    applied=tuple(applied),
                    overridden=tuple(overridden),
                )
            )
            if actions.stop:
                if position < last:
                    stopped_by = rule.name
                break
        return RuleDecision(
            queue=queue,
            priority=priority,
            tags=tuple(tags),
            escalate=tuple(escalate),
            suppress_ack=suppress_ack,
            ack_template=ack_template,
            assignee=assignee,
            hits=tuple(hits),
            stopped_by=stopped_by,
        )
