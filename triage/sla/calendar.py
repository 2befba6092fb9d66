"""The business calendar: when the team works, and business-time arithmetic over it.

Pure: no I/O, no clock. Every datetime given to or returned by
:class:`BusinessCalendar` is timezone-aware; results are in UTC. Working hours
are local wall-clock times in the calendar's IANA zone, so deadlines keep their
local time across daylight-saving changes, while elapsed business time is
counted in real seconds (a working interval that spans a DST switch is one hour
shorter or longer).

Which local dates are working days, in order of precedence:

1. ``open_dates`` (config): working, with that weekday's hours, or the
   :attr:`BusinessCalendar.standard_day` when the weekday has none (a Saturday worked).
2. ``closed_dates`` (config): closed.
3. public holidays of the country (and subdivision) in the ``holidays`` package: closed.
4. weekend days the ``holidays`` package lists as working days in exchange for a
   bridge day (Hungary moves such days by decree): working, with the standard day.
5. otherwise the weekly hours of that weekday; a weekday without hours is closed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from triage.config import CalendarSettings
from triage.durations import BusinessDuration

__all__ = ["BusinessCalendar", "LocalInterval"]

LocalInterval = tuple[time, time]
"""A working interval as local (start, end); an end of ``time.max`` means midnight (24:00)."""

_SEARCH_DAYS = 3 * 366
"""How far ahead (or back) to look for working time before giving up."""

_ONE_DAY = timedelta(days=1)


def _require_aware(t: datetime, what: str) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")


class BusinessCalendar:
    """Working time of a business: IANA zone, weekly hours, holidays and exceptions.

    Args:
        timezone: IANA zone name (``"Europe/Budapest"``) or a ``ZoneInfo``.
        weekly: 7 sequences (Monday first) of local (start, end) intervals, sorted and
            not overlapping, as :meth:`triage.config.BusinessHours.as_weekly` returns.
        country: country code for the ``holidays`` package (``"HU"``); "" for none.
        subdivision: state or province code for that country; "" for none.
        closed_dates: extra closed local dates.
        open_dates: extra working local dates (they win over everything else).

    Raises:
        ValueError: ``weekly`` does not have 7 days, or has no working time at all.
        NotImplementedError: the holidays package does not know ``country`` (or its
            ``subdivision``): raised when a date is first looked up, since the
            holiday set is built then (``triage queue`` of nothing computes no
            deadline and pays nothing; ``[calendar]`` is validated at config load).
    """

    def __init__(
        self,
        timezone: str | ZoneInfo,
        weekly: Sequence[Sequence[LocalInterval]],
        *,
        country: str = "",
        subdivision: str = "",
        closed_dates: Iterable[date] = (),
        open_dates: Iterable[date] = (),
    ) -> None:
        self.zone = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)
        if len(weekly) != 7:
            raise ValueError("weekly hours need 7 days, Monday first")
        self.weekly: tuple[tuple[LocalInterval, ...], ...] = tuple(tuple(d) for d in weekly)
        if not any(self.weekly):
            raise ValueError("the weekly hours have no working time at all")
        self.closed_dates = frozenset(closed_dates)
        self.open_dates = frozenset(open_dates)
        self.country = country
        self.subdivision = subdivision
        self._built: Any = None  # the holidays package's set for country, built on first use
        self._build_lock = threading.Lock()
        self._cache: dict[date, tuple[tuple[datetime, datetime], ...]] = {}
        self._anchor: date | None = None
        self._ahead: list[timedelta] = [timedelta(0)]
        self._behind: list[timedelta] = [timedelta(0)]
        self._sums_lock = threading.Lock()  # the daemon's threads share one calendar

    @classmethod
    def from_settings(cls, settings: CalendarSettings) -> BusinessCalendar:
        """Build the calendar from the ``[calendar]`` config section."""
        return cls(
            settings.timezone,
            settings.hours.as_weekly(),
            country=settings.holidays,
            subdivision=settings.subdivision,
            closed_dates=settings.closed_dates,
            open_dates=settings.open_dates,
        )

    @property
    def standard_day(self) -> tuple[LocalInterval, ...]:
        """The most common non-empty weekly schedule (earliest weekday on a tie).

        Used for extra working days that fall on a day without weekly hours.
        """
        counts = Counter(day for day in self.weekly if day)
        best = max(counts.values())
        return next(day for day in self.weekly if day and counts[day] == best)

    @property
    def _holidays(self) -> Any:
        """The ``holidays`` set of :attr:`country` (None for none), built once on first use."""
        if not self.country:
            return None
        if self._built is None:
            with self._build_lock:
                if self._built is None:
                    import holidays  # noqa: PLC0415 - slow to import and to build

                    self._built = holidays.country_holidays(
                        self.country, subdiv=self.subdivision or None
                    )
        return self._built

    # --- which hours a local date has -------------------------------------------------

    def holiday_name(self, day: date) -> str:
        """The public holiday's name on local ``day``, "" when it is none (or no country)."""
        found = self._holidays
        if found is None:
            return ""
        name = found.get(day)
        return str(name) if name else ""

    def local_hours(self, day: date) -> tuple[LocalInterval, ...]:
        """The working intervals of local date ``day`` (empty when closed)."""
        weekly = self.weekly[day.weekday()]
        if day in self.open_dates:
            return weekly or self.standard_day
        if day in self.closed_dates:
            return ()
        found = self._holidays
        if found is not None:
            if day in found:
                return ()
            # weekend_workdays is newer than some holidays releases we accept
            if day in getattr(found, "weekend_workdays", ()):
                return weekly or self.standard_day
        return weekly

    def intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The working intervals of local date ``day`` as UTC (start, end) pairs.

        Local times that do not exist (the hour skipped in spring) are taken with
        the offset before the switch, as :mod:`zoneinfo` does; an interval that
        shrinks to nothing is dropped.
        """
        cached = self._cache.get(day)
        if cached is not None:
            return cached
        out: list[tuple[datetime, datetime]] = []
        for start, end in self.local_hours(day):
            s = datetime.combine(day, start, tzinfo=self.zone).astimezone(UTC)
            if end == time.max:
                e = datetime.combine(day + _ONE_DAY, time(0), tzinfo=self.zone).astimezone(UTC)
            else:
                e = datetime.combine(day, end, tzinfo=self.zone).astimezone(UTC)
            if e > s:
                out.append((s, e))
        result = tuple(out)
        self._cache[day] = result
        return result

    def is_working_day(self, day: date) -> bool:
        """True when local date ``day`` has working time."""
        return bool(self.intervals(day))

    def local_date(self, t: datetime) -> date:
        """The local calendar date of instant ``t``."""
        return t.astimezone(self.zone).date()

    # --- instants ----------------------------------------------------------------------

    def is_open(self, t: datetime) -> bool:
        """True when instant ``t`` is within working hours (start inclusive, end exclusive)."""
        _require_aware(t, "t")
        t = t.astimezone(UTC)
        return any(s <= t < e for s, e in self.intervals(self.local_date(t)))

    def next_open(self, t: datetime) -> datetime:
        """``t`` itself when open, else the next opening after it (UTC).

        Raises:
            ValueError: no working time within three years.
        """
        _require_aware(t, "t")
        for s, _e in self._forward(t.astimezone(UTC)):
            return s
        raise AssertionError("unreachable")  # pragma: no cover - _forward raises instead

    def _forward(self, t: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals (UTC) ending after ``t``, clipped to start no earlier than ``t``."""
        day = self.local_date(t)
        for _ in range(_SEARCH_DAYS):
            for s, e in self.intervals(day):
                if e > t:
                    yield max(s, t), e
            day += _ONE_DAY
        raise ValueError(f"no working time within {_SEARCH_DAYS} days after {t.isoformat()}")

    def _backward(self, t: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals (UTC) starting before ``t``, latest first, clipped to end by ``t``."""
        day = self.local_date(t)
        for _ in range(_SEARCH_DAYS):
            for s, e in reversed(self.intervals(day)):
                if s < t:
                    yield s, min(e, t)
            day -= _ONE_DAY
        raise ValueError(f"no working time within {_SEARCH_DAYS} days before {t.isoformat()}")

    # --- arithmetic --------------------------------------------------------------------

    def add(self, start: datetime, target: BusinessDuration) -> datetime:
        """The deadline ``target`` business time after ``start`` (UTC).

        ``start`` outside working hours counts from the next opening. The days of
        ``target`` come first: the deadline is the same local time that many working
        days later; when that day's hours differ, the time is moved to the next
        working moment of that day, or back to its closing time when it is later than
        every interval. Then the seconds of ``target`` are counted through working
        intervals; a deadline that uses up an interval exactly is its closing time
        (``"4h"`` from 13:00 is 17:00, not the next morning).

        For targets without days this is exact arithmetic:
        ``add(add(s, a), b) == add(s, a + b)`` and ``elapsed(s, add(s, a)) == a``.

        Raises:
            ValueError: ``start`` is naive, or there is no working time within three years.
        """
        _require_aware(start, "start")
        t = start.astimezone(UTC)
        if target.days > 0:
            t = self._add_days(self.next_open(t), target.days)
            if target.seconds == 0:
                return t
        return self.add_seconds(t, target.seconds)

    def _add_days(self, t: datetime, days: int) -> datetime:
        local = t.astimezone(self.zone)
        day = local.date()
        counted = 0
        for _ in range(_SEARCH_DAYS):
            day += _ONE_DAY
            if self.is_working_day(day):
                counted += 1
                if counted == days:
                    break
        else:
            raise ValueError(f"fewer than {days} working days within {_SEARCH_DAYS} days")
        wanted = datetime.combine(day, local.time(), tzinfo=self.zone).astimezone(UTC)
        intervals = self.intervals(day)
        for s, e in intervals:
            if e > wanted:
                return max(s, wanted)
        return intervals[-1][1]

    def add_seconds(self, start: datetime, seconds: float) -> datetime:
        """The instant ``seconds`` of working time after ``start`` (UTC).

        Zero seconds gives :meth:`next_open`. Raises ValueError for a negative amount.
        """
        _require_aware(start, "start")
        if seconds < 0:
            raise ValueError("business seconds to add cannot be negative")
        remaining = timedelta(seconds=seconds)
        for s, e in self._forward(start.astimezone(UTC)):
            if remaining <= e - s:
                return s + remaining
            remaining -= e - s
        raise AssertionError("unreachable")  # pragma: no cover - _forward raises instead

    def subtract_seconds(self, end: datetime, seconds: float) -> datetime:
        """The latest instant with ``seconds`` of working time between it and ``end`` (UTC).

        The inverse of :meth:`add_seconds` (up to the choice between an interval's
        end and the next one's start). Raises ValueError for a negative amount.
        """
        _require_aware(end, "end")
        if seconds < 0:
            raise ValueError("business seconds to subtract cannot be negative")
        remaining = timedelta(seconds=seconds)
        for s, e in self._backward(end.astimezone(UTC)):
            if remaining <= e - s:
                return e - remaining
            remaining -= e - s
        raise AssertionError("unreachable")  # pragma: no cover - _backward raises instead

    def elapsed(self, start: datetime, end: datetime) -> float:
        """Working seconds between ``start`` and ``end``; negative when ``end`` is earlier.

        Constant time after the first calls: working time up to each local day is
        summed once (per calendar) and kept, so a queue of 100,000 tickets, each
        with its own "overdue by", costs two look-ups per ticket, not a walk over
        the days between.
        """
        _require_aware(start, "start")
        _require_aware(end, "end")
        a, b = start.astimezone(UTC), end.astimezone(UTC)
        if b < a:
            return -self.elapsed(b, a)
        return (self._working_until(b) - self._working_until(a)).total_seconds()

    def _working_until(self, t: datetime) -> timedelta:
        """Working time from the start of an anchor day (the first day asked) to ``t`` (UTC)."""
        day = self.local_date(t)
        within = timedelta(0)
        for s, e in self.intervals(day):
            if t > s:
                within += min(e, t) - s
        return self._before_day(day) + within

    def _before_day(self, day: date) -> timedelta:
        """Working time from the anchor day's start to ``day``'s start (negative before it)."""
        with self._sums_lock:
            return self._before_day_locked(day)

    def _before_day_locked(self, day: date) -> timedelta:
        if self._anchor is None:
            self._anchor = day
        offset = (day - self._anchor).days
        if offset >= 0:
            ahead = self._ahead
            while len(ahead) <= offset:
                done = self._anchor + timedelta(days=len(ahead) - 1)
                ahead.append(ahead[-1] + self._day_total(done))
            return ahead[offset]
        behind = self._behind
        while len(behind) <= -offset:
            before = self._anchor - timedelta(days=len(behind))
            behind.append(behind[-1] - self._day_total(before))
        return behind[-offset]

    def _day_total(self, day: date) -> timedelta:
        total = timedelta(0)
        for s, e in self.intervals(day):
            total += e - s
        return total
