"""Business-time arithmetic, property-based (hypothesis).

For any start between 2024 and 2027 and any target, on two calendars (a Budapest
office with split days and Hungarian holidays; a night shift whose hours straddle
midnight and the DST switch hour):

- a deadline is never before the start and always falls inside working hours;
- it grows with the target;
- it is the same computed in one step or two, for hour targets;
- the business time between start and deadline is the target.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.durations import BusinessDuration
from triage.sla import BusinessCalendar

SPLIT = ((time(8), time(12)), (time(13), time(17)))
OFFICE = BusinessCalendar("Europe/Budapest", [SPLIT] * 5 + [(), ()], country="HU")
NIGHT = BusinessCalendar(
    "Europe/Budapest",
    [
        (),
        ((time(9), time(17)),),
        (),
        ((time(0), time(2, 30)), (time(2, 45), time(4))),
        (),
        ((time(22), time.max),),
        ((time(0, 30), time(2, 30)), (time(2, 45), time(3, 30)), (time(23), time.max)),
    ],
)
CALENDARS = pytest.mark.parametrize("cal", [OFFICE, NIGHT], ids=["office", "night-shift"])

starts = st.datetimes(
    min_value=datetime(2024, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(2027, 12, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
hours = st.integers(min_value=1, max_value=60 * 60 * 60).map(lambda s: BusinessDuration(seconds=s))
days = st.integers(min_value=1, max_value=15)

PROPERTY = settings(max_examples=150, deadline=None)


def inside_working_hours(cal: BusinessCalendar, t: datetime, *, start_counts: bool) -> bool:
    day = cal.local_date(t)
    for d in (day - timedelta(days=1), day):
        for s, e in cal.intervals(d):
            if (s <= t if start_counts else s < t) and t <= e:
                return True
    return False


@CALENDARS
@PROPERTY
@given(start=starts, target=hours)
def test_deadline_is_never_before_the_start_and_inside_hours(
    cal: BusinessCalendar, start: datetime, target: BusinessDuration
) -> None:
    due = cal.add(start, target)
    assert due > start
    assert inside_working_hours(cal, due, start_counts=False)


@CALENDARS
@PROPERTY
@given(start=starts, a=hours, b=hours)
def test_deadline_grows_with_the_target(
    cal: BusinessCalendar, start: datetime, a: BusinessDuration, b: BusinessDuration
) -> None:
    small, large = sorted([a, b])
    assert cal.add(start, small) <= cal.add(start, large)
    if small < large:
        assert cal.add(start, small) < cal.add(start, large)


@CALENDARS
@PROPERTY
@given(start=starts, a=hours, b=hours)
def test_one_step_or_two_give_the_same_deadline(
    cal: BusinessCalendar, start: datetime, a: BusinessDuration, b: BusinessDuration
) -> None:
    both = BusinessDuration(seconds=a.seconds + b.seconds)
    assert cal.add(cal.add(start, a), b) == cal.add(start, both)


@CALENDARS
@PROPERTY
@given(start=starts, target=hours)
def test_business_time_to_the_deadline_is_the_target(
    cal: BusinessCalendar, start: datetime, target: BusinessDuration
) -> None:
    due = cal.add(start, target)
    assert cal.elapsed(start, due) == target.seconds
    # and counting back from the deadline finds the same amount
    back = cal.subtract_seconds(due, target.seconds)
    assert cal.elapsed(back, due) == target.seconds
    assert back >= start


@CALENDARS
@PROPERTY
@given(start=starts, n=days, extra=st.integers(min_value=0, max_value=3))
def test_working_days_are_in_hours_and_grow(
    cal: BusinessCalendar, start: datetime, n: int, extra: int
) -> None:
    due = cal.add(start, BusinessDuration(days=n))
    later = cal.add(start, BusinessDuration(days=n + 1 + extra))
    assert due > start
    assert inside_working_hours(cal, due, start_counts=True)
    assert later > due
    # n working days later lies on the n-th working day after the start's (opening) day
    opened = cal.local_date(cal.next_open(start))
    working = 0
    day = opened
    while working < n:
        day += timedelta(days=1)
        working += cal.is_working_day(day)
    assert cal.local_date(due) == day or (
        cal.local_date(due) == day + timedelta(days=1) and cal.intervals(day)[-1][1] == due
    )


@CALENDARS
@PROPERTY
@given(t=starts)
def test_next_open_is_open_and_nothing_is_skipped(cal: BusinessCalendar, t: datetime) -> None:
    opening = cal.next_open(t)
    assert opening >= t
    assert cal.is_open(opening)
    assert cal.elapsed(t, opening) == 0
    assert cal.is_open(t) == (opening == t)


def elapsed_day_by_day(cal: BusinessCalendar, a: datetime, b: datetime) -> float:
    """The working seconds between ``a <= b``, walking every local day between them."""
    total = timedelta(0)
    day, last = cal.local_date(a), cal.local_date(b)
    while day <= last:
        for s, e in cal.intervals(day):
            lo, hi = max(s, a), min(e, b)
            if hi > lo:
                total += hi - lo
        day += timedelta(days=1)
    return total.total_seconds()


@CALENDARS
@PROPERTY
@given(a=starts, b=starts)
def test_elapsed_from_kept_sums_is_the_day_by_day_count(
    cal: BusinessCalendar, a: datetime, b: datetime
) -> None:
    # elapsed() keeps the working time up to each day (the queue asks it 100,000 times):
    # it must give what walking the days gives, in both directions and across years
    low, high = min(a, b), max(a, b)
    expected = elapsed_day_by_day(cal, low, high)
    assert cal.elapsed(low, high) == expected
    assert cal.elapsed(high, low) == -expected
