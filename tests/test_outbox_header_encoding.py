"""Header values of the mail triage sends (issue 12.11): ASCII words stay ASCII, only what
needs it is RFC 2047-encoded, every encoded-word is at most 75 characters, lines at most
78, and decoding gives the text back exactly (RFC-conformant decoders: email.header and
triage's own parser)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.header import decode_header, make_header

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.mail import parse_message
from triage.outbox.compose import build_mail
from triage.outbox.headers import header_safe

NOW = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[qQbB]\?[^?\s]*\?=")


def raw_field(raw: bytes, name: str) -> str:
    """The field as written on the wire (folds kept), without its name."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    match = re.search(rf"^{name}: ([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.MULTILINE)
    assert match is not None, head
    return match.group(1)


def mail(subject: str, name: str = "Iroda", to_name: str = "Kovács Ödön") -> bytes:
    return build_mail(
        message_id="<ack.1042.x@example.test>",
        sender=(name, "inbox@example.test"),
        to=[(to_name, "odon@client.example")],
        subject=subject,
        body="Köszönjük.",
        now=NOW,
        auto_submitted="auto-replied",
    )


def assert_wire_limits(raw: bytes) -> None:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # 7-bit: every header is ASCII
    for line in head.split("\r\n"):
        assert len(line) <= 78, line
        for word in ENCODED_WORD.findall(line):
            assert len(word) <= 75, word


def rfc_decoded(value: str) -> str:
    return str(make_header(decode_header(value.replace("\r\n", ""))))


@pytest.mark.parametrize(
    "subject",
    [
        "Re: [#1042] Számla kérdés – sürgős",
        "Re: [#1042] Invoice 42",
        ("Re: [#1042] " + "Árvíztűrő tükörfúrógép " * 8).strip(),
        "Re: [#1042] " + "ő" * 90,  # one word longer than any encoded-word
        ("Re: [#1042] 发票抬头更正：王喆 " * 4).strip(),
        "Re: [#1042] =?utf-8?q?looks_encoded?= but is not",
        'Re: [#1042] a_b=c?d "quoted" (paren) <angle> x@y; z, w.',
        "Re: [#1042] " + "x" * 120,  # a very long ASCII word
    ],
)
def test_ack_subject_keeps_ascii_words_and_round_trips(subject):
    raw = mail(subject)
    assert_wire_limits(raw)
    value = raw_field(raw, "Subject")
    assert value.startswith("Re: [#1042]")  # visible to people and simple filters
    for word in subject.split():
        if word.isascii() and "=?" not in word and len(word) <= 60:
            assert re.search(rf"(?:^|\s){re.escape(word)}(?:\s|$)", value), word
    assert rfc_decoded(value) == subject
    assert parse_message(raw).subject == subject


@given(
    st.text(
        # U+FEFF left out: the parser reads encoded UTF-8 as utf-8-sig (a BOM is dropped)
        st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\ufeff"),
        max_size=200,
    )
)
@settings(max_examples=300, deadline=None)
def test_any_subject_round_trips_within_the_limits(text):
    subject = header_safe(text) or "(no subject)"
    raw = mail(subject)
    assert_wire_limits(raw)
    assert rfc_decoded(raw_field(raw, "Subject")) == subject
    assert parse_message(raw).subject == subject


@pytest.mark.parametrize(
    "name",
    [
        "Iroda",
        "Iroda Kft.",  # an ASCII word a phrase cannot hold: quoted
        'Smith, "Bob"',
        "Kovács Ödön",
        "Árvíztűrő tükörfúrógép Ügyfélszolgálat és Számlázási Osztály Kft.",  # over 75
        "王喆",
    ],
)
def test_display_names_are_encoded_only_where_needed_and_round_trip(name):
    raw = mail("Re: [#1042] x", name=name, to_name=name)
    assert_wire_limits(raw)
    value = raw_field(raw, "From")
    if name.isascii():
        assert "=?" not in value
    else:
        for word in name.split():
            if re.fullmatch(r"[A-Za-z0-9]+", word):
                assert re.search(rf"(?:^|\s){word}(?:\s|$)", value), word
    parsed = parse_message(raw)
    assert parsed.from_ is not None
    assert parsed.from_.name == name
    assert parsed.from_.addr == "inbox@example.test"
    assert [(a.name, a.addr) for a in parsed.to] == [(name, "odon@client.example")]
    assert rfc_decoded(value).endswith(" <inbox@example.test>")
    assert (
        rfc_decoded(value)
        .replace('"', "")
        .replace("\\", "")
        .startswith(name.replace('"', "").split()[0])
    )
