"""Unit tests of the parser's pieces: charsets, header fields, MIME structure, attachments,
language, and the never-raise boundary."""

from __future__ import annotations

import base64
import hashlib

import pytest

from triage.domain import MessageKind, ParseStatus
from triage.mail import parse_message
from triage.mail.charset import decode_text, normalize_charset
from triage.mail.headers import TextDecoder, split_header_block


def message(headers: str, body: bytes = b"Hello.\r\n") -> bytes:
    return headers.replace("\n", "\r\n").encode("utf-8") + b"\r\n" + body


HEAD = (
    "From: A <a@example.com>\nTo: b@example.org\nSubject: s\nMessage-ID: <m@x>\nMIME-Version: 1.0\n"
)


# --- charsets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("gb2312", "gb18030"),
        ("GBK", "gb18030"),
        ('"windows-1250"', "cp1250"),
        ("latin2", "iso8859-2"),
        ("iso-8859-1", "cp1252"),
        ("utf-8*hu", "utf-8"),
        ("x-unknown", None),
        ("", None),
        (None, None),
        ("base64", None),
        ("zlib", None),
        ("unicode_escape", None),
        ("x" * 200, None),
    ],
)
def test_charset_labels_are_normalized_to_usable_supersets(label, codec):
    assert normalize_charset(label) == codec


def test_declared_single_byte_label_on_utf8_bytes_is_a_mislabel():
    result = decode_text("Grüße – ő".encode(), "iso-8859-1")
    assert result.text == "Grüße – ő"
    assert result.fallback


def test_mostly_utf8_with_a_stray_legacy_byte_keeps_both():
    data = "Számla összege: ".encode() + "ő".encode("cp1250") + " – rendben".encode()
    result = decode_text(data, "utf-8")
    assert result.text == "Számla összege: ő – rendben"
    assert result.fallback


def test_declared_utf16_is_honoured_even_for_ascii_text():
    assert decode_text("Hello ő".encode("utf-16"), "utf-16").text == "Hello ő"


def test_no_decoding_ever_inserts_replacement_characters():
    for data in (bytes(range(256)), b"\x81\x8d\x8f\x90\x9d" * 3, b"\xff\xfe\xfd"):
        for label in ("utf-8", "us-ascii", "x-unknown", None, "windows-1250", "gb2312"):
            assert "\ufffd" not in decode_text(data, label).text


# --- header fields ------------------------------------------------------------------------------


def test_header_block_unfolds_and_finds_the_body():
    data = b"Subject: one\r\n two\r\nX-A: 1\r\n\r\nbody"
    block = split_header_block(data)
    assert block.get("subject") == b"one two"
    assert block.get("SUBJECT") == b"one two"
    assert data[block.body_offset :] == b"body"


def test_a_missing_separator_line_starts_the_body_and_is_a_defect():
    block = split_header_block(b"Subject: x\r\nthis is body text\r\n")
    assert block.get("subject") == b"x"
    assert block.defects
    parsed = parse_message(b"Subject: x\r\nthis is body text\r\n")
    assert parsed.body_text == "this is body text"


def test_addresses_are_parsed_before_names_are_decoded():
    name = base64.b64encode("Kovács, Ödön".encode()).decode()
    decoder = TextDecoder()
    addresses = decoder.addresses(
        [f"=?utf-8?B?{name}?= <odon@example.com>, b@example.org".encode()]
    )
    assert [(a.name, a.addr) for a in addresses] == [
        ("Kovács, Ödön", "odon@example.com"),
        ("", "b@example.org"),
    ]


def test_undecodable_encoded_words_are_kept_as_written():
    decoder = TextDecoder()
    assert decoder.text(b"=?utf-8?B?!!!?= ok") == "=?utf-8?B?!!!?= ok"


def test_headers_are_all_kept_decoded_and_in_order():
    raw = message(HEAD + "X-Custom: =?utf-8?Q?=C5=91?=\nReceived: a\nReceived: b\n")
    parsed = parse_message(raw)
    assert parsed.header("x-custom") == "ő"
    assert parsed.header_all("Received") == ("a", "b")
    assert [name for name, _v in parsed.headers][:2] == ["From", "To"]


def test_threading_fields_are_read():
    raw = message(
        HEAD + "In-Reply-To: Your message of Tuesday <parent@x>\nReferences: <a@x>\n <b@x> <a@x>\n"
    )
    parsed = parse_message(raw)
    assert parsed.in_reply_to == "<parent@x>"
    assert parsed.references == ("<a@x>", "<b@x>")


# --- structure and attachments ------------------------------------------------------------


def test_attachments_carry_decoded_name_type_size_and_hash():
    pdf = b"%PDF-1.4 fake"
    rfc2231 = "filename*=utf-8''%C3%81raj%C3%A1nlat%20m%C3%A1jus.pdf"
    body = (
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; "
        + rfc2231.encode()
        + b"\r\n\r\n"
        + base64.encodebytes(pdf)
        + b'--b\r\nContent-Type: image/png; name="=?utf-8?Q?k=C3=A9p.png?="\r\n\r\nPNG\r\n'
        b'--b\r\nContent-Type: text/plain; name="notes.txt"\r\n\r\nnotes\r\n'
        b"--b--\r\n"
    )
    raw = message(HEAD + 'Content-Type: multipart/mixed; boundary="b"\n', body)
    parsed = parse_message(raw)
    assert parsed.body_text == "See attached."
    assert [(a.filename, a.content_type, a.size) for a in parsed.attachments] == [
        ("Árajánlat május.pdf", "application/pdf", len(pdf)),
        ("kép.png", "image/png", 3),
        ("notes.txt", "text/plain", 5),
    ]
    assert parsed.attachments[0].sha256 == hashlib.sha256(pdf).hexdigest()


def test_inline_text_parts_of_a_mixed_message_are_all_body():
    body = (
        b"--b\r\nContent-Type: text/plain\r\n\r\nFirst.\r\n"
        b"--b\r\nContent-Type: image/jpeg\r\nContent-Disposition: inline\r\n\r\nJPG\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nSecond.\r\n--b--\r\n"
    )
    parsed = parse_message(message(HEAD + 'Content-Type: multipart/mixed; boundary="b"\n', body))
    assert parsed.body_text == "First.\n\nSecond."
    assert [a.content_type for a in parsed.attachments] == ["image/jpeg"]


def test_multipart_without_closing_delimiter_or_boundary_still_yields_text():
    unclosed = message(
        HEAD + 'Content-Type: multipart/mixed; boundary="b"\n', b"--b\r\n\r\nunclosed\r\n"
    )
    assert parse_message(unclosed).body_text == "unclosed"
    no_boundary = message(HEAD + "Content-Type: multipart/mixed\n", b"just text\r\n")
    assert parse_message(no_boundary).body_text == "just text"


def test_format_flowed_text_is_unwrapped():
    body = b"This line is \r\nflowed.\r\n> quoted \r\n> flowed\r\n-- \r\nsig\r\n"
    raw = message(HEAD + "Content-Type: text/plain; charset=utf-8; format=flowed\n", body)
    parsed = parse_message(raw)
    assert parsed.body_text == "This line is flowed."
    assert parsed.quoted_text == "> quoted flowed"


def test_an_mbox_envelope_line_is_skipped():
    parsed = parse_message(b"From someone@example.com Tue May 14 09:12:44 2024\n" + message(HEAD))
    assert parsed.subject == "s"
    assert parsed.message_id == "<m@x>"


# --- language -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Tisztelt Ügyfélszolgálat! A májusi számlán szereplő összeg hibásnak tűnik.", "hu"),
        ("Dear support team, the amount on the May invoice looks wrong to me.", "en"),
        ("Sehr geehrte Damen und Herren, die Rechnung für Mai ist leider fehlerhaft.", "de"),
        ("Bonjour, le montant de la facture de mai me semble incorrect.", "fr"),
        ("Hola, el importe de la factura de mayo parece incorrecto.", "es"),
        ("Olá, o valor da fatura de maio parece estar errado.", "pt"),
        ("ok", ""),
    ],
)
def test_language_is_detected(text, code):
    raw = message(HEAD + "Content-Type: text/plain; charset=utf-8\n", text.encode())
    assert parse_message(raw).language == code


# --- the never-raise boundary ---------------------------------------------------------------------


def test_a_failing_stage_is_recorded_not_raised(monkeypatch):
    """A fault no real input triggers today (a bug in a stage), simulated to test the boundary."""
    import triage.mail.parse as parse_module  # noqa: PLC0415

    def broken(*_args, **_kwargs):
        raise RuntimeError("stage exploded")

    monkeypatch.setattr(parse_module, "extract_body", broken)
    raw = message(HEAD)
    parsed = parse_message(raw, scope="INBOX/1/2")
    assert parsed.parse_status is ParseStatus.ERROR
    assert parsed.parse_error == "RuntimeError: stage exploded"
    assert parsed.message_id == "<m@x>"
    assert parsed.subject == "s"
    assert parsed.from_ is not None
    assert parsed.size == len(raw)


def test_empty_and_garbage_input_give_a_usable_value_marked_not_mail():
    for raw in (b"", b"\x00" * 10, b"\r\n\r\n", b"::::", b"--\r\n--"):
        parsed = parse_message(raw)
        assert parsed.message_id_synthetic
        assert parsed.kind is MessageKind.NORMAL
        assert parsed.parse_status is ParseStatus.ERROR
        assert parsed.parse_error == "no header fields: not an email message"
