"""Calendar invitations (issue 12.7): the text is built from the event (RFC 5545, iTIP
RFC 5546), times in the business's time zone, and the .ics is kept as a named attachment."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from triage.mail import parse_message
from triage.mail.calendar import calendar_text

T0 = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
ZONE = "Europe/Budapest"


def ics(method: str, *event_lines: str) -> str:
    head = f"METHOD:{method}\r\n" if method else ""
    body = "\r\n".join(event_lines)
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n{head}"
        f"BEGIN:VEVENT\r\nUID:1@client.example\r\nDTSTAMP:20240514T070000Z\r\n{body}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


MEETING = (
    "SUMMARY:Éves könyvelési egyeztetés",
    "DTSTART:20240521T080000Z",
    "DTEND:20240521T090000Z",
    "LOCATION:Iroda\\, Budapest",
    'ORGANIZER;CN="Kovács Ödön":mailto:odon@client.example',
    "DESCRIPTION:Kérem hozzák a májusi számlákat.",
)


def test_an_invitation_reads_as_text_in_the_business_time_zone():
    text = calendar_text(ics("REQUEST", *MEETING).encode(), ZONE)
    assert text.method == "REQUEST"
    assert text.text.splitlines() == [
        "Meeting invitation: Éves könyvelési egyeztetés",
        "When: Tue 2024-05-21 10:00 - 11:00 (Europe/Budapest)",  # 08:00Z is 10:00 CEST
        "Where: Iroda, Budapest",
        "Organizer: Kovács Ödön <odon@client.example>",
        "Kérem hozzák a májusi számlákat.",
    ]


@pytest.mark.parametrize(
    ("lines", "when"),
    [
        (  # a TZID of another zone
            (
                "DTSTART;TZID=America/New_York:20240521T090000",
                "DTEND;TZID=America/New_York:20240521T100000",
            ),
            "When: Tue 2024-05-21 15:00 - 16:00 (Europe/Budapest)",
        ),
        (  # floating: the business's local time
            ("DTSTART:20240521T100000", "DURATION:PT90M"),
            "When: Tue 2024-05-21 10:00 - 11:30 (Europe/Budapest)",
        ),
        (  # all day, two days (DTEND is exclusive)
            ("DTSTART;VALUE=DATE:20240521", "DTEND;VALUE=DATE:20240523"),
            "When: Tue 2024-05-21 - Wed 2024-05-22 (all day)",
        ),
    ],
)  # fmt: skip
def test_times_of_every_form(lines, when):
    text = calendar_text(ics("REQUEST", "SUMMARY:Egyeztetés", *lines).encode(), ZONE)
    assert when in text.text.splitlines()


def test_a_cancellation_and_a_reply_say_what_they_are():
    cancel = calendar_text(ics("CANCEL", *MEETING, "STATUS:CANCELLED").encode(), ZONE)
    assert cancel.text.startswith("Meeting cancelled: Éves könyvelési egyeztetés")
    reply = calendar_text(
        ics(
            "REPLY",
            *MEETING,
            'ATTENDEE;PARTSTAT=DECLINED;CN="Szabó Éva":mailto:eva@client.example',
        ).encode(),
        ZONE,
    )
    assert reply.text.splitlines()[:2] == [
        "Reply to a meeting invitation: Éves könyvelési egyeztetés",
        "Szabó Éva <eva@client.example> declined",
    ]


def test_broken_calendar_data_is_no_text_and_no_failure():
    assert calendar_text(b"BEGIN:VCALENDAR\r\nthis is not ical", ZONE).text == ""


def message(body: str) -> bytes:
    return (
        "From: Kovacs Odon <odon@client.example>\r\nTo: inbox@example.test\r\n"
        "Subject: Meghívó: Éves egyeztetés\r\nMessage-ID: <inv1@client.example>\r\n"
        f"MIME-Version: 1.0\r\n{body}"
    ).encode()


def test_an_invitation_that_is_the_only_body_fills_the_ticket_text_and_stays_an_ics():
    raw = message(
        "Content-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n"
        + ics("REQUEST", *MEETING)
    )
    parsed = parse_message(raw, received_at=T0, time_zone=ZONE)
    assert "Meeting invitation: Éves könyvelési egyeztetés" in parsed.body_text
    assert "When: Tue 2024-05-21 10:00 - 11:00 (Europe/Budapest)" in parsed.body_text
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("request.ics", "text/calendar")
    ]


def test_an_invitation_beside_text_adds_the_event_and_keeps_the_named_ics():
    raw = message(
        'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        '--m\r\nContent-Type: multipart/alternative; boundary="a"\r\n\r\n'
        "--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nJöjjenek el, kérem.\r\n"
        "--a\r\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n"
        + ics("REQUEST", *MEETING)
        + "--a--\r\n"
        "--m\r\nContent-Type: application/ics; name=meghivo.ics\r\n"
        "Content-Disposition: attachment; filename=meghivo.ics\r\n\r\n"
        + ics("REQUEST", *MEETING)
        + "--m--\r\n"
    )
    parsed = parse_message(raw, received_at=T0, time_zone=ZONE)
    assert parsed.body_text.startswith("Jöjjenek el, kérem.")
    assert parsed.body_text.count("When: Tue 2024-05-21 10:00 - 11:00 (Europe/Budapest)") == 1
    assert sorted(a.filename for a in parsed.attachments) == ["meghivo.ics", "request.ics"]
