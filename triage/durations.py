"""Durations written in config: wall-clock ("90s", "5m", "1h") and business ("4h", "2d").

Pure parsing; no I/O. Units: ``s`` seconds, ``m`` minutes, ``h`` hours, ``d`` days,
``w`` weeks (wall-clock only). Parts may be combined: ``"1h30m"``, ``"1d4h"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["BusinessDuration", "parse_business_duration", "parse_seconds"]

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parts(text: str) -> list[tuple[float, str]]:
    compact = text.strip()
    if not compact:
        raise ValueError("empty duration")
    pos = 0
    parts: list[tuple[float, str]] = []
    for match in _PART.finditer(compact):
        if compact[pos : match.start()].strip():
            break
        parts.append((float(match.group(1)), match.group(2).lower()))
        pos = match.end()
    if not parts or compact[pos:].strip():
        raise ValueError(
            f"{text!r} is not a duration; write a number and a unit, e.g. '90s', '5m', '4h', '2d'"
        )
    return parts


def parse_seconds(value: str | float) -> float:
    """Parse a wall-clock duration into seconds (float).

    A bare number is seconds. Raises ValueError with a readable message on bad input
    or a negative value.
    """
    if isinstance(value, bool):
        raise ValueError("a duration cannot be true/false")  # noqa: TRY004 - a config value error
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        seconds = sum(n * _UNIT_SECONDS[u] for n, u in _parts(value))
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


@dataclass(frozen=True, slots=True, order=True)
class BusinessDuration:
    """An SLA target in business time.

    Attributes:
        days: whole working days (a day is one working day of the calendar, of
            whatever length; the deadline is the same local time that many working
            days later).
        seconds: working seconds on top of the days (``"4h"`` is 14,400 working seconds).
    """

    days: int = 0
    seconds: int = 0

    def __str__(self) -> str:
        out = []
        if self.days:
            out.append(f"{self.days}d")
        hours, rest = divmod(self.seconds, 3600)
        minutes, secs = divmod(rest, 60)
        if hours:
            out.append(f"{hours}h")
        if minutes:
            out.append(f"{minutes}m")
        if secs:
            out.append(f"{secs}s")
        return "".join(out) or "0s"


def parse_business_duration(value: str) -> BusinessDuration:
    """Parse an SLA target such as ``"4h"``, ``"30m"``, ``"2d"`` or ``"1d4h"``.

    ``d`` counts working days; ``s``/``m``/``h`` count working time. Weeks are
    refused (say ``5d``). Raises ValueError on bad input.
    """
    days = 0
    seconds = 0.0
    for number, unit in _parts(value):
        if unit == "w":
            raise ValueError("weeks are not a business duration; write working days, e.g. '5d'")
        if unit == "d":
            if number != int(number):
                raise ValueError(
                    "working days must be whole; write hours for the rest, e.g. '1d4h'"
                )
            days += int(number)
        else:
            seconds += number * _UNIT_SECONDS[unit]
    if days == 0 and seconds <= 0:
        raise ValueError("an SLA target must be longer than zero")
    return BusinessDuration(days=days, seconds=round(seconds))
