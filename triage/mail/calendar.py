"""Calendar parts (text/calendar, RFC 5545 / iTIP RFC 5546) as text a person reads.

Pure. An invitation often arrives as a text/calendar part alone or beside a short
text; its summary, times, place and organizer are only in the calendar data. This
module reads it with the ``icalendar`` library and writes, per event::

    Meeting invitation: Éves egyeztetés
    When: Tue 2024-05-21 10:00 - 11:00 (Europe/Budapest)
    Where: Iroda, Budapest
    Organizer: Kovács Ödön <odon@client.example>
    <the description>

The iTIP METHOD says what the mail is (RFC 5546 §1.4): REQUEST an invitation (or an
update), CANCEL a cancellation, REPLY an attendee's answer (accepted, declined,
tentative, from the attendee's PARTSTAT), COUNTER a proposal of another time;
PUBLISH or none an event sent for information. Times with a zone (TZID, or UTC)
are shown in the business's time zone; floating times (no zone, RFC 5545 §3.3.5)
are read as the business's local time; all-day events as dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar

__all__ = ["CalendarText", "calendar_text"]

_WHAT = {
    "REQUEST": "Meeting invitation",
    "CANCEL": "Meeting cancelled",
    "REPLY": "Reply to a meeting invitation",
    "COUNTER": "Counter-proposal for a meeting",
    "DECLINECOUNTER": "Counter-proposal declined",
    "REFRESH": "Request for the latest version of a meeting",
    "ADD": "Meeting occurrences added",
}
_PARTSTAT = {
    "ACCEPTED": "accepted",
    "DECLINED": "declined",
    "TENTATIVE": "tentatively accepted",
    "DELEGATED": "delegated",
    "NEEDS-ACTION": "has not answered",
}
MAX_EVENTS = 20
"""Events described per calendar part (a published calendar can hold thousands)."""


@dataclass(frozen=True, slots=True)
class CalendarText:
    """What a calendar part says.

    Attributes:
        text: the events as text ("" when the data holds no event).
        method: the iTIP METHOD, upper case ("" when none).
    """

    text: str
    method: str


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _when(value: object, zone: ZoneInfo) -> datetime | date | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # floating time: the business's local time
            return value.replace(tzinfo=zone)
        return value.astimezone(zone)
    if isinstance(value, date):
        return value
    return None


def _span(start: datetime | date | None, end: datetime | date | None, zone: ZoneInfo) -> str:
    if start is None:
        return ""
    if not isinstance(start, datetime):  # all-day: DTEND is the day after (RFC 5545 3.6.1)
        last = end - timedelta(days=1) if isinstance(end, date) and end > start else start
        days = f"{start:%a %Y-%m-%d}" + (f" - {last:%a %Y-%m-%d}" if last != start else "")
        return f"{days} (all day)"
    text = f"{start:%a %Y-%m-%d %H:%M}"
    if isinstance(end, datetime):
        text += f" - {end:%H:%M}" if end.date() == start.date() else f" - {end:%a %Y-%m-%d %H:%M}"
    return f"{text} ({zone.key})"


def _person(prop: object) -> str:
    if prop is None:
        return ""
    address = str(prop)
    if address.lower().startswith("mailto:"):
        address = address[7:]
    params = getattr(prop, "params", {})
    name = str(params.get("CN", "")).strip().strip('"')
    return f"{name} <{address}>" if name and address else name or address


def _event(event: object, method: str, zone: ZoneInfo) -> list[str]:
    get = getattr(event, "get", None)
    if get is None:
        return []
    summary = str(get("SUMMARY", "") or "").strip() or "(no title)"
    start = _when(getattr(get("DTSTART"), "dt", None), zone)
    end = _when(getattr(get("DTEND"), "dt", None), zone)
    duration = getattr(get("DURATION"), "dt", None)
    if end is None and isinstance(start, datetime) and isinstance(duration, timedelta):
        end = start + duration
    status = str(get("STATUS", "") or "").upper()
    what = _WHAT.get(method, "Calendar event")
    if status == "CANCELLED" and method != "CANCEL":
        what = "Meeting cancelled"
    lines = [f"{what}: {summary}"]
    if method == "REPLY":
        attendees = get("ATTENDEE")
        for attendee in attendees if isinstance(attendees, list) else [attendees]:
            if attendee is None:
                continue
            state = str(getattr(attendee, "params", {}).get("PARTSTAT", "")).upper()
            lines.append(f"{_person(attendee)} {_PARTSTAT.get(state, state.lower() or 'answered')}")
    when = _span(start, end, zone)
    if when:
        lines.append(f"When: {when}")
    location = str(get("LOCATION", "") or "").strip()
    if location:
        lines.append(f"Where: {location}")
    organizer = _person(get("ORGANIZER"))
    if organizer:
        lines.append(f"Organizer: {organizer}")
    description = str(get("DESCRIPTION", "") or "").strip()
    if description:
        lines.append(description)
    return lines


def calendar_text(data: bytes, time_zone: str) -> CalendarText:
    """The events of an iCalendar object as text, times in ``time_zone`` (IANA name).

    Never raises: unreadable data gives ``CalendarText("", "")``.
    """
    zone = _zone(time_zone)
    try:
        calendar = Calendar.from_ical(data)
    except Exception:  # noqa: BLE001 - any broken calendar is "no text", never a failure
        return CalendarText("", "")
    method = str(calendar.get("METHOD", "") or "").strip().upper()
    blocks: list[str] = []
    try:
        for event in calendar.walk("VEVENT")[:MAX_EVENTS]:
            lines = _event(event, method, zone)
            if lines:
                blocks.append("\n".join(lines))
    except Exception:  # noqa: BLE001, S110 - a broken property keeps what was read before it
        pass
    return CalendarText("\n\n".join(blocks), method)
