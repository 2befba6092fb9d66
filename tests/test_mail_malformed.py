"""Faults a tester found with hostile or damaged input, each reproduced on bytes built here:
input that is not mail, CR-only line ends, address lists that lose the real address,
noisy third-party logging, mislabelled Central European charsets, absurd dates."""

from __future__ import annotations

import base64
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from triage.domain import ParseStatus
from triage.mail import parse_message
from triage.mail.html import html_to_text
from triage.mail.parse import NOT_MAIL_ERROR

INTERNALDATE = datetime(2024, 5, 14, 9, 30, 5, tzinfo=UTC)


def message(headers: list[tuple[str, str]], body: bytes = b"Hello.\r\n") -> bytes:
    """CRLF message; header values written as given (str via latin-1, so 8-bit bytes pass)."""
    head = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers)
    return head + b"\r\n" + body


BASE = [
    ("From", "Kovacs Odon <odon@example.com>"),
    ("To", "Support <support@example.org>"),
    ("Subject", "Teszt"),
    ("Date", "Tue, 14 May 2024 09:12:44 +0200"),
    ("Message-ID", "<gen@example.com>"),
    ("MIME-Version", "1.0"),
]


def with_base(**extra: str) -> list[tuple[str, str]]:
    """BASE with fields replaced or added (``Reply_To`` -> ``Reply-To``)."""
    fields = {name.lower(): (name, value) for name, value in BASE}
    for key, value in extra.items():
        name = key.replace("_", "-")
        fields[name.lower()] = (name, value)
    return list(fields.values())


# --- a damaged winmail.dat must not make tnefparse print logging errors ------------------------


DAMAGED_TNEF_SCRIPT = r"""
import base64, logging, sys
logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)  # as the daemon's log setup does
from triage.domain import ParseStatus
from triage.mail import parse_message
from triage.mail.html import html_to_text
from triage.mail.parse import NOT_MAIL_ERROR
blob = b"\x78\x9f\x3e\x22" + b"\x00\x00\x01\x06\x90\x08\x00\xff\xff\xff\x7f" + b"A" * 100
raw = (
    b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
    b'--b\r\nContent-Type: application/ms-tnef; name="winmail.dat"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(blob) + b"--b--\r\n"
)
parsed = parse_message(raw)
print(parsed.parse_status.value, repr(parsed.body_text), [a.filename for a in parsed.attachments])
"""


def test_damaged_tnef_logs_no_logging_error_and_the_message_parses():
    """tnefparse logs 'Invalid TNEF Version %02x%02x%02x%02x' with every byte of the version
    field as an argument: formatting it fails inside the handler, which prints
    '--- Logging error ---' and a traceback to stderr. Run in a fresh interpreter with a
    plain stderr log handler (pytest's own log capture would raise instead of printing)."""
    result = subprocess.run(
        [sys.executable, "-c", DAMAGED_TNEF_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Logging error" not in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip() == "ok 'See the attachment.' ['winmail.dat']"


# --- dates: a four-digit year below 1000 is absurd, not 2000 ---------------------------------


@pytest.mark.parametrize("year", ["0000", "0099", "0999", "00002"])
def test_a_four_digit_year_below_1000_is_absurd_and_the_internaldate_is_used(year):
    raw = message(with_base(Date=f"Mon, 2 Mar {year} 10:00:00 +0100"))
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert parsed.sent_at is None
    assert parsed.received_at == INTERNALDATE
    assert any("unusable Date header" in d for d in parsed.defects)


@pytest.mark.parametrize(
    ("written", "year"),
    [("02", 2002), ("99", 1999), ("124", 2024), ("2024", 2024)],  # RFC 5322 §4.3 obs-year
)
def test_two_and_three_digit_years_are_read_as_rfc_5322_says(written, year):
    raw = message(with_base(Date=f"Sat, 2 Mar {written} 10:00:00 +0100"))
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert parsed.sent_at == datetime(year, 3, 2, 9, 0, tzinfo=UTC)


# --- input that is not mail is an error, routed to the fallback queue ---------------------------


ELF_HEAD = (
    b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x03\x00>\x00\x01\x00\x00\x00"
    b"\xd0a\x00\x00\x00\x00\x00\x00@\x00\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 15
)


@pytest.mark.parametrize(
    "raw",
    [
        ELF_HEAD[:4096],  # the first 4 KB of an executable
        b"hello\x00world\nsome text\x00\x00 more\n",  # a short text blob with NUL bytes
        b"",  # an empty file
        b"\r\n\r\n",
        b"Dear team,\n\nplease pay invoice 42.\n",  # a bare text, no header block
        b"Note: call me back\nTODO: the rest\n\nthanks\n",  # lines that only look like fields
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 200,  # an Outlook .msg (OLE2) file
        b"From someone@example.com Sat Jan  3 01:05:34 1996\n",  # an mbox envelope, nothing else
    ],
)
def test_input_without_any_header_field_is_not_mail(raw):
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert parsed.parse_status is ParseStatus.ERROR
    assert parsed.parse_error == NOT_MAIL_ERROR
    assert parsed.received_at == INTERNALDATE
    assert parsed.size == len(raw)


@pytest.mark.parametrize(
    "head",
    [
        b"Subject: only a subject\r\n",
        b"Received: from a by b; Tue, 14 May 2024 09:12:44 +0200\r\n",
        b"X-Mailer: something\r\n",
        b"Content-Type: text/plain\r\n",
        b"Newsgroups: comp.lang.python\r\n",
        b"mime-version: 1.0\r\n",
    ],
)
def test_one_field_a_message_has_is_enough(head):
    parsed = parse_message(head + b"\r\nbody\r\n", received_at=INTERNALDATE)
    assert parsed.parse_status is ParseStatus.OK, parsed.parse_error
    assert parsed.body_text == "body"


def test_not_mail_that_is_also_too_large_says_first_that_it_is_not_mail():
    raw = b"\x7fELF" + b"\x00" * 5000
    parsed = parse_message(raw, received_at=INTERNALDATE, max_size=1000)
    assert parsed.parse_status is ParseStatus.ERROR
    assert parsed.parse_error.startswith(NOT_MAIL_ERROR + "; message is 5004 bytes")


# --- bare CR line ends ------------------------------------------------------------------------


def _cr_only(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r")


def test_cr_only_line_ends_are_read_as_line_breaks():
    raw = _cr_only(
        message(with_base(Subject="Invoice 42 overdue"), b"Dear team,\r\n\r\nplease pay.\r\n")
    )
    assert b"\n" not in raw
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert parsed.parse_status is ParseStatus.OK, parsed.parse_error
    assert parsed.subject == "Invoice 42 overdue"
    assert parsed.from_ is not None
    assert (parsed.from_.name, parsed.from_.addr) == ("Kovacs Odon", "odon@example.com")
    assert [a.addr for a in parsed.to] == ["support@example.org"]
    assert parsed.message_id == "<gen@example.com>"
    assert parsed.sent_at == datetime(2024, 5, 14, 7, 12, 44, tzinfo=UTC)
    assert parsed.body_text == "Dear team,\n\nplease pay."
    assert "bare CR line ends (no LF): read as line breaks" in parsed.defects
    assert parsed.size == len(raw)


def test_cr_only_multipart_with_folded_header_and_mbox_envelope():
    body = (
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "Kérem a számlát.\r\n".encode()
        + b"--b\r\nContent-Type: application/pdf; name=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(b"%PDF-1.4")
        + b"--b--\r\n"
    )
    head = with_base(
        Subject="a long subject\r\n folded", Content_Type='multipart/mixed;\r\n boundary="b"'
    )
    raw = b"From odon@example.com Tue May 14 09:12:44 2024\r" + _cr_only(message(head, body))
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert parsed.parse_status is ParseStatus.OK, parsed.parse_error
    assert parsed.subject == "a long subject folded"
    assert parsed.body_text == "Kérem a számlát."
    assert [(a.filename, a.size) for a in parsed.attachments] == [("a.pdf", 8)]


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: a\r\r\nFrom: b@example.com\r\r\n\r\r\nbody\r\r\n",  # CR CR LF: not bare-CR lines
        b"Subject: carriage\rreturn inside\r\nFrom: b@example.com\r\n\r\nbody\r\n",
    ],
)
def test_crlf_mail_with_stray_cr_is_not_rewritten(raw):
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert not any("bare CR" in d for d in parsed.defects)
    assert parsed.from_ is not None
    assert parsed.from_.addr == "b@example.com"


# --- address lists: encoded-words are atoms, the real address is never lost --------------------


@pytest.mark.parametrize(
    ("value", "name", "addr"),
    [
        ("Kovacs, Odon <k10@client.example>", "Kovacs, Odon", "k10@client.example"),
        ("K. Smith, PhD <k@x.example>", "K. Smith, PhD", "k@x.example"),
        ("=?UTF-8?Q?M=C3=BCller,_Hans?= <h@x.example>", "Müller, Hans", "h@x.example"),
        ("=?utf-8?Q?Kov=C3=A1cs_[Sales]?= <k@x.example>", "Kovács [Sales]", "k@x.example"),
        ('"Doe, John" <j@x.example>', "Doe, John", "j@x.example"),
        (
            "luriem@alleg.example The Liberalizer (Michael Lurie)",
            "Michael Lurie",
            "luriem@alleg.example",
        ),
        ("paula@nlbbs.example <Paula Stockholm>", "Paula Stockholm", "paula@nlbbs.example"),
        ("alice@example.com <bob@example.com>", "alice@example.com", "bob@example.com"),
        ("MAILER-DAEMON (Mail Delivery System)", "Mail Delivery System", "MAILER-DAEMON"),
    ],
)
def test_from_keeps_the_real_address(value, name, addr):
    parsed = parse_message(message(with_base(From=value)), received_at=INTERNALDATE)
    assert parsed.from_ is not None
    assert (parsed.from_.name, parsed.from_.addr) == (name, addr)


@pytest.mark.parametrize("field", ["From", "Reply-To", "To", "Cc"])
def test_an_encoded_crlf_bcc_in_a_display_name_never_becomes_an_address(field):
    """B25's kind, in an address field: the encoded-word decodes to 'Eve5\\r\\nBcc:
    victim5@evil.example'; parsed after decoding it made the victim the address."""
    value = "=?utf-8?Q?Eve5=0D=0ABcc:_victim5@evil.example?= <eve5@client.example>"
    parsed = parse_message(message(with_base(**{field: value})), received_at=INTERNALDATE)
    found = {
        "From": [parsed.from_] if parsed.from_ else [],
        "Reply-To": list(parsed.reply_to),
        "To": list(parsed.to),
        "Cc": list(parsed.cc),
    }[field]
    assert [a.addr for a in found] == ["eve5@client.example"]
    assert found[0].name == "Eve5 Bcc: victim5@evil.example"  # one line, only a name
    assert parsed.reply_address is not None
    expected = "eve5@client.example" if field in {"From", "Reply-To"} else "odon@example.com"
    assert parsed.reply_address.addr == expected


def test_address_lists_with_unquoted_commas_and_encoded_words_keep_every_address():
    value = (
        "Kovacs, Odon <k@x.example>, =?UTF-8?Q?M=C3=BCller,_Hans?= <h@x.example>, "
        "plain@x.example, Team: a@x.example, b@x.example;, undisclosed-recipients:;"
    )
    parsed = parse_message(message(with_base(To=value, Cc=value)), received_at=INTERNALDATE)
    expected = [
        ("Kovacs, Odon", "k@x.example"),
        ("Müller, Hans", "h@x.example"),
        ("", "plain@x.example"),
        ("", "a@x.example"),
        ("", "b@x.example"),
    ]
    assert [(a.name, a.addr) for a in parsed.to] == expected
    assert [(a.name, a.addr) for a in parsed.cc] == expected


@pytest.mark.parametrize(
    "value",
    [
        "Eve <=?utf-8?Q?victim=40evil.example?=>",
        "<eve@client.example?=>",
        "Eve <eve @client.example>",
        "=?utf-8?B?dmljdGltQGV2aWwuZXhhbXBsZQ==?=",
    ],
)
def test_an_address_with_encoded_word_marks_or_white_space_is_never_valid(value):
    parsed = parse_message(message(with_base(From=value, Reply_To=value)), received_at=INTERNALDATE)
    assert parsed.from_ is None
    assert parsed.reply_to == ()


# --- iso-8859-2 declared, windows-1250 meant; Hungarian under a Western label -----------------

CP1250_TEXT = "„Számla” – ő, Šárka ťž"  # „ ” – at 0x84 0x94 0x96, Š 0x8A, ť 0x9D, ž 0x9E


def _q(text: str, codec: str) -> str:
    """An RFC 2047 Q encoded-word of ``text``'s bytes in ``codec``, labelled as given later."""
    return "".join(
        chr(b) if chr(b).isalnum() and b < 0x80 else "_" if b == 0x20 else f"={b:02X}"
        for b in text.encode(codec)
    )


def test_iso_8859_2_body_and_subject_with_windows_1250_bytes_are_read_as_windows_1250():
    raw = message(
        with_base(
            Subject=f"=?iso-8859-2?Q?{_q(CP1250_TEXT, 'cp1250')}?=",
            Content_Type="text/plain; charset=iso-8859-2",
            Content_Transfer_Encoding="8bit",
        ),
        CP1250_TEXT.encode("cp1250") + b"\r\n",
    )
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert parsed.subject == CP1250_TEXT
    assert parsed.body_text == CP1250_TEXT
    assert not any("\x80" <= ch <= "\x9f" for ch in parsed.body_text)


def test_an_8bit_header_under_an_iso_8859_2_default_is_read_as_windows_1250():
    raw = message(with_base(Subject=CP1250_TEXT.encode("cp1250").decode("latin-1")))
    parsed = parse_message(raw, received_at=INTERNALDATE, default_charset="iso-8859-2")
    assert parsed.subject == CP1250_TEXT


def test_real_iso_8859_2_is_still_iso_8859_2():
    text = "Šárka ťuká, ą ś ź"  # 0xA9 0xBB 0xB1 0xB6 0xBC: other letters in windows-1250
    raw = message(
        with_base(Content_Type="text/plain; charset=iso-8859-2"), text.encode("iso-8859-2")
    )
    assert parse_message(raw, received_at=INTERNALDATE).body_text == text


@pytest.mark.parametrize(
    ("written", "label"),
    [
        ("Sürgős", "iso-8859-1"),
        ("ÁRVÍZTŰRŐ TÜKÖRFÚRÓGÉP", "windows-1252"),
        ("Kérem, küldjék el a számlát, sürgős, köszönöm: Kovács Ödön", "iso-8859-1"),
    ],
)
def test_hungarian_under_a_western_label_gets_its_o_and_u_double_acute_back(written, label):
    raw = message(
        with_base(
            Subject=f"=?{label}?Q?{_q(written, 'cp1250')}?=",
            Content_Type=f"text/plain; charset={label}",
        ),
        written.encode("cp1250"),
    )
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert parsed.subject == written
    assert parsed.body_text == written
    assert parsed.charset_fallback


@pytest.mark.parametrize(
    "text",
    ["Põe o relatório", "Dispõe de relatório", "Le café est sûr", "Où est le café sûr?"],
)
def test_portuguese_and_french_o_and_u_are_left_alone(text):
    raw = message(
        with_base(
            Subject=f"=?iso-8859-1?Q?{_q(text, 'latin-1')}?=",
            Content_Type="text/plain; charset=iso-8859-1",
        ),
        text.encode("latin-1"),
    )
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert parsed.subject == text
    assert parsed.body_text == text
    assert not parsed.charset_fallback


# --- HTML nested deeper than libxml2's default limit -----------------------------------------


def test_html_nested_300_deep_keeps_the_text_after_the_deep_part():
    html = (
        "<p>Top</p>"
        + "<blockquote>" * 300
        + "deep"
        + "</blockquote>" * 300
        + "<p>Please pay invoice 42 by Friday</p>"
    )
    assert html_to_text(html) == ("Top\ndeep\nPlease pay invoice 42 by Friday", "")


def test_html_nested_beyond_what_the_renderer_can_walk_falls_back_to_stripped_tags():
    html = "<p>Top</p>" + "<div>" * 5000 + "deep" + "</div>" * 5000 + "<p>Pay invoice 42</p>"
    raw = message(with_base(Content_Type="text/html; charset=utf-8"), html.encode())
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert parsed.parse_status is ParseStatus.OK
    assert parsed.body_text.split() == ["Top", "deep", "Pay", "invoice", "42"]
    assert any("HTML conversion failed" in d for d in parsed.defects)


def test_c1_control_characters_never_reach_the_body() -> None:
    """U+009B is the 8-bit CSI: printed to a terminal it starts an escape sequence."""
    from triage.mail import parse_message  # noqa: PLC0415

    raw = (
        "From: a@client.example\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nPay \u009b31m now \u0085 please\r\n"
    ).encode()
    body = parse_message(raw).body_text
    assert "Pay" in body
    assert "please" in body
    assert not any("\x80" <= c <= "\x9f" for c in body)


def test_show_output_drops_controls_and_bidi_overrides_but_keeps_lines() -> None:
    from triage.cli.tickets_cmd import terminal_safe  # noqa: PLC0415

    shown = terminal_safe("Invoice \u202efdp.exe\u202c\n\tline 2 \x1b[31mred\u009b2J")
    assert shown == "Invoice fdp.exe\n\tline 2 [31mred2J"


def test_the_queue_table_keeps_bidi_overrides_off_the_terminal() -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from triage.cli.tables import plain_table  # noqa: PLC0415
    from triage.tickets.queue import QueueRow  # noqa: PLC0415

    row = QueueRow(
        ticket_id=1,
        ref=1001,
        queue="billing",
        priority="normal",
        status="new",
        subject="bidi \u202esubj\u202c \u200f",
        client_addr="c@client.example",
        client_name="Name \u202eeman\u202c",
        assignee=None,
        decided_by="rule",
        tags=(),
        received_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
        due_at=None,
        due_kind=None,
        breached=False,
        due_text="",
    )
    table = plain_table([row])
    assert "bidi subj" in table
    assert not {"\u202e", "\u202c", "\u200f"} & set(table)


# --- white space before the first header field (issue 12.3) -----------------------------------


@pytest.mark.parametrize(
    ("lead", "defect"),
    [
        (b" \r\n", "1 blank line(s) before the first header field: skipped"),
        (b"\t\r\n", "1 blank line(s) before the first header field: skipped"),
        (b"\r\n", "1 blank line(s) before the first header field: skipped"),
        (b"\r\n \r\n\r\n", "3 blank line(s) before the first header field: skipped"),
        (b"   ", "white space before the first header field: skipped"),
        (b"\xef\xbb\xbf", "a UTF-8 byte order mark before the first header field: skipped"),
        (
            b"\xef\xbb\xbf\r\n",
            "a UTF-8 byte order mark and 1 blank line(s) before the first header field: skipped",
        ),
    ],
)
def test_white_space_before_the_first_field_is_skipped_and_every_field_read(lead, defect):
    """Python's email reads a white-space-only first line as a continuation and keeps the
    rest; an empty first line or an indented first field it does not read at all. Here
    every field is read, From included, and the defect is recorded."""
    raw = lead + message(with_base(Subject="Invoice 42 overdue"), b"Please pay.\r\n")
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert parsed.parse_status is ParseStatus.OK, parsed.parse_error
    assert parsed.subject == "Invoice 42 overdue"
    assert parsed.from_ is not None
    assert parsed.from_.addr == "odon@example.com"
    assert parsed.message_id == "<gen@example.com>"
    assert parsed.body_text == "Please pay."
    assert defect in parsed.defects


def test_white_space_first_line_after_an_mbox_envelope_and_with_lf_line_ends():
    raw = b"From odon@example.com Tue May 14 09:12:44 2024\n \n" + message(
        with_base(Subject="Hello")
    ).replace(b"\r\n", b"\n")
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert parsed.parse_status is ParseStatus.OK, parsed.parse_error
    assert parsed.subject == "Hello"
    assert parsed.from_ is not None


@pytest.mark.parametrize(
    "raw",
    [
        b"\r\n\r\nDear team,\r\nplease pay.\r\n",
        b"  \r\nNote: call me back\r\n\r\nthanks\r\n",
        b"\xef\xbb\xbfDear team,\r\n",
        b"\r\n \t \r\n",
    ],
)
def test_white_space_before_text_without_fields_is_still_not_mail(raw):
    parsed = parse_message(raw, received_at=INTERNALDATE)
    assert parsed.parse_status is ParseStatus.ERROR
    assert parsed.parse_error == NOT_MAIL_ERROR
