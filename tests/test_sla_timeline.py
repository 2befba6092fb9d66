"""The working timeline (one listing's business-time countdowns) against the calendar."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from triage.sla.calendar import BusinessCalendar
from triage.sla.timeline import WorkingTimeline

OFFICE = [[(time(9), time(12)), (time(13), time(17))]] * 5 + [[], []]
CALENDAR = BusinessCalendar("Europe/Budapest", OFFICE, country="HU")
"""Office hours with a lunch break, Hungarian holidays and two DST switches a year."""

BASE = datetime(2026, 3, 1, tzinfo=UTC)
instants = st.integers(min_value=-500 * 86400, max_value=500 * 86400).map(
    lambda s: BASE + timedelta(seconds=s)
)


@settings(max_examples=300, deadline=None)
@given(st.lists(instants, min_size=2, max_size=12))
def test_differences_are_the_calendars_elapsed_in_any_order_of_questions(
    points: list[datetime],
) -> None:
    # the covered range grows as instants far apart are asked about, in any order;
    # the origin stays put, so every difference is still the calendar's answer
    timeline = WorkingTimeline(CALENDAR)
    origin = timeline.working_at(points[0].timestamp())
    assert origin == 0.0
    for a, b in pairwise(points):
        assert abs(timeline.elapsed(a.timestamp(), b.timestamp()) - CALENDAR.elapsed(a, b)) < 1e-3
    assert timeline.working_at(points[0].timestamp()) == origin


def test_a_weekend_and_a_holiday_add_nothing() -> None:
    timeline = WorkingTimeline(CALENDAR)
    friday_close = datetime(2026, 12, 18, 16, tzinfo=UTC)  # Fri 17:00 CET
    tuesday_open = datetime(2026, 12, 29, 8, tzinfo=UTC)  # Tue 09:00 CET
    # Mon 21 to Wed 23 Dec and Mon 28 work; Thu 24 (Hungary's bridge day) to Sun 27 do not
    got = timeline.elapsed(friday_close.timestamp(), tuesday_open.timestamp())
    assert got == CALENDAR.elapsed(friday_close, tuesday_open)
    assert got == 4 * 7 * 3600
