"""Business calendar and deadlines on worked examples: weekends, HU holidays, DST, split days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from support.tickets import BUDAPEST, local, make_policy

from triage.config import CalendarSettings, load_config
from triage.durations import parse_business_duration
from triage.sla import BusinessCalendar, SlaKind, describe_due, format_business_seconds

ROOT = Path(__file__).resolve().parents[1]
SPLIT = ((time(8), time(12)), (time(13), time(17)))
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def hu_calendar(**extra: object) -> BusinessCalendar:
    settings = CalendarSettings.model_validate(
        {
            "timezone": "Europe/Budapest",
            "holidays": "HU",
            "hours": {d: ["08:00-12:00", "13:00-17:00"] for d in WEEKDAYS},
            **extra,
        }
    )
    return BusinessCalendar.from_settings(settings)


CAL = hu_calendar()


def due(start: datetime, target: str, cal: BusinessCalendar = CAL) -> datetime:
    return cal.add(start, parse_business_duration(target)).astimezone(BUDAPEST)


def test_friday_afternoon_mail_with_4h_lands_on_monday() -> None:
    # 30 minutes left on Friday, 3.5 hours on Monday: 08:00-11:30
    assert due(local(2026, 3, 13, 16, 30), "4h") == local(2026, 3, 16, 11, 30)


def test_result_is_utc_and_local_time_is_computed_in_the_business_zone() -> None:
    result = CAL.add(local(2026, 3, 13, 16, 30), parse_business_duration("4h"))
    assert result.tzinfo is UTC
    assert result == datetime(2026, 3, 16, 10, 30, tzinfo=UTC)  # CET = UTC+1


def test_hungarian_public_holiday_is_skipped() -> None:
    # 2026-10-23 (Friday) is a national holiday: Thursday 16:00 + 4h -> Monday 11:00
    assert CAL.holiday_name(date(2026, 10, 23))
    assert due(local(2026, 10, 22, 16, 0), "4h") == local(2026, 10, 26, 11, 0)
    # 2027-03-15 (Monday) is a national holiday: Friday 16:00 + 4h -> Tuesday 11:00
    assert due(local(2027, 3, 12, 16, 0), "4h") == local(2027, 3, 16, 11, 0)


def test_saturday_worked_in_exchange_for_a_bridge_day() -> None:
    # Hungary 2026: Friday 2 January is a day off, Saturday 10 January is worked instead
    assert not CAL.is_working_day(date(2026, 1, 2))
    assert CAL.is_working_day(date(2026, 1, 10))
    assert due(local(2026, 1, 9, 16, 0), "4h") == local(2026, 1, 10, 11, 0)


def test_spring_dst_weekend_keeps_local_times_and_counts_real_hours() -> None:
    # clocks go forward on Sunday 2026-03-29; Friday is CET (+1), Monday CEST (+2)
    start = local(2026, 3, 27, 16, 0)
    result = due(start, "4h")
    assert result == local(2026, 3, 30, 11, 0)
    assert result.utcoffset() == timedelta(hours=2)
    assert CAL.elapsed(start, result) == 4 * 3600


def test_autumn_dst_weekend() -> None:
    # clocks go back on Sunday 2024-10-27
    start = local(2024, 10, 25, 16, 0)
    result = due(start, "4h")
    assert result == local(2024, 10, 28, 11, 0)
    assert result.utcoffset() == timedelta(hours=1)
    assert CAL.elapsed(start, result) == 4 * 3600


def test_dst_day_in_a_round_the_clock_calendar() -> None:
    # open every day, all day: the spring Sunday has 23 hours
    every = [((time(0), time.max),)] * 7
    cal = BusinessCalendar("Europe/Budapest", every)
    start = local(2026, 3, 28, 12, 0)
    assert due(start, "24h", cal) == local(2026, 3, 29, 13, 0)  # 24 real hours
    assert due(start, "1d", cal) == local(2026, 3, 29, 12, 0)  # same local time next day
    assert cal.elapsed(local(2026, 3, 29, 0, 0), local(2026, 3, 30, 0, 0)) == 23 * 3600
    assert cal.elapsed(local(2026, 10, 25, 0, 0), local(2026, 10, 26, 0, 0)) == 25 * 3600


def test_split_day_skips_the_lunch_break() -> None:
    assert due(local(2026, 3, 10, 11, 30), "1h") == local(2026, 3, 10, 13, 30)
    assert due(local(2026, 3, 10, 12, 30), "1h") == local(2026, 3, 10, 14, 0)  # starts 13:00
    # a deadline that uses up the morning exactly is 12:00, not 13:00
    assert due(local(2026, 3, 10, 8, 0), "4h") == local(2026, 3, 10, 12, 0)
    assert due(local(2026, 3, 10, 13, 0), "4h") == local(2026, 3, 10, 17, 0)
    assert due(local(2026, 3, 10, 8, 0), "8h") == local(2026, 3, 10, 17, 0)


def test_mail_after_hours_starts_at_the_next_opening() -> None:
    assert due(local(2026, 3, 10, 20, 0), "30m") == local(2026, 3, 11, 8, 30)
    assert due(local(2026, 3, 10, 6, 0), "30m") == local(2026, 3, 10, 8, 30)
    assert due(local(2026, 3, 14, 10, 0), "30m") == local(2026, 3, 16, 8, 30)  # Saturday


def test_working_days_keep_the_local_time() -> None:
    assert due(local(2026, 3, 13, 16, 30), "2d") == local(2026, 3, 17, 16, 30)
    assert due(local(2026, 3, 13, 16, 30), "1d") == local(2026, 3, 16, 16, 30)
    # after hours: counted from Monday 08:00
    assert due(local(2026, 3, 13, 18, 0), "2d") == local(2026, 3, 18, 8, 0)
    # a day, then two hours: Monday 16:30, then 30m on Monday and 1.5h on Tuesday
    assert due(local(2026, 3, 13, 16, 30), "1d2h") == local(2026, 3, 17, 9, 30)


def test_bridge_day_before_a_holiday_is_closed() -> None:
    # Hungary 2025: Thursday 23 October is a holiday, Friday 24 October a bridge day off
    assert not CAL.is_working_day(date(2025, 10, 24))
    assert CAL.is_working_day(date(2025, 10, 18))  # the Saturday worked for it
    assert due(local(2025, 10, 22, 16, 0), "4h") == local(2025, 10, 27, 11, 0)


def test_working_days_snap_into_a_shorter_day() -> None:
    hours = {d: ["08:00-12:00", "13:00-17:00"] for d in ("mon", "tue", "wed", "thu")}
    cal = BusinessCalendar.from_settings(
        CalendarSettings.model_validate(
            {"timezone": "Europe/Budapest", "hours": {**hours, "fri": ["09:00-15:00"]}}
        )
    )
    # Thursday 16:30 + 1d: Friday closes at 15:00, the deadline is its closing time
    assert due(local(2026, 3, 12, 16, 30), "1d", cal) == local(2026, 3, 13, 15, 0)
    # Thursday 08:30 + 1d: Friday opens at 09:00
    assert due(local(2026, 3, 12, 8, 30), "1d", cal) == local(2026, 3, 13, 9, 0)


def test_closed_and_open_dates_from_config() -> None:
    cal = hu_calendar(closed_dates=[date(2026, 3, 16)], open_dates=[date(2026, 3, 14)])
    assert not cal.is_working_day(date(2026, 3, 16))
    assert cal.is_working_day(date(2026, 3, 14))  # a Saturday, with the standard hours
    assert cal.local_hours(date(2026, 3, 14)) == SPLIT
    assert due(local(2026, 3, 13, 16, 30), "4h", cal) == local(2026, 3, 14, 11, 30)


def test_open_and_next_open() -> None:
    assert CAL.is_open(local(2026, 3, 10, 11, 59))
    assert not CAL.is_open(local(2026, 3, 10, 12, 0))  # the end is not inside
    assert CAL.is_open(local(2026, 3, 10, 13, 0))
    assert CAL.next_open(local(2026, 3, 10, 12, 0)) == local(2026, 3, 10, 13, 0)
    assert CAL.next_open(local(2026, 3, 10, 9, 0)) == local(2026, 3, 10, 9, 0)
    assert CAL.next_open(local(2026, 3, 13, 17, 0)) == local(2026, 3, 16, 8, 0)


def test_elapsed_counts_business_seconds_only() -> None:
    assert CAL.elapsed(local(2026, 3, 13, 16, 0), local(2026, 3, 16, 9, 0)) == 2 * 3600
    assert CAL.elapsed(local(2026, 3, 10, 11, 0), local(2026, 3, 10, 14, 0)) == 2 * 3600
    assert CAL.elapsed(local(2026, 3, 10, 14, 0), local(2026, 3, 10, 11, 0)) == -2 * 3600
    assert CAL.elapsed(local(2026, 3, 14, 9, 0), local(2026, 3, 15, 9, 0)) == 0


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.add(datetime(2026, 3, 10, 9, 0), parse_business_duration("1h"))  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.elapsed(datetime(2026, 3, 10, 9, 0), local(2026, 3, 10, 10))  # noqa: DTZ001


def test_example_config_builds_a_calendar() -> None:
    settings = load_config(ROOT / "config.example.toml")
    cal = BusinessCalendar.from_settings(settings.calendar)
    # the example closes at 16:00 on Fridays
    assert due(local(2026, 3, 13, 15, 30), "1h", cal) == local(2026, 3, 16, 8, 30)


def test_policy_uses_queue_overrides_and_warns_at_the_threshold() -> None:
    policy = make_policy()
    start = local(2026, 3, 9, 8, 0)
    normal = policy.due("scheduling", "normal", SlaKind.FIRST_RESPONSE, start)
    assert normal == local(2026, 3, 9, 12, 0)  # 4h: the whole morning
    urgent_billing = policy.due("billing", "urgent", SlaKind.FIRST_RESPONSE, start)
    assert urgent_billing == local(2026, 3, 9, 8, 30)  # billing's 30m override
    assert policy.due("bulk", "normal", SlaKind.FIRST_RESPONSE, start) is None
    assert normal is not None
    warn = policy.warning_time("scheduling", "normal", SlaKind.FIRST_RESPONSE, start, normal)
    assert warn == local(2026, 3, 9, 11, 0)  # warn_at 0.75 of 4h = 3h
    # after a pause the deadline moved one business hour; so does the warning
    shifted = policy.shift(normal, 3600)
    assert shifted == local(2026, 3, 9, 14, 0)
    moved = policy.warning_time("scheduling", "normal", SlaKind.FIRST_RESPONSE, start, shifted)
    assert moved == local(2026, 3, 9, 13, 0)


def test_warning_of_a_working_days_target() -> None:
    policy = make_policy()
    start = local(2026, 3, 9, 8, 0)  # Monday
    resolution = policy.due("scheduling", "normal", SlaKind.RESOLUTION, start)
    assert resolution == local(2026, 3, 12, 8, 0)  # 3 working days later
    assert resolution is not None
    warn = policy.warning_time("scheduling", "normal", SlaKind.RESOLUTION, start, resolution)
    # 3 days of 8h = 24h; 75% = 18h: Mon 8h + Tue 8h + Wed 2h -> Wed 10:00
    assert warn == local(2026, 3, 11, 10, 0)


def test_humanized_due_in_business_time() -> None:
    now = local(2026, 3, 10, 11, 0)
    assert describe_due(CAL, local(2026, 3, 10, 15, 10), now) == "due in 3h 10m"
    assert describe_due(CAL, local(2026, 3, 10, 10, 25), now) == "overdue by 35m"
    # Friday 16:50 to Monday 09:00: 10m + 1h of business time
    assert describe_due(CAL, local(2026, 3, 16, 9, 0), local(2026, 3, 13, 16, 50)) == (
        "due in 1h 10m"
    )
    assert format_business_seconds(20) == "<1m"
    assert format_business_seconds(2 * 3600) == "2h"
    assert format_business_seconds(2 * 3600 + 600) == "2h 10m"
