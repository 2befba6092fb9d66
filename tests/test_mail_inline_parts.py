"""Inline parts (issue 12.8): images the HTML shows through ``cid:`` are kept apart from
attachments, with their Content-ID and a name, and rules never count them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from rules import parse_rules
from triage.mail import parse_message

T0 = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40).decode()
PDF = base64.b64encode(b"%PDF-1.4 invoice").decode()


def part(content_type: str, body: str, *headers: str) -> str:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"Content-Type: {content_type}\r\n{head}\r\n{body}\r\n"


def multipart(subtype: str, boundary: str, *parts: str, params: str = "") -> str:
    inner = "".join(f"--{boundary}\r\n{p}" for p in parts)
    return (
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"{params}\r\n\r\n'
        f"{inner}--{boundary}--\r\n"
    )


def message(body: str) -> bytes:
    return (
        "From: Kovacs Odon <odon@client.example>\r\nTo: inbox@example.test\r\n"
        "Subject: Hibás számla\r\nMessage-ID: <m1@client.example>\r\nMIME-Version: 1.0\r\n" + body
    ).encode()


def html(*cids: str) -> str:
    images = "".join(f'<img src="cid:{cid}" alt="">' for cid in cids)
    return part("text/html; charset=utf-8", f"<p>Lásd a képet:</p>{images}<p>Ödön</p>")


def image(cid: str, *headers: str) -> str:
    return part(
        "image/png", PNG, f"Content-ID: <{cid}>", "Content-Transfer-Encoding: base64", *headers
    )


PDF_PART = part(
    "application/pdf; name=szamla.pdf",
    PDF,
    "Content-Disposition: attachment; filename=szamla.pdf",
    "Content-Transfer-Encoding: base64",
)


def test_outlook_inline_image_with_name_and_disposition_is_inline_not_an_attachment():
    related = multipart(
        "related",
        "r",
        html("image001.png@01D9A7B2.8C3F5E60"),
        image(
            "image001.png@01D9A7B2.8C3F5E60",
            "Content-Disposition: inline; filename=image001.png",
        ),
        params='; type="text/html"',
    )
    parsed = parse_message(message(multipart("mixed", "m", related, PDF_PART)), received_at=T0)
    assert [a.filename for a in parsed.attachments] == ["szamla.pdf"]
    [inline] = parsed.inline_parts
    assert (inline.filename, inline.content_type, inline.content_id) == (
        "image001.png",
        "image/png",
        "image001.png@01D9A7B2.8C3F5E60",
    )
    assert inline.size == 48
    assert "Lásd a képet" in parsed.body_text


@pytest.mark.parametrize(
    ("cid", "expected"),
    [
        ("part1.06090408.01060107@client.example", "inline-1.png"),  # Thunderbird
        ("image002.jpg@01D9A7B2.8C3F5E60", "image002.jpg"),  # Outlook, no filename
        ("ii_lw3k9x0a0", "inline-1.png"),  # Gmail
    ],
)
def test_a_nameless_inline_image_gets_a_generated_name(cid, expected):
    raw = message(multipart("related", "r", html(cid), image(cid)))
    parsed = parse_message(raw, received_at=T0)
    assert parsed.attachments == ()
    [inline] = parsed.inline_parts
    assert (inline.filename, inline.content_id) == (expected, cid)


def test_a_cid_reference_counts_wherever_the_image_sits_and_however_it_is_marked():
    """A referenced image in multipart/mixed, marked attachment, URL-encoded in the src."""
    alternative = multipart(
        "alternative", "a", part("text/plain", "See the picture."), html("logo%40client.example")
    )
    raw = message(
        multipart(
            "mixed",
            "m",
            alternative,
            image("logo@client.example", "Content-Disposition: attachment; filename=logo.png"),
        )
    )
    parsed = parse_message(raw, received_at=T0)
    assert parsed.attachments == ()
    assert [i.filename for i in parsed.inline_parts] == ["logo.png"]


def test_an_attachment_nothing_refers_to_stays_an_attachment_even_with_a_content_id():
    pdf_with_cid = PDF_PART.replace(
        "Content-Transfer-Encoding", "Content-ID: <pdf@x>\r\nContent-Transfer-Encoding"
    )
    raw = message(multipart("related", "r", html(), pdf_with_cid))
    parsed = parse_message(raw, received_at=T0)
    assert [a.filename for a in parsed.attachments] == ["szamla.pdf"]
    assert parsed.inline_parts == ()


def test_an_unreferenced_image_in_mixed_is_still_an_attachment():
    raw = message(multipart("mixed", "m", part("text/plain", "Photo attached."), image("p@x")))
    parsed = parse_message(raw, received_at=T0)
    assert [a.content_type for a in parsed.attachments] == ["image/png"]
    assert parsed.inline_parts == ()


def test_rules_do_not_count_inline_images_as_attachments():
    raw = message(multipart("related", "r", html("a@x", "b@x"), image("a@x"), image("b@x")))
    parsed = parse_message(raw, received_at=T0)
    assert len(parsed.inline_parts) == 2
    rules = parse_rules(
        "[[rule]]\nname = 'has-attachment'\n"
        "when = { field = 'attachment.count', greater_than = 0 }\nthen = { queue = 'records' }\n"
        "[[rule]]\nname = 'image-attached'\n"
        "when = { field = 'attachment.type', glob = 'image/*' }\nthen = { tags = ['image'] }\n"
    )
    decision = rules.evaluate(parsed)
    assert decision.queue is None
    assert "image" not in decision.tags
