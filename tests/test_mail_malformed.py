"""Faults a tester found with hostile or damaged input, each reproduced on bytes built here:
input that is not mail, CR-only line ends, address lists that lose the real address,
noisy third-party logging, mislabelled Central European charsets, absurd dates."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from triage.mail import parse_message

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
from triage.mail import parse_message
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
