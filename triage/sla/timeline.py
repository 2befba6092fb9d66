"""Working time up to any instant, precomputed once for a whole listing.

Pure. :class:`WorkingTimeline` answers the question :meth:`BusinessCalendar.elapsed
<triage.sla.calendar.BusinessCalendar.elapsed>` answers, for many instants in a row
(``triage queue`` at 100,000 tickets: one countdown per ticket), with a binary search
over the working intervals as POSIX seconds instead of a time-zone conversion and
day look-ups per instant. The intervals come from the calendar (its holidays, its
daylight-saving rules), so both always agree.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta

from triage.sla.calendar import BusinessCalendar

__all__ = ["WorkingTimeline"]

_MARGIN_DAYS = 7
"""Days added on each side when the covered range grows (fewer rebuilds)."""


class WorkingTimeline:
    """Working seconds from a fixed origin to any instant (POSIX seconds in, seconds out).

    ``working_at(b) - working_at(a)`` is ``calendar.elapsed(a, b)`` for any two
    instants. The covered local days grow on demand (an instant outside them costs
    one rebuild of the interval lists, at least doubling the span), so a listing
    pays the calendar's work once per day, not once per row.

    Args:
        calendar: the business calendar.
    """

    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar
        self._first: date | None = None
        self._last: date | None = None
        self._lo = 0.0  # POSIX start of the first covered local day
        self._hi = 0.0  # POSIX start of the day after the last covered one
        self._starts: list[float] = []
        self._ends: list[float] = []
        self._before: list[float] = []  # working seconds from the origin to each start
        self._floor = 0.0  # working_at of an instant before the first covered interval
        self._origin: float | None = None

    def working_at(self, epoch: float) -> float:
        """Working seconds from this timeline's origin to ``epoch`` (POSIX seconds).

        Only differences between two answers mean anything; the origin (the first
        instant asked about) stays put when the covered range grows.
        """
        if not self._lo <= epoch < self._hi:
            self._cover(epoch)
        i = bisect_right(self._starts, epoch) - 1
        if i < 0:
            return self._floor
        end = self._ends[i]
        return self._before[i] + ((min(end, epoch)) - self._starts[i])

    def elapsed(self, start: float, end: float) -> float:
        """Working seconds from ``start`` to ``end`` (POSIX seconds); negative when
        ``end`` is earlier. Equal to :meth:`BusinessCalendar.elapsed` of the two instants."""
        return self.working_at(end) - self.working_at(start)

    def _cover(self, epoch: float) -> None:
        if self._origin is None:
            self._origin = epoch
        day = self.calendar.local_date(datetime.fromtimestamp(epoch, UTC))
        first, last = self._first, self._last
        if first is None or last is None:
            first, last = day - timedelta(days=_MARGIN_DAYS), day + timedelta(days=_MARGIN_DAYS)
        else:
            span = (last - first).days + 1
            if day < first:
                first = min(day - timedelta(days=_MARGIN_DAYS), first - timedelta(days=span))
            else:
                last = max(day + timedelta(days=_MARGIN_DAYS), last + timedelta(days=span))
        self._build(first, last)

    def _build(self, first: date, last: date) -> None:
        zone = self.calendar.zone
        starts: list[float] = []
        ends: list[float] = []
        before: list[float] = []
        total = 0.0
        day = first
        while day <= last:
            for s, e in self.calendar.intervals(day):
                a, b = s.timestamp(), e.timestamp()
                starts.append(a)
                ends.append(b)
                before.append(total)
                total += b - a
            day += timedelta(days=1)
        self._first, self._last = first, last
        self._lo = datetime.combine(first, time(0), tzinfo=zone).timestamp()
        self._hi = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone).timestamp()
        self._starts, self._ends, self._before, self._floor = starts, ends, before, 0.0
        # keep the origin where it was: working_at(origin) == 0 after every rebuild
        assert self._origin is not None  # noqa: S101 - set by _cover before the first build
        shift = self.working_at(self._origin)
        self._before = [b - shift for b in before]
        self._floor = -shift
