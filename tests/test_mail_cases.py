"""The parsing cases of ../shared/cases (B01-B25): each file gets the result its README
names, and each kind of fault is tested again on input generated here, so the fix
covers the kind and not the file."""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime

import pytest

from triage.domain import MessageKind, ParseStatus
from triage.mail import parse_message
from triage.mail.parse import UNKNOWN_RECEIVED_AT

pytestmark = pytest.mark.corpus

INTERNALDATE = datetime(2024, 5, 14, 9, 30, 5, tzinfo=UTC)


def case(cases_dir, name: str, **kwargs):
    raw = (cases_dir / name).read_bytes()
    return parse_message(raw, received_at=INTERNALDATE, **kwargs)


def message(headers: dict[str, str] | list[tuple[str, str]], body: bytes = b"Hello.\r\n") -> bytes:
    """A raw message with CRLF line ends; header values are written as given (bytes via latin-1)."""
    items = headers.items() if isinstance(headers, dict) else headers
    head = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in items)
    return head + b"\r\n" + body


BASE = {
    "From": "Kovacs Odon <odon@example.com>",
    "To": "Support <support@example.org>",
    "Subject": "Teszt",
    "Date": "Tue, 14 May 2024 09:12:44 +0200",
    "Message-ID": "<gen@example.com>",
    "MIME-Version": "1.0",
}


def with_base(**extra: str) -> dict[str, str]:
    headers = dict(BASE)
    for key, value in extra.items():
        headers[key.replace("_", "-")] = value
    return headers


# --- B01: windows-1250 HTML-only body ------------------------------------------------------


def test_b01_windows1250_html_only(cases_dir):
    parsed = case(cases_dir, "B01-windows1250-html-only.eml")
    assert parsed.subject == "Számla kérdés – sürgős"
    assert parsed.from_ is not None
    assert parsed.from_.name == "Kovács Ödön"
    assert (
        "A májusi számlán szereplő összeg „hibásnak” tűnik – kérem, ellenőrizzék."
        in parsed.body_text
    )
    assert parsed.kind is MessageKind.NORMAL
    assert not parsed.charset_fallback
    assert "<p>" not in parsed.body_text


@pytest.mark.parametrize(
    ("charset", "text", "cte"),
    [
        ("windows-1250", "Tisztelt Uram! A számla „hibás” – kérem javítsák: 1 200 €.", "8bit"),
        ("windows-1250", "Őszi ünnepek előtt: árvíztűrő tükörfúrógép.", "quoted-printable"),
        ("iso-8859-2", "Árvíztűrő tükörfúrógép, ŐŰ őű.", "base64"),
        ("windows-1252", "Grüße aus Köln – la facture coûte 12 € («urgent»).", "quoted-printable"),
        ("koi8-r", "Здравствуйте, счёт не пришёл.", "8bit"),
    ],
)
def test_declared_legacy_charset_of_an_html_only_body_is_honoured(charset, text, cte):
    encoded = f"<html><body><p>{text}</p></body></html>".encode(charset)
    if cte == "base64":
        body = base64.encodebytes(encoded)
    elif cte == "quoted-printable":
        import quopri  # noqa: PLC0415

        body = quopri.encodestring(encoded)
    else:
        body = encoded
    raw = message(
        with_base(Content_Type=f'text/html; charset="{charset}"', Content_Transfer_Encoding=cte),
        body,
    )
    parsed = parse_message(raw)
    assert text in parsed.body_text
    assert not parsed.charset_fallback


def test_html_charset_declared_only_in_a_meta_tag_is_honoured():
    html = (
        '<html><head><meta charset="windows-1250"></head><body>Hibás a számla – ő ű</body></html>'
    )
    raw = message(with_base(Content_Type="text/html"), html.encode("cp1250"))
    assert parse_message(raw).body_text == "Hibás a számla – ő ű"


# --- B02: iso-8859-2 quoted-printable body --------------------------------------------------


def test_b02_iso8859_2_body(cases_dir):
    parsed = case(cases_dir, "B02-iso8859-2-body.eml")
    assert parsed.subject == "Számla kérdés - sürgős"
    assert "szereplő összeg hibásnak tűnik" in parsed.body_text
    assert "Fizetési határidő: június 15." in parsed.body_text
    assert "õ" not in parsed.body_text
    assert "û" not in parsed.body_text


@pytest.mark.parametrize(
    "charset", ["iso-8859-2", "ISO_8859-2", "latin2", "windows-1250", "cp1250"]
)
@pytest.mark.parametrize("cte", ["quoted-printable", "base64", "8bit"])
def test_hungarian_double_acute_letters_survive_every_legacy_label_and_encoding(charset, cte):
    text = "Fizetési határidő: június 15. Tűzoltó, ŐRSÉG, ŰRLAP, kőfűrész."
    encoded = text.encode("iso-8859-2" if "8859" in charset or "latin" in charset else "cp1250")
    if cte == "base64":
        body = base64.encodebytes(encoded)
    elif cte == "quoted-printable":
        import quopri  # noqa: PLC0415

        body = quopri.encodestring(encoded)
    else:
        body = encoded
    raw = message(
        with_base(Content_Type=f"text/plain; charset={charset}", Content_Transfer_Encoding=cte),
        body,
    )
    parsed = parse_message(raw)
    assert parsed.body_text == text
    assert not parsed.charset_fallback


# --- B04: encoded-words split inside a multi-byte character ---------------------------------


def test_b04_encoded_word_split_inside_multibyte(cases_dir):
    parsed = case(cases_dir, "B04-encoded-word-split-multibyte.eml")
    assert parsed.subject == "Számla kérdés – sürgős, kérem mielőbb válaszoljanak"
    assert parsed.from_ is not None
    assert parsed.from_.name == "Kovács Ődön"
    for _name, value in parsed.headers:
        assert "\ufffd" not in value


def _split_words(data: bytes, cuts: list[int], encoding: str, charset: str = "utf-8") -> str:
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    words = []
    for piece in pieces:
        if encoding == "B":
            words.append(f"=?{charset}?B?{base64.b64encode(piece).decode()}?=")
        else:
            q = "".join(
                chr(b) if chr(b).isalnum() and b < 128 else ("_" if b == 32 else f"={b:02X}")
                for b in piece
            )
            words.append(f"=?{charset}?Q?{q}?=")
    return "\r\n ".join(words)


@pytest.mark.parametrize("encoding", ["B", "Q"])
def test_every_split_point_of_a_multibyte_subject_decodes_whole(encoding):
    text = "Ő – ű 発票 😀 árvíztűrő"
    data = text.encode("utf-8")
    for cut in range(1, len(data)):
        raw = message(with_base(Subject=_split_words(data, [cut], encoding)))
        assert parse_message(raw).subject == text, cut


def test_split_encoded_words_in_a_display_name_and_across_three_words():
    data = "Őrült Űrhajós, Kft.".encode()
    name = _split_words(data, [1, 5, 7], "B")
    raw = message(with_base(From=f"{name} <urhajos@example.com>"))
    parsed = parse_message(raw)
    assert parsed.from_ is not None
    assert parsed.from_.name == "Őrült Űrhajós, Kft."
    assert parsed.from_.addr == "urhajos@example.com"


def test_adjacent_words_of_different_charsets_are_decoded_each_with_its_own():
    latin2 = _split_words("Tűz ".encode("iso-8859-2"), [], "Q", "iso-8859-2")
    utf8 = _split_words("és víz".encode(), [], "B")
    raw = message(with_base(Subject=f"{latin2} {utf8}"))
    assert parse_message(raw).subject == "Tűz és víz"


# --- B06: declared gb2312, bytes need GBK ---------------------------------------------------


def test_b06_gb2312_label_with_gbk_bytes(cases_dir):
    parsed = case(cases_dir, "B06-gb2312-declared-gbk-bytes.eml")
    assert parsed.subject == "发票抬头更正：王喆"
    assert "我的发票抬头应为“王喆”，地址是堃园路 12 号" in parsed.body_text
    assert "\ufffd" not in parsed.body_text


@pytest.mark.parametrize(
    ("label", "codec", "text"),
    [
        ("gb2312", "gb18030", "王喆 堃园路 𠀀"),  # outside GB2312, one outside GBK too
        ("GBK", "gb18030", "镕基 喆 堃"),
        ("euc-kr", "cp949", "똠방각하 펲"),  # Unified Hangul Code beyond KS X 1001
        ("ks_c_5601-1987", "cp949", "똠방각하"),
        ("shift_jis", "cp932", "①髙﨑 ㈱"),  # NEC/IBM extensions of Windows-31J
        ("big5", "big5hkscs", "香港 㗎 嘅"),
        ("iso-8859-1", "cp1252", "“quoted” – 5 €"),  # C1 range means windows-1252
    ],
)
def test_narrow_charset_labels_decode_as_their_superset(label, codec, text):
    data = text.encode(codec)
    word = f"=?{label}?B?{base64.b64encode(data).decode()}?="
    raw = message(
        with_base(Subject=word, Content_Type=f"text/plain; charset={label}"),
        base64.encodebytes(data),
    )
    raw = raw.replace(
        b"MIME-Version: 1.0\r\n", b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.subject == text
    assert parsed.body_text == text
    assert not parsed.charset_fallback


# --- B07: unknown charset label --------------------------------------------------------------


def test_b07_unknown_charset_label(cases_dir):
    parsed = case(cases_dir, "B07-unknown-charset.eml")
    assert parsed.parse_status is ParseStatus.OK
    assert parsed.subject == "Számla kérdés"
    assert "Tisztelt Ügyfélszolgálat!" in parsed.body_text
    assert parsed.charset_fallback


@pytest.mark.parametrize(
    "label", ["x-unknown", "unknown-8bit", "cp-1250-typo", "zlib", "unicode_escape"]
)
def test_unknown_or_unusable_labels_fall_back_to_a_guess_and_are_flagged(label):
    text = "Tisztelt Ügyfélszolgálat! A számlán szereplő összeg hibás, kérem ellenőrizzék."
    word = "=?{}?Q?{}?=".format(label, "".join(f"={b:02X}" for b in "Árvíztűrő".encode("cp1250")))
    raw = message(
        with_base(
            Subject=word,
            Content_Type=f"text/plain; charset={label}",
            Content_Transfer_Encoding="8bit",
        ),
        text.encode("cp1250"),
    )
    parsed = parse_message(raw)
    assert parsed.subject == "Árvíztűrő"
    assert parsed.body_text == text
    assert parsed.charset_fallback


def test_unknown_label_on_utf8_bytes_decodes_as_utf8():
    text = "Ünnepi nyitvatartás – 12 €, 発票"
    raw = message(with_base(Content_Type="text/plain; charset=x-whatever"), text.encode())
    parsed = parse_message(raw)
    assert parsed.body_text == text
    assert parsed.charset_fallback


# --- B08: no charset parameter, 8-bit body ---------------------------------------------------


def test_b08_missing_charset_with_8bit_body(cases_dir):
    parsed = case(cases_dir, "B08-missing-charset-8bit.eml")
    assert parsed.subject == "Számla kérdés - sürgős"
    assert "Tisztelt Ügyfélszolgálat!" in parsed.body_text
    assert "szereplő összeg hibásnak tűnik" in parsed.body_text
    assert parsed.charset_fallback


@pytest.mark.parametrize(
    ("content_type", "codec", "text"),
    [
        ("text/plain", "cp1250", "Kérem, ellenőrizzék a „hibás” tételt – köszönöm."),
        ("text/plain", "utf-8", "Kérem, ellenőrizzék a hibás tételt – köszönöm."),
        ("text/plain; charset=us-ascii", "cp1250", "Árvíztűrő tükörfúrógép"),
        (None, "cp1250", "Üdvözlettel: Kovács Ödön, Győr"),
    ],
)
def test_undeclared_8bit_text_is_guessed_right_and_flagged(content_type, codec, text):
    headers = with_base(Content_Transfer_Encoding="8bit")
    if content_type:
        headers["Content-Type"] = content_type
    parsed = parse_message(message(headers, text.encode(codec)))
    assert parsed.body_text == text
    assert parsed.charset_fallback


def test_the_deployment_default_charset_decides_undeclared_western_text():
    text = "Très cher client, voilà la réponse à votre question."
    raw = message(with_base(Content_Transfer_Encoding="8bit"), text.encode("cp1252"))
    assert parse_message(raw, default_charset="windows-1252").body_text == text
    # the Hungarian default still reads it right: è/à are not Hungarian letters
    assert parse_message(raw).body_text == text


@pytest.mark.parametrize("codec", ["utf-8", "cp1250"])
def test_raw_8bit_bytes_in_headers_are_decoded(codec):
    raw = (
        "From: Kovács Ödön <odon@example.com>\r\nSubject: Sürgős: hibás számla – ő\r\n\r\nx\r\n"
    ).encode(codec)
    parsed = parse_message(raw)
    assert parsed.subject == "Sürgős: hibás számla – ő"
    assert parsed.from_ is not None
    assert parsed.from_.name == "Kovács Ödön"
    assert parsed.charset_fallback is (codec != "utf-8")


# --- B10: TNEF winmail.dat --------------------------------------------------------------------


def test_b10_tnef_body_and_attachment(cases_dir):
    parsed = case(cases_dir, "B10-tnef-winmail-dat.eml")
    assert parsed.subject == "Árajánlat"
    assert "Kérem, nézzék meg a csatolt árajánlatot." in parsed.body_text
    assert [a.filename for a in parsed.attachments] == ["arajanlat.txt"]
    import hashlib  # noqa: PLC0415

    content = "Őszi karbantartás: 120 000 Ft + ÁFA\r\n".encode("cp1250")
    assert parsed.attachments[0].sha256 == hashlib.sha256(content).hexdigest()
    assert parsed.attachments[0].size == len(content)
    assert not parsed.body_missing


def _tnef_object(level: int, name: int, kind: int, data: bytes) -> bytes:
    return (
        struct.pack("<BHHI", level, name, kind, len(data))
        + data
        + struct.pack("<H", sum(data) & 0xFFFF)
    )


def tnef(codepage: int, body: bytes, attachments: list[tuple[bytes, bytes]]) -> bytes:
    """A minimal TNEF stream (MS-OXTNEF §2.1): version, OEM code page, attBody, attachments."""
    out = struct.pack("<IH", 0x223E9F78, 0x0101)
    out += _tnef_object(1, 0x9006, 0x0008, struct.pack("<I", 0x10000))
    out += _tnef_object(1, 0x9007, 0x0006, struct.pack("<II", codepage, 0))
    out += _tnef_object(1, 0x800C, 0x0002, body)
    for title, data in attachments:
        out += _tnef_object(2, 0x9002, 0x0006, b"\xff" * 14)
        out += _tnef_object(2, 0x8010, 0x0001, title + b"\x00")
        out += _tnef_object(2, 0x800F, 0x0006, data)
    return out


def tnef_message(blob: bytes, plain: str = "") -> bytes:
    body = (
        b"--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        + plain.encode()
        + b'\r\n--b\r\nContent-Type: application/ms-tnef; name="winmail.dat"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="winmail.dat"\r\n\r\n'
        + base64.encodebytes(blob)
        + b"--b--\r\n"
    )
    return message(with_base(Content_Type='multipart/mixed; boundary="b"'), body)


@pytest.mark.parametrize(
    ("codepage", "codec", "text", "filename"),
    [
        (1250, "cp1250", "Kérem a mellékelt ajánlatot, ő ű.", "ajánlat.txt"),
        (1252, "cp1252", "Grüße – bitte das Angebot prüfen, 5 €.", "Angebot_für_Köln.txt"),
    ],
)
def test_tnef_body_in_its_code_page_and_attachments_are_recovered(codepage, codec, text, filename):
    blob = tnef(
        codepage,
        text.encode(codec) + b"\x00",
        [(filename.encode(codec), b"payload 1"), (b"b.bin", b"\x00\x01")],
    )
    parsed = parse_message(tnef_message(blob))
    assert parsed.body_text == text
    assert [a.filename for a in parsed.attachments] == [filename, "b.bin"]
    assert [a.size for a in parsed.attachments] == [9, 2]
    assert not parsed.body_missing


def test_an_rtf_only_tnef_body_is_recovered_as_text():
    """Outlook often puts only compressed RTF (PR_RTF_COMPRESSED, MS-OXRTFCP) in winmail.dat."""
    from compressed_rtf import compress  # noqa: PLC0415

    rtf = compress(rb"{\rtf1\ansi\ansicpg1252 Please check the offer.\par Thanks\par }")
    value = struct.pack("<I", len(rtf)) + rtf + b"\0" * (-len(rtf) % 4)
    props = struct.pack("<IHHI", 1, 0x0102, 0x1009, 1) + value
    blob = struct.pack("<IH", 0x223E9F78, 0x0101)
    blob += _tnef_object(1, 0x9007, 0x0006, struct.pack("<II", 1252, 0))
    blob += _tnef_object(1, 0x9003, 0x0006, props)
    parsed = parse_message(tnef_message(blob))
    assert parsed.body_text.split() == ["Please", "check", "the", "offer.", "Thanks"]
    assert not parsed.body_missing


def test_a_text_body_beside_tnef_wins_and_tnef_attachments_are_listed():
    blob = tnef(1250, b"ignored", [(b"a.txt", b"x")])
    parsed = parse_message(tnef_message(blob, plain="The real text."))
    assert parsed.body_text == "The real text."
    assert [a.filename for a in parsed.attachments] == ["a.txt"]


@pytest.mark.parametrize(
    "blob", [b"not tnef at all", b"\x78\x9f\x3e\x22\x01\x00" + b"\xff" * 40, b""]
)
def test_undecodable_tnef_is_kept_and_the_body_marked_missing(blob):
    parsed = parse_message(tnef_message(blob))
    assert parsed.parse_status is ParseStatus.OK
    assert parsed.body_missing
    assert [a.filename for a in parsed.attachments] == ["winmail.dat"]
    assert any("TNEF" in d for d in parsed.defects)


# --- B11: multipart/alternative with only text/html -------------------------------------------


def test_b11_html_only_alternative(cases_dir):
    parsed = case(cases_dir, "B11-html-only-alternative.eml")
    assert parsed.subject == "Nyomtató hiba"
    assert (
        parsed.body_text
        == "Szia!\nA nyomtató nem működik a 3. emeleten, a tálca üres jelzést ad.\n"
        "Szabó Éva\nPénzügy"
    )
    assert "margin" not in parsed.body_text
    assert "x" not in parsed.body_text.split("\n")


@pytest.mark.parametrize(
    "structure",
    ["alternative-html-only", "related-html", "alternative-empty-plain", "html-leaf"],
)
def test_html_only_bodies_become_text_without_style_script_or_title(structure):
    html = (
        b"<html><head><title>Secret Title</title><style>.a{color:red}</style>"
        b"<script>var tracking = 1;</script></head><body><div>First line</div>"
        b"<p>Second line</p><noscript>enable js</noscript></body></html>"
    )
    html_part = b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html + b"\r\n"
    if structure == "html-leaf":
        raw = message(with_base(Content_Type="text/html; charset=utf-8"), html)
    else:
        if structure == "alternative-html-only":
            parts, ctype = [html_part], "multipart/alternative"
        elif structure == "related-html":
            image = b"Content-Type: image/png\r\nContent-ID: <i1>\r\n\r\nPNG\r\n"
            parts, ctype = [html_part, image], "multipart/related"
        else:
            empty_plain = b"Content-Type: text/plain; charset=utf-8\r\n\r\n  \r\n"
            parts, ctype = [empty_plain, html_part], "multipart/alternative"
        body = b"".join(b"--xyz\r\n" + p for p in parts) + b"--xyz--\r\n"
        raw = message(with_base(Content_Type=f'{ctype}; boundary="xyz"'), body)
    parsed = parse_message(raw)
    assert parsed.body_text == "First line\nSecond line"
    for hidden in ("Secret Title", "color", "tracking", "enable js"):
        assert hidden not in parsed.body_text


def test_plain_text_alternative_is_preferred_over_html():
    body = (
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain version\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>HTML version</p>\r\n--b--\r\n"
    )
    raw = message(with_base(Content_Type='multipart/alternative; boundary="b"'), body)
    assert parse_message(raw).body_text == "Plain version"


# --- B13: out-of-office reply -------------------------------------------------------------------


def test_b13_out_of_office_is_an_auto_reply(cases_dir):
    parsed = case(cases_dir, "B13-out-of-office-autoreply.eml")
    assert parsed.subject == "Automatikus válasz: [#4711] Számla kérdés – sürgős"
    assert parsed.kind is MessageKind.AUTO_REPLY
    assert parsed.kind_reason == "Auto-Submitted: auto-replied"
    assert parsed.in_reply_to == "<ack-4711-1@helpdesk.example.org>"


REPLY = {"In-Reply-To": "<ack-1@helpdesk.example.org>"}


@pytest.mark.parametrize(
    "extra",
    [
        {"Auto-Submitted": "auto-generated"},
        {"Auto-Submitted": "auto-replied; owner-email=x@example.com"},
        {"Auto-Submitted": "auto-notified"},
        {"X-Autoreply": "yes"},
        {"X-Autorespond": "Out of office"},
        {"Precedence": "auto_reply"},
        {"X-Auto-Response-Suppress": "All", **REPLY},
        {"X-Auto-Response-Suppress": "DR, OOF, AutoReply", **REPLY},
        {"Subject": "Out of Office: Invoice question"},
        {"Subject": "Automatic reply: [#12] Invoice"},
        {"Subject": "Házon kívül: Számla"},
        {"Subject": "Irodán kívül - szabadság"},
        {"Subject": "AW: Abwesenheitsnotiz: Rechnung"},
        {"Subject": "Réponse automatique : facture"},
        {"Subject": "Respuesta automática: factura"},
        {"Subject": "Resposta automática: fatura"},
    ],
)
def test_auto_reply_signals(extra):
    parsed = parse_message(message({**BASE, **extra}))
    assert parsed.kind is MessageKind.AUTO_REPLY


@pytest.mark.parametrize(
    "extra",
    [
        {"Auto-Submitted": "no"},
        {"X-Autoreply": "no"},
        {"X-Auto-Response-Suppress": "All"},  # set on a new message, not on a reply
        {"Subject": "Question about your out of office policy"},
        {"Subject": "Re: Szabadság igénylés"},
    ],
)
def test_near_misses_are_normal_mail(extra):
    parsed = parse_message(message({**BASE, **extra}))
    assert parsed.kind is MessageKind.NORMAL


# --- B15: delivery status notification ----------------------------------------------------------


def test_b15_dsn_bounce_with_report(cases_dir):
    parsed = case(cases_dir, "B15-dsn-bounce.eml")
    assert parsed.kind is MessageKind.BOUNCE
    assert parsed.kind_reason == "multipart/report; report-type=delivery-status"
    assert parsed.delivery_report is not None
    assert parsed.delivery_report.failed_recipients == ("nincs.ilyen@example.net",)
    assert parsed.delivery_report.status == "5.1.1"
    assert parsed.delivery_report.original_message_id == "<ack-4713-1@helpdesk.example.org>"


def dsn(report_type: str, status_blocks: bytes, returned: bytes, returned_type: str) -> bytes:
    body = (
        b"--r\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--r\r\nContent-Type: message/" + report_type.encode() + b"\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.net\r\n\r\n" + status_blocks + b"\r\n"
        b"--r\r\nContent-Type: "
        + returned_type.encode()
        + b"\r\n\r\n"
        + returned
        + b"\r\n--r--\r\n"
    )
    headers = with_base(
        From="Mail Delivery Subsystem <mailer-daemon@mx.example.net>",
        Subject="Delivery Status Notification (Failure)",
        Content_Type=f'multipart/report; report-type="{report_type}"; boundary="r"',
    )
    return message(headers, body)


def test_dsn_with_several_recipients_reports_only_the_failed_ones():
    blocks = (
        b"Final-Recipient: rfc822; ok-later@example.net\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n"
        b"Original-Recipient: rfc822;first@example.net\r\n"
        b"Final-Recipient: RFC822; <first@example.net>\r\nAction: failed\r\n"
        b"Status: 5.2.2 (mailbox full)\r\n\r\n"
        b"Final-Recipient: rfc822; second@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    )
    returned = (
        b"From: support@example.org\r\nMessage-ID: <ack-99@helpdesk.example.org>\r\n"
        b"Subject: x\r\n\r\nbody\r\n"
    )
    parsed = parse_message(dsn("delivery-status", blocks, returned, "message/rfc822"))
    assert parsed.kind is MessageKind.BOUNCE
    report = parsed.delivery_report
    assert report is not None
    assert report.failed_recipients == ("first@example.net", "second@example.net")
    assert report.status == "5.2.2"
    assert report.original_message_id == "<ack-99@helpdesk.example.org>"
    assert [a.content_type for a in parsed.attachments] == ["message/rfc822"]


def test_global_delivery_status_is_a_bounce_too():
    blocks = (
        "Final-Recipient: utf-8; jános@példa.hu\r\nAction: failed\r\nStatus: 5.1.1\r\n".encode()
    )
    parsed = parse_message(
        dsn("global-delivery-status", blocks, b"Message-ID: <m@x>\r\n", "message/global-headers")
    )
    assert parsed.kind is MessageKind.BOUNCE
    assert parsed.delivery_report is not None
    assert parsed.delivery_report.status == "5.1.1"
    assert parsed.delivery_report.failed_recipients == ("jános@példa.hu",)


def test_a_report_less_bounce_from_mailer_daemon_is_read_loosely():
    body = (
        b"Hi. This is the qmail-send program at mx.example.net.\r\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n"
        b"<gone@example.net>:\r\n"
        b"550 5.1.1 The email account that you tried to reach does not exist.\r\n\r\n"
        b"--- Below this line is a copy of the message.\r\n\r\n"
        b"From: support@example.org\r\nMessage-ID: <ack-7@helpdesk.example.org>\r\n"
    )
    raw = message(
        with_base(
            From="MAILER-DAEMON@mx.example.net", To="support@example.org", Subject="failure notice"
        ),
        body,
    )
    parsed = parse_message(raw)
    assert parsed.kind is MessageKind.BOUNCE
    assert parsed.delivery_report is not None
    assert parsed.delivery_report.failed_recipients == ("gone@example.net",)
    assert parsed.delivery_report.status == "5.1.1"
    assert parsed.delivery_report.original_message_id == "<ack-7@helpdesk.example.org>"


@pytest.mark.parametrize(
    "extra",
    [{"Return-Path": "<>"}, {"Return-Path": "< >"}, {"From": "postmaster@example.net"}],
)
def test_other_bounce_signals(extra):
    assert parse_message(message({**BASE, **extra})).kind is MessageKind.BOUNCE


# --- B16: mailing-list post ---------------------------------------------------------------------


def test_b16_mailing_list_post(cases_dir):
    parsed = case(cases_dir, "B16-mailing-list-post.eml")
    assert parsed.subject == "Májusi hírlevél – újdonságok"
    assert parsed.kind is MessageKind.MAILING_LIST
    assert parsed.list_id == "hirlevel.lists.example.net"


@pytest.mark.parametrize(
    ("extra", "list_id"),
    [
        ({"List-Id": "<support.example.org>"}, "support.example.org"),
        ({"List-Id": "Ügyfelek   <ugyfelek.lists.example.hu>"}, "ugyfelek.lists.example.hu"),
        ({"List-Id": "plain.list.example.com"}, "plain.list.example.com"),
        ({"List-Unsubscribe": "<https://example.com/u?x=1>"}, ""),
        ({"List-Post": "<mailto:l@example.com>"}, ""),
        ({"Precedence": "bulk"}, ""),
        ({"Precedence": "list"}, ""),
        ({"X-Mailing-List": "<l@example.com>"}, ""),
    ],
)
def test_mailing_list_signals(extra, list_id):
    parsed = parse_message(message({**BASE, **extra}))
    assert parsed.kind is MessageKind.MAILING_LIST
    assert parsed.list_id == list_id


# --- B17: no Message-ID ---------------------------------------------------------------------------


def test_b17_messages_without_message_id_stay_distinct(cases_dir):
    a = case(cases_dir, "B17a-no-message-id.eml", scope="INBOX/1738166580/17")
    b = case(cases_dir, "B17b-no-message-id.eml", scope="INBOX/1738166580/18")
    assert "papírelakadást" in a.body_text
    assert "szkenner" in b.body_text
    assert a.message_id_synthetic
    assert b.message_id_synthetic
    assert a.message_id != b.message_id


def test_synthetic_ids_depend_on_the_raw_bytes_and_scope_not_on_from_subject_date():
    headers = {k: v for k, v in BASE.items() if k != "Message-ID"}
    one = message(headers, b"First body.\r\n")
    two = message(headers, b"Second body.\r\n")
    assert parse_message(one).message_id != parse_message(two).message_id
    assert (
        parse_message(one, scope="INBOX/1/5").message_id
        != parse_message(one, scope="INBOX/1/6").message_id
    )
    assert (
        parse_message(one, scope="INBOX/1/5").message_id
        == parse_message(one, scope="INBOX/1/5").message_id
    )
    assert parse_message(one).message_id.startswith("<synthetic.")


@pytest.mark.parametrize("value", ["", "   ", "<>", "not an id", "<@x>", "<abc@>", "< >"])
def test_a_missing_or_unusable_message_id_is_synthesized_and_marked(value):
    parsed = parse_message(message({**BASE, "Message-ID": value}))
    assert parsed.message_id_synthetic
    assert parsed.message_id.startswith("<synthetic.")


def test_a_bare_message_id_is_bracketed():
    parsed = parse_message(message({**BASE, "Message-ID": "abc.123@example.com"}))
    assert parsed.message_id == "<abc.123@example.com>"
    assert not parsed.message_id_synthetic


# --- B19: impossible Date -----------------------------------------------------------------------


def test_b19_invalid_date(cases_dir):
    parsed = case(cases_dir, "B19-invalid-date-value.eml")
    assert parsed.sent_at is None
    assert parsed.received_at == INTERNALDATE
    assert any("Date" in d for d in parsed.defects)


@pytest.mark.parametrize(
    "value",
    [
        "Tue, 14 May 2024 27:61:00 +0200",
        "Tue, 31 Feb 2024 10:00:00 +0200",
        "Tue, 14 Foo 2024 10:00:00 +0200",
        "14 May 1850 10:00:00 +0000",
        "14 May 2999 10:00:00 +0000",
        "16 May 2024 10:00:00 +0000",  # two days after the INTERNALDATE
        "yesterday",
        "",
        "Tue, 14 May 2024 10:00:00 +9999",
    ],
)
def test_absurd_dates_are_dropped_and_internaldate_is_used(value):
    parsed = parse_message(message({**BASE, "Date": value}), received_at=INTERNALDATE)
    assert parsed.sent_at is None
    assert parsed.received_at == INTERNALDATE


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tue, 14 May 2024 09:12:44 +0200", datetime(2024, 5, 14, 7, 12, 44, tzinfo=UTC)),
        ("14 May 2024 09:12:44 -0000", datetime(2024, 5, 14, 9, 12, 44, tzinfo=UTC)),
        ("Tue, 14 May 2024 09:12:44 GMT", datetime(2024, 5, 14, 9, 12, 44, tzinfo=UTC)),
        ("Tue, 14 May 2024 04:12:44 EST", datetime(2024, 5, 14, 9, 12, 44, tzinfo=UTC)),
        ("Tue, 14 May 24 09:12:44 +0000", datetime(2024, 5, 14, 9, 12, 44, tzinfo=UTC)),
        ("Tue, 14 May 2024 09:12:60 +0000", datetime(2024, 5, 14, 9, 12, 59, tzinfo=UTC)),
    ],
)
def test_real_dates_in_their_many_forms_are_utc_aware(value, expected):
    parsed = parse_message(message({**BASE, "Date": value}), received_at=INTERNALDATE)
    assert parsed.sent_at == expected
    assert parsed.sent_at.tzinfo is UTC


def test_without_internaldate_the_date_header_is_the_received_time():
    assert parse_message(message(BASE)).received_at == datetime(2024, 5, 14, 7, 12, 44, tzinfo=UTC)


def test_without_internaldate_or_usable_date_received_at_is_the_documented_sentinel():
    parsed = parse_message(message({**BASE, "Date": "never"}))
    assert parsed.received_at == UNKNOWN_RECEIVED_AT
    assert any("received_at" in d for d in parsed.defects)


def test_a_naive_internaldate_is_read_as_utc():
    parsed = parse_message(message(BASE), received_at=datetime(2024, 5, 14, 9, 30))  # noqa: DTZ001
    assert parsed.received_at == datetime(2024, 5, 14, 9, 30, tzinfo=UTC)


# --- B21: deep nesting --------------------------------------------------------------------------


def test_b21_deeply_nested_mime(cases_dir):
    parsed = case(cases_dir, "B21-deeply-nested-mime.eml")
    assert parsed.parse_status is ParseStatus.TRUNCATED_DEPTH
    assert "too deep" in parsed.parse_error
    assert parsed.body_text in {"", "innermost text"}
    assert parsed.subject == "Deep nesting"


def nested(levels: int, kind: str = "mixed") -> bytes:
    head = b"".join(
        f'--L{i}\r\nContent-Type: multipart/{kind}; boundary="L{i + 1}"\r\n\r\n'.encode()
        for i in range(levels)
    )
    inner = (
        f"--L{levels}\r\nContent-Type: text/plain\r\n\r\ninnermost text\r\n--L{levels}--\r\n"
    ).encode()
    tail = b"".join(f"--L{i}--\r\n".encode() for i in reversed(range(levels)))
    return message(with_base(Content_Type='multipart/mixed; boundary="L0"'), head + inner + tail)


@pytest.mark.parametrize(
    ("levels", "kind"), [(33, "mixed"), (200, "alternative"), (5000, "related")]
)
def test_nesting_bombs_are_cut_at_the_depth_limit(levels, kind):
    parsed = parse_message(nested(levels, kind))
    assert parsed.parse_status is ParseStatus.TRUNCATED_DEPTH
    assert parsed.body_text == ""
    assert parsed.subject == "Teszt"


def test_nesting_within_the_limit_reaches_the_innermost_text():
    parsed = parse_message(nested(31))
    assert parsed.parse_status is ParseStatus.OK
    assert parsed.body_text == "innermost text"


def test_the_depth_limit_is_a_parameter():
    assert parse_message(nested(5), max_depth=4).parse_status is ParseStatus.TRUNCATED_DEPTH
    assert parse_message(nested(5), max_depth=6).body_text == "innermost text"
    assert parse_message(nested(400), max_depth=10**9).parse_status is ParseStatus.TRUNCATED_DEPTH


def test_a_wide_bomb_of_parts_is_cut_and_noted():
    parts = b"".join(b"--w\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(3000))
    raw = message(with_base(Content_Type='multipart/mixed; boundary="w"'), parts + b"--w--\r\n")
    parsed = parse_message(raw)
    assert parsed.parse_status is ParseStatus.TRUNCATED_SIZE
    assert "MIME parts" in parsed.parse_error


def test_size_cap_parses_the_head_and_records_the_real_size():
    raw = message(BASE, b"Start of a long body.\r\n" + b"x" * 200_000 + b"\r\n")
    parsed = parse_message(raw, max_size=10_000)
    assert parsed.parse_status is ParseStatus.TRUNCATED_SIZE
    assert parsed.size == len(raw)
    assert parsed.subject == "Teszt"
    assert parsed.body_text.startswith("Start of a long body.")
    assert "10000-byte limit" in parsed.parse_error


# --- B25: CR/LF in the subject -------------------------------------------------------------------


def test_b25_encoded_crlf_in_subject_becomes_a_space(cases_dir):
    parsed = case(cases_dir, "B25-subject-crlf-injection.eml")
    assert parsed.subject == "Jelszó visszaállítás Bcc: leak@example.net"


@pytest.mark.parametrize(
    "payload",
    [
        "a\r\nBcc: x@y",
        "a\rBcc: x@y",
        "a\nBcc: x@y",
        "a\x00\x0bBcc: x@y",
        "a\u2028Bcc: x@y",
        "a\x85Bcc: x@y",
    ],
)
def test_control_characters_never_reach_a_header_value(payload):
    word = f"=?utf-8?B?{base64.b64encode(payload.encode()).decode()}?="
    raw = message(
        with_base(Subject=word, From=f"{word} <a@example.com>", Reply_To=f"{word} <r@example.com>")
    )
    parsed = parse_message(raw)
    assert parsed.subject == "a Bcc: x@y"
    assert parsed.from_ is not None
    assert parsed.from_.name == "a Bcc: x@y"
    assert parsed.reply_to[0].name == "a Bcc: x@y"
    for _name, value in parsed.headers:
        assert not any(ch in value for ch in "\r\n\x00\x0b\u2028\x85")


def test_ten_thousand_recipients_are_cut_and_the_cut_is_recorded():
    # 10,000 recipients were cut to 1,000 with parse_status ok: now recorded and shown
    many = ", ".join(f"r{i}@example.com" for i in range(10_000))
    few = ", ".join(f"c{i}@example.com" for i in range(1_500))
    parsed = parse_message(message(with_base(To=many, Cc=few), b"Hello\r\n"))
    assert parsed.parse_status is ParseStatus.TRUNCATED_SIZE
    assert f"To: a {len(many):,}-byte field, only its first 65,536 bytes read" in parsed.parse_error
    assert "addresses, only the first 1,000 kept" in parsed.parse_error.split("Cc:")[0]
    assert len(parsed.to) == 1_000
    assert "Cc: 1,500 addresses, only the first 1,000 kept" in parsed.parse_error
    assert len(parsed.cc) == 1_000
    assert parsed.body_text.startswith("Hello")


def test_a_long_recipient_list_within_the_limits_is_not_marked():
    to = ", ".join(f"r{i}@example.com" for i in range(1_000))
    parsed = parse_message(message(with_base(To=to), b"Hello\r\n"))
    assert parsed.parse_status is ParseStatus.OK
    assert parsed.parse_error == ""
    assert len(parsed.to) == 1_000


def test_a_one_megabyte_subject_is_cut_for_display_and_kept_in_the_raw():
    # a 1 MB subject took the daemon from 224 to 473 MB and `triage show` printed 2.1 MB
    long_subject = "Számla " * 150_000
    raw = message(
        with_base(Subject=f"=?utf-8?b?{base64.b64encode(long_subject.encode()).decode()}?="),
        b"Hello\r\n",
    )
    parsed = parse_message(raw)
    assert len(raw) > 1_000_000
    assert parsed.subject.startswith("Számla Számla")
    assert len(parsed.subject) <= 998
    assert any(d.startswith("Subject: a ") and "998 characters kept" in d for d in parsed.defects)
    assert all(len(value) <= 16384 for _name, value in parsed.headers)
    assert parsed.parse_status is ParseStatus.OK  # the rest of the message is whole


def test_a_subject_of_ordinary_length_is_whole():
    parsed = parse_message(message(with_base(Subject="x" * 998), b"Hello\r\n"))
    assert parsed.subject == "x" * 998
    assert not [d for d in parsed.defects if d.startswith("Subject")]


def test_a_huge_text_body_is_cut_for_display_and_noted():
    # a 30 MB mail took the daemon past 500 MB (quote splitting, language, rules, database)
    body = ("invoice payment számla\r\n" * 100_000).encode()
    parsed = parse_message(message(with_base(), body))
    assert len(parsed.body_text) <= 1_000_000
    assert parsed.body_text.startswith("invoice payment számla")
    assert any(d.startswith("body text of ") for d in parsed.defects)
