"""Business time for people: "due in 2h 10m", "overdue by 35m".

Pure. Amounts are business seconds counted by a
:class:`~triage.sla.calendar.BusinessCalendar` (a weekend between now and the
deadline adds nothing).
"""

from __future__ import annotations

from datetime import datetime

from triage.sla.calendar import BusinessCalendar

__all__ = ["business_seconds_left", "describe_due", "describe_left", "format_business_seconds"]


def format_business_seconds(seconds: float) -> str:
    """Hours and minutes of business time, rounded down: ``"2h 10m"``, ``"35m"``, ``"<1m"``.

    Negative amounts are shown by their size.
    """
    minutes = int(abs(seconds) // 60)
    if minutes == 0:
        return "<1m"
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours}h {minutes}m"
    if hours:
        return f"{hours}h"
    return f"{minutes}m"


def business_seconds_left(calendar: BusinessCalendar, due: datetime, now: datetime) -> float:
    """Business seconds from ``now`` to ``due``; negative once ``due`` has passed.

    Both datetimes are timezone-aware.
    """
    if now <= due:
        return calendar.elapsed(now, due)
    return -calendar.elapsed(due, now)


def describe_left(seconds: float, *, overdue: bool) -> str:
    """``"due in 2h 10m"`` or ``"overdue by 35m"`` for an amount of business time."""
    if not overdue:
        return f"due in {format_business_seconds(seconds)}"
    return f"overdue by {format_business_seconds(seconds)}"


def describe_due(calendar: BusinessCalendar, due: datetime, now: datetime) -> str:
    """``"due in 2h 10m"`` before ``due``, ``"overdue by 35m"`` after it (business time).

    Both datetimes are timezone-aware.
    """
    return describe_left(business_seconds_left(calendar, due, now), overdue=now > due)
