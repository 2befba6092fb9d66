"""Hypothesis: random bytes and random MIME trees never make any stage of the parser raise
(not even into its last-resort catch), and what it returns is always storable (no NUL, no
lone surrogate, one-line headers)."""

from __future__ import annotations

import base64
import quopri
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.domain import InboundMessage, ParseStatus
from triage.mail import parse_message
from triage.mail.parse import NOT_MAIL_ERROR

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CHARSETS = [
    "utf-8",
    "iso-8859-2",
    "windows-1250",
    "gb2312",
    "x-unknown",
    "",
    "utf-16",
    "utf-7",
    "koi8-r",
]
CTES = ["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "binary", "bogus"]
TYPES = [
    "text/plain",
    "text/html",
    "application/octet-stream",
    "application/ms-tnef",
    "message/rfc822",
    "message/delivery-status",
    "text/rfc822-headers",
    "image/png",
    "",
]


def check(parsed: InboundMessage, raw: bytes) -> None:
    # the parser's last-resort catch never had to act: no stage raised (input without any
    # header field is an error by design: it is not mail)
    if parsed.parse_status is ParseStatus.ERROR:
        assert parsed.parse_error.startswith(NOT_MAIL_ERROR), parsed.parse_error
    assert parsed.size == len(raw)
    assert parsed.message_id.startswith("<")
    assert parsed.received_at.tzinfo is not None
    texts = [
        parsed.subject,
        parsed.body_text,
        parsed.quoted_text,
        parsed.signature,
        parsed.parse_error,
    ]
    texts += [v for _k, v in parsed.headers]
    texts += [a.filename for a in parsed.attachments]
    if parsed.from_ is not None:
        texts += [parsed.from_.name, parsed.from_.addr]
    for text in texts:
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogates
    for _name, value in parsed.headers:
        assert "\n" not in value
        assert "\r" not in value
    assert "\n" not in parsed.subject


@SETTINGS
@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(raw):
    check(parse_message(raw), raw)


@SETTINGS
@given(
    st.lists(
        st.sampled_from(
            [
                b"From: ",
                b"Subject: ",
                b"Content-Type: multipart/mixed; boundary=",
                b'"b"',
                b"--b",
                b"--b--",
                b"\r\n",
                b"\n",
                b"\r\n\r\n",
                b"=?utf-8?B?",
                b"=?x?Q?=E1",
                b"?=",
                b" ",
                b"\t",
                b"\xff\xfe",
                b"\xc5",
                b"Content-Transfer-Encoding: base64",
                b"charset=",
                b"Date: ",
                b"32 Feb 2024 99:99",
                b"<",
                b">",
                b"@",
                b"Message-ID: ",
                b"=0D=0A",
                b"\x00",
                b"boundary=b",
                b"Content-Type: text/html",
            ]
        ),
        max_size=60,
    )
)
def test_random_header_soup_never_raises(pieces):
    raw = b"".join(pieces)
    check(parse_message(raw), raw)


@st.composite
def leaf(draw) -> bytes:
    ctype = draw(st.sampled_from(TYPES))
    charset = draw(st.sampled_from(CHARSETS))
    cte = draw(st.sampled_from(CTES))
    text = draw(st.text(max_size=200))
    payload = (
        text.encode("utf-8", "surrogatepass")
        if draw(st.booleans())
        else draw(st.binary(max_size=200))
    )
    if cte == "base64" and draw(st.booleans()):
        payload = base64.encodebytes(payload)
    elif cte == "quoted-printable" and draw(st.booleans()):
        payload = quopri.encodestring(payload)
    headers = b""
    if ctype:
        headers += f"Content-Type: {ctype}; charset={charset}\r\n".encode()
    headers += f"Content-Transfer-Encoding: {cte}\r\n".encode()
    if draw(st.booleans()):
        name = draw(st.text(max_size=30)).replace("\r", "").replace("\n", "").replace('"', "")
        headers += (
            b"Content-Disposition: attachment; filename*=utf-8''"
            + name.encode("utf-8", "surrogatepass").hex().encode()
            + b"\r\n"
        )
    return headers + b"\r\n" + payload


def tree(depth: int):
    if depth == 0:
        return leaf()
    return st.one_of(leaf(), multipart(depth))


@st.composite
def multipart(draw, depth: int) -> bytes:
    boundary = draw(st.sampled_from(["b", "b1", "=_x", "a b", "--", "b" * 70]))
    subtype = draw(
        st.sampled_from(["mixed", "alternative", "related", "report", "signed", "digest"])
    )
    kids = draw(st.lists(tree(depth - 1), max_size=4))
    closed = draw(st.booleans())
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + kid + b"\r\n" for kid in kids)
    if closed:
        body += b"--" + boundary.encode() + b"--\r\n"
    head = (
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"; report-type=delivery-status\r\n'
    )
    return head.encode() + b"\r\n" + body


@SETTINGS
@given(
    multipart(4),
    st.text(max_size=80),
    st.sampled_from(
        [b"", b"Auto-Submitted: auto-replied\r\n", b"List-Id: <x.y>\r\nReturn-Path: <>\r\n"]
    ),
)
def test_random_mime_trees_never_raise(body, subject, extra):
    head = (
        b"From: =?utf-8?B?"
        + base64.b64encode(subject.encode("utf-8", "surrogatepass"))
        + b"?= <a@b.c>\r\n"
        b"Subject: " + subject.encode("utf-8", "surrogatepass") + b"\r\n" + extra
    )
    raw = head + body
    parsed = parse_message(raw, received_at=datetime(2024, 5, 14, tzinfo=UTC), max_depth=3)
    check(parsed, raw)
