"""SLA deadlines of a ticket: when each target is due, when to warn, and pauses.

Pure: the SLA policy (config targets per queue and priority) combined with a
:class:`~triage.sla.calendar.BusinessCalendar`. All datetimes are aware; results
are UTC. A deadline is computed in the business's local time (the calendar does
that) and stored in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from triage.config import Settings, SlaTarget
from triage.domain import Priority
from triage.durations import BusinessDuration
from triage.sla.calendar import BusinessCalendar

__all__ = ["Deadline", "SlaKind", "SlaPolicy"]


class SlaKind(StrEnum):
    """The three SLA targets a ticket can have."""

    FIRST_RESPONSE = "first_response"
    """The team's first answer to a new ticket."""
    NEXT_RESPONSE = "next_response"
    """The team's answer to a client's later message."""
    RESOLUTION = "resolution"
    """The ticket solved."""

    @property
    def warning(self) -> str:
        """The escalation kind of this target's warning: ``warning_<target>``."""
        return f"warning_{self.value}"

    @property
    def label(self) -> str:
        """Human name: ``first response``."""
        return self.value.replace("_", " ")


@dataclass(frozen=True, slots=True)
class Deadline:
    """One running SLA target of a ticket.

    Attributes:
        kind: which target.
        start: when this target's clock started (UTC).
        due: when it is due (UTC), already shifted by any paused time.
        warn_at: when the warning is due (UTC): ``warn_at`` of the target's business
            time before ``due``; equal to ``due`` when the policy is unknown.
        cycle: which response cycle (0 for the first); escalations are unique per
            (ticket, kind, cycle).
    """

    kind: SlaKind
    start: datetime
    due: datetime
    warn_at: datetime
    cycle: int = 0

    def breached(self, now: datetime) -> bool:
        """True once ``now`` is past ``due``."""
        return now > self.due


def _pick(target: SlaTarget, kind: SlaKind) -> BusinessDuration:
    if kind is SlaKind.FIRST_RESPONSE:
        return target.first_response
    if kind is SlaKind.NEXT_RESPONSE:
        return target.next_response
    return target.resolution


class SlaPolicy:
    """SLA targets from the config together with the business calendar.

    Args:
        settings: the configuration (``[sla]`` and per-queue overrides in ``[queues]``).
        calendar: the business calendar; built from ``settings.calendar`` when omitted.
    """

    def __init__(self, settings: Settings, calendar: BusinessCalendar | None = None) -> None:
        self.settings = settings
        self.calendar = calendar or BusinessCalendar.from_settings(settings.calendar)

    def target(self, queue: str, priority: str) -> SlaTarget | None:
        """The targets for ``queue`` and ``priority``; None when the queue has no SLA.

        An unknown priority text counts as the configured default priority.
        """
        try:
            prio = Priority(priority)
        except ValueError:
            prio = self.settings.routing.default_priority
        return self.settings.sla_for(queue, prio)

    def duration(self, queue: str, priority: str, kind: SlaKind) -> BusinessDuration | None:
        """The business duration of one target; None when the queue has no SLA."""
        target = self.target(queue, priority)
        if target is None:
            return None
        return _pick(target, kind)

    def due(self, queue: str, priority: str, kind: SlaKind, start: datetime) -> datetime | None:
        """When ``kind`` is due for a clock started at ``start`` (UTC); None without SLA."""
        duration = self.duration(queue, priority, kind)
        if duration is None:
            return None
        return self.calendar.add(start, duration)

    def warning_time(
        self, queue: str, priority: str, kind: SlaKind, start: datetime, due: datetime
    ) -> datetime:
        """When to warn about a deadline ``due`` whose clock started at ``start`` (UTC).

        The warning comes when ``warn_at`` of the target's business time has elapsed,
        i.e. when ``1 - warn_at`` of it remains before ``due``; counting back from
        ``due`` keeps this right after the clock was paused and ``due`` shifted.
        Without a policy (queue without SLA) it is ``due`` itself.
        """
        target = self.target(queue, priority)
        if target is None:
            return due
        duration = _pick(target, kind)
        if duration.days:
            nominal = self.calendar.elapsed(start, self.calendar.add(start, duration))
        else:
            nominal = float(duration.seconds)
        return self.calendar.subtract_seconds(due, (1 - target.warn_at) * nominal)

    def deadline(
        self,
        queue: str,
        priority: str,
        kind: SlaKind,
        *,
        start: datetime,
        due: datetime,
        cycle: int = 0,
    ) -> Deadline:
        """A :class:`Deadline` with its warning time for a stored ``due``."""
        return Deadline(
            kind=kind,
            start=start,
            due=due,
            warn_at=self.warning_time(queue, priority, kind, start, due),
            cycle=cycle,
        )

    def shift(self, due: datetime, paused_seconds: float) -> datetime:
        """``due`` moved later by ``paused_seconds`` of business time (the clock was paused).

        Zero or less leaves ``due`` as it is.
        """
        if paused_seconds <= 0:
            return due
        return self.calendar.add_seconds(due, paused_seconds)
