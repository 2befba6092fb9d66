"""Dates and durations as people read them, in English and Hungarian. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["format_business_duration", "format_duration", "format_local", "to_local"]

_HU_MONTHS = (
    "január", "február", "március", "április", "május", "június",
    "július", "augusztus", "szeptember", "október", "november", "december",
)  # fmt: skip
_HU_DAYS = ("hétfő", "kedd", "szerda", "csütörtök", "péntek", "szombat", "vasárnap")
_EN_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_EN_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def to_local(moment: datetime, timezone: str) -> datetime:
    """``moment`` (timezone-aware) in the IANA zone ``timezone``.

    Raises ValueError for a naive datetime.
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give a timezone-aware one")
    return moment.astimezone(ZoneInfo(timezone))


def format_local(moment: datetime, timezone: str, language: str) -> str:
    """A local date and time for a reader, e.g. for 2024-05-14 13:00 UTC in Europe/Budapest.

    - ``hu``: ``2024. május 14. (kedd) 15:00``
    - ``en`` and any other language: ``Tuesday 14 May 2024, 15:00 CEST``
    """
    local = to_local(moment, timezone)
    if language == "hu":
        return (
            f"{local.year}. {_HU_MONTHS[local.month - 1]} {local.day}."
            f" ({_HU_DAYS[local.weekday()]}) {local:%H:%M}"
        )
    zone = local.tzname() or timezone
    return (
        f"{_EN_DAYS[local.weekday()]} {local.day} {_EN_MONTHS[local.month - 1]}"
        f" {local.year}, {local:%H:%M} {zone}"
    )


def format_duration(delta: timedelta | float, language: str) -> str:
    """A wall-clock duration rounded down to minutes: ``2 d 3 h``, ``1 h 35 min``, ``12 min``.

    Hungarian: ``2 nap 3 óra``, ``1 óra 35 perc``. Negative values are shown as
    their size. Under a minute: ``less than a minute`` / ``kevesebb mint egy perc``.
    """
    seconds = abs(delta.total_seconds() if isinstance(delta, timedelta) else float(delta))
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    units = ("nap", "óra", "perc") if language == "hu" else ("d", "h", "min")
    parts = []
    if days:
        parts.append(f"{days} {units[0]}")
    if hours:
        parts.append(f"{hours} {units[1]}")
    if mins and not days:
        parts.append(f"{mins} {units[2]}")
    if not parts:
        return "kevesebb mint egy perc" if language == "hu" else "less than a minute"
    return " ".join(parts)


def format_business_duration(seconds: float, language: str) -> str:
    """Working time, in hours and minutes rounded down: ``26 h 5 min``, ``35 min``.

    ``seconds`` are business seconds (e.g. from
    :meth:`~triage.sla.calendar.BusinessCalendar.elapsed`), so they are never
    shown as days: a working day is not 24 hours. Hungarian: ``26 óra 5 perc``.
    Negative values are shown as their size. Under a minute: ``less than a
    minute`` / ``kevesebb mint egy perc``.
    """
    minutes = int(abs(seconds) // 60)
    hours, mins = divmod(minutes, 60)
    units = ("óra", "perc") if language == "hu" else ("h", "min")
    parts = []
    if hours:
        parts.append(f"{hours} {units[0]}")
    if mins:
        parts.append(f"{mins} {units[1]}")
    if not parts:
        return "kevesebb mint egy perc" if language == "hu" else "less than a minute"
    return " ".join(parts)
