"""The text body and the attachments of a parsed MIME tree.

Body choice (RFC 2046 §5.1.4, §5.1.3, RFC 2387, RFC 1847, RFC 6522):

- multipart/alternative: text/plain when it has text, else text/html, else the
  first alternative that yields any text ("text/plain preferred");
- multipart/related: its root (the ``start`` parameter, else the first part);
- multipart/signed and multipart/report: the first part;
- multipart/encrypted: nothing (the body is unreadable);
- multipart/mixed and any other multipart: every inline text part, in order.

HTML becomes text with :func:`triage.mail.html.html_to_text`; ``format=flowed``
plain text (RFC 3676) is unwrapped. Attachments are every other leaf except
alternatives not chosen and the machine-readable parts of a report; a TNEF
container is replaced by what it holds (B10).

Inline parts (issue 12.8) are kept apart from attachments: a leaf with a
Content-ID that an HTML part of the message names in a ``cid:`` URL (RFC 2392),
or a part of a multipart/related other than its root (RFC 2387), unless it says
``Content-Disposition: attachment`` and nothing refers to it. They carry their
Content-ID (without brackets) so the body can link them; one without a file name
gets one (the Content-ID's own ``image001.png`` when it has that form, else
``inline-N.ext`` from its type).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass, replace
from urllib.parse import unquote

from triage.domain import Attachment
from triage.mail.calendar import calendar_text
from triage.mail.headers import TextDecoder
from triage.mail.html import html_charset, html_to_text
from triage.mail.mime import Limits, Part, decode_transfer
from triage.mail.sanitize import clean_body, one_line
from triage.mail.tnef import is_tnef, read_tnef

__all__ = ["MAX_TEXT_BYTES", "BodyResult", "extract_body"]

MAX_TEXT_BYTES = 4_000_000
"""Bytes of one text part decoded for the body text (after the transfer encoding).

The parser keeps 1,000,000 characters of body text (``parse.MAX_BODY_TEXT``);
UTF-8 needs at most 4 bytes a character, so a longer part cannot add to what is
kept. Decoding, cleaning and splitting a 25 MB text part whole made copies of it
worth about 180 MB (issue 13.9); the whole part stays in the raw message."""

_NOT_BLANK = re.compile(rb"[^ \t\r\n\x0b\x0c]")

_TEXT_TYPES = frozenset({"text/plain", "text/html"})
_REPORT_PARTS = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "message/disposition-notification",
        "message/feedback-report",
        "text/rfc822-headers",
        "message/global-headers",
    }
)
_CALENDAR_TYPES = frozenset({"text/calendar", "application/ics", "text/x-vcalendar"})
_SEALED = frozenset({"multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime"})


@dataclass(frozen=True, slots=True)
class BodyResult:
    """The readable content of a message.

    Attributes:
        text: the body text (HTML converted), cleaned; "" when there is none.
        attachments: attachment metadata in message order (inline parts not among them).
        inline: inline parts (images the HTML shows through ``cid:``), with their
            Content-ID, in message order.
        events: the calendar parts' events as text (:mod:`triage.mail.calendar`),
            "" when none; the parser adds it after the new text.
        body_missing: no text could be recovered from a container that holds it
            (damaged TNEF, encrypted message).
        defects: problems met while reading.
    """

    text: str
    attachments: tuple[Attachment, ...]
    body_missing: bool
    defects: tuple[str, ...]
    inline: tuple[Attachment, ...] = ()
    events: str = ""


_CID_URL = re.compile(rb"""cid:([^\s"'<>()]+)""", re.IGNORECASE)
_CID_NAME = re.compile(r"[\w\-. ]{1,100}\.[A-Za-z][A-Za-z0-9]{0,7}")
"""A Content-ID whose local part is a file name (Outlook: ``image001.png@01D9...``)."""


def content_id(part: Part) -> str:
    """The part's Content-ID without angle brackets or white space (RFC 2045 §7); "" when none."""
    raw = part.block.get("content-id")
    if raw is None:
        return ""
    return "".join(raw.decode("latin-1").split()).strip("<>")


def _cid_refs(root: Part) -> set[str]:
    """The Content-IDs the HTML parts name in ``cid:`` URLs (RFC 2392: URL-encoded)."""
    refs: set[str] = set()
    for part in root.walk():
        if part.content_type == "text/html" and not part.children:
            for match in _CID_URL.finditer(decode_transfer(part)):
                refs.add(unquote(match.group(1).decode("latin-1")).strip("<>"))
    return refs


def _related_parts(root: Part) -> set[int]:
    """Ids of the parts of multipart/related other than the root (RFC 2387 §3.2)."""
    found: set[int] = set()
    for part in root.walk():
        if part.content_type == "multipart/related" and part.children:
            start = part.params.get("start", "").strip().strip("<>")
            kids = part.children
            root_kid = next((k for k in kids if start and content_id(k) == start), kids[0])
            found.update(id(k) for k in kids if k is not root_kid)
    return found


def _inline_name(cid: str, content_type: str, number: int) -> str:
    local = cid.partition("@")[0]
    if _CID_NAME.fullmatch(local) and mimetypes.guess_type(local, strict=False)[0]:
        return local
    extension = mimetypes.guess_extension(content_type, strict=False) or ".bin"
    return f"inline-{number}{extension}"


def _is_attachment(part: Part) -> bool:
    return part.disposition == "attachment" or bool(part.filename)


def _has_text(part: Part) -> bool:
    return _NOT_BLANK.search(decode_transfer(part)) is not None


def _body_parts(part: Part) -> list[Part]:
    """The leaves whose text makes up the body of ``part``."""
    if not part.children:
        if part.content_type in _TEXT_TYPES and not _is_attachment(part):
            return [part]
        return []
    subtype = part.content_type.partition("/")[2]
    kids = part.children
    if subtype == "alternative":
        choices = [_body_parts(kid) for kid in kids]
        for wanted in ("text/plain", "text/html"):
            for choice in choices:
                if (
                    choice
                    and all(leaf.content_type == wanted for leaf in choice)
                    and any(_has_text(leaf) for leaf in choice)
                ):
                    return choice
        return next((choice for choice in choices if choice), [])
    if subtype == "related":
        start = part.params.get("start", "").strip()
        root = kids[0]
        if start:
            for kid in kids:
                content_id = kid.block.get("content-id")
                if content_id is not None and content_id.strip() == start.encode(
                    "utf-8", "replace"
                ):
                    root = kid
                    break
        return _body_parts(root)
    if subtype in {"signed", "report"}:
        return _body_parts(kids[0])
    if subtype == "encrypted":
        return []
    leaves: list[Part] = []
    for kid in kids:
        leaves.extend(_body_parts(kid))
    return leaves


def _unflow(text: str, delsp: bool) -> str:
    """Join the soft line breaks of ``format=flowed`` text (RFC 3676 §4.2, §4.4)."""
    out: list[str] = []
    buffer: str | None = None
    buffer_depth = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        content = content.removeprefix(" ")
        if buffer is not None and depth != buffer_depth:
            out.append(">" * buffer_depth + (" " if buffer_depth else "") + buffer)
            buffer = None
        buffer = content if buffer is None else buffer + content
        buffer_depth = depth
        if content.endswith(" ") and content != "-- ":
            if delsp:
                buffer = buffer[:-1]
            continue
        out.append(">" * depth + (" " if depth else "") + buffer)
        buffer = None
    if buffer is not None:
        out.append(">" * buffer_depth + (" " if buffer_depth else "") + buffer)
    return "\n".join(out)


def _text_cut(data: bytes, label: str | None, limit: int) -> bytes:
    """The first ``limit`` bytes of ``data`` or fewer, ended where no character is split:
    after the last line break, else before a UTF-8 continuation byte; for UTF-16 and
    UTF-32 a multiple of 4 bytes."""
    if len(data) <= limit:
        return data
    if label and ("16" in label or "32" in label):
        return data[: limit - limit % 4]
    end = data.rfind(b"\n", 0, limit) + 1
    if end <= 0:
        end = limit
        while end > limit - 3 and 0x80 <= data[end] < 0xC0:
            end -= 1
    return data[:end]


def _leaf_text(part: Part, decoder: TextDecoder, defects: list[str]) -> str:
    data = decode_transfer(part, max_bytes=MAX_TEXT_BYTES + 1)
    label = part.charset
    if len(data) > MAX_TEXT_BYTES:
        defects.append(
            f"a {part.content_type} part over {MAX_TEXT_BYTES:,} bytes: the first"
            f" {MAX_TEXT_BYTES:,} at most read for the body text (the whole is in the raw message)"
        )
        data = _text_cut(data, label, MAX_TEXT_BYTES)
    if part.content_type == "text/html":
        text = decoder.decode_bytes(data, label or html_charset(data), "text/html body")
        text, defect = html_to_text(text)
        if defect:
            defects.append(defect)
        return clean_body(text)
    text = decoder.decode_bytes(data, label, "text/plain body")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if part.params.get("format", "").lower() == "flowed":
        text = _unflow(text, part.params.get("delsp", "").lower() == "yes")
    return clean_body(text)


def _attachment(filename: str, content_type: str, data: bytes) -> Attachment:
    return Attachment(
        filename=one_line(filename)[:500],
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _guess_type(filename: str) -> str:
    guessed, _encoding = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


def _is_calendar(part: Part) -> bool:
    return not part.children and part.content_type in _CALENDAR_TYPES


def extract_body(
    root: Part, decoder: TextDecoder, limits: Limits, *, time_zone: str = "UTC"
) -> BodyResult:
    """The body text, the attachments and whether the body was lost, from a MIME tree.

    Calendar parts (text/calendar, application/ics; RFC 5545) give their events as text
    (``events``; times in ``time_zone``, :mod:`triage.mail.calendar`), and are kept as
    a named ``.ics`` attachment.
    """
    defects: list[str] = []
    chosen = _body_parts(root)
    chosen_ids = {id(leaf) for leaf in chosen}
    texts = [text for text in (_leaf_text(leaf, decoder, defects) for leaf in chosen) if text]
    events: list[str] = []
    for part in root.walk():
        if _is_calendar(part):
            event = calendar_text(decode_transfer(part, limits), time_zone)
            if event.text and clean_body(event.text) not in events:
                events.append(clean_body(event.text))
            elif not event.text:
                defects.append("a calendar part without a readable event")
    body = "\n\n".join(texts)

    in_report: set[int] = set()
    for part in root.walk():
        if part.content_type == "multipart/report":
            in_report.update(id(kid) for kid in part.children[1:])

    attachments: list[Attachment] = []
    inline: list[Attachment] = []
    refs = _cid_refs(root)
    related = _related_parts(root)
    sealed = root.content_type in _SEALED
    tnef_failed = False
    for part in root.walk():
        if part.children or part.maintype == "multipart" or id(part) in chosen_ids:
            continue
        if part.content_type in _SEALED:
            sealed = True
        if part.content_type in _TEXT_TYPES and not _is_attachment(part):
            continue
        if id(part) in in_report and part.content_type in _REPORT_PARTS:
            continue
        data = decode_transfer(part, limits)
        cid = content_id(part)
        if cid and (cid in refs or (id(part) in related and part.disposition != "attachment")):
            name = part.filename or _inline_name(cid, part.content_type, len(inline) + 1)
            inline.append(replace(_attachment(name, part.content_type, data), content_id=cid))
            continue
        if is_tnef(part.content_type, part.filename):
            content = read_tnef(data, decoder)
            if content is not None:
                if not body.strip() and content.body.strip():
                    body = clean_body(content.body)
                attachments.extend(
                    _attachment(name, _guess_type(name), payload)
                    for name, payload in content.attachments
                )
                continue
            tnef_failed = True
            defects.append("TNEF (winmail.dat) could not be decoded; kept as an attachment")
        name = part.filename
        if not name and _is_calendar(part):
            method = part.params.get("method", "").strip().lower()
            name = f"{method or 'invite'}.ics"
        attachments.append(_attachment(name, part.content_type, data))
    body_missing = not body.strip() and (tnef_failed or sealed)
    return BodyResult(
        body, tuple(attachments), body_missing, tuple(defects), tuple(inline), "\n\n".join(events)
    )
