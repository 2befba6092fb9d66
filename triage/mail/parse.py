"""The message parser: raw RFC 5322 bytes in, one immutable InboundMessage out.

:func:`parse_message` never raises on any input: a message it cannot handle
comes back with ``parse_status = error`` and the error text (with whatever of
its headers could still be read), so ingestion stores the raw bytes and routes
it to the fallback queue. A message over ``max_size`` is parsed from its first
``max_size`` bytes (``truncated_size``); MIME nesting deeper than ``max_depth``
is not read (``truncated_depth``).

The stages, each its own module: :mod:`~triage.mail.mime` (structure, with
limits), :mod:`~triage.mail.headers` (fields, RFC 2047, addresses, dates),
:mod:`~triage.mail.charset`, :mod:`~triage.mail.body` (text and attachments,
HTML via :mod:`~triage.mail.html`, TNEF via :mod:`~triage.mail.tnef`),
:mod:`~triage.mail.quotes`, :mod:`~triage.mail.kind`, :mod:`~triage.mail.dsn`,
:mod:`~triage.mail.language`, :mod:`~triage.mail.ids`.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

from triage.domain import Address, InboundMessage, MessageKind, ParseStatus
from triage.mail.body import extract_body
from triage.mail.dsn import delivery_report
from triage.mail.headers import (
    HeaderBlock,
    TextDecoder,
    display_subject,
    header_pairs,
    parse_date,
    split_header_block,
)
from triage.mail.ids import MAX_REFERENCES, first_msg_id, msg_ids, synthetic_message_id
from triage.mail.kind import classify, list_id_of
from triage.mail.language import detect_language
from triage.mail.mime import Limits, parse_structure
from triage.mail.quotes import split_reply
from triage.mail.sanitize import storable

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "NOT_MAIL_ERROR",
    "UNKNOWN_RECEIVED_AT",
    "parse_message",
    "synthetic_message_id",
]

DEFAULT_MAX_SIZE = 25 * 1024 * 1024
"""Bytes parsed per message (a larger one is parsed truncated)."""
DEFAULT_MAX_DEPTH = 32
"""MIME nesting levels read."""
HARD_MAX_DEPTH = 256
"""``max_depth`` is capped here, far below Python's recursion limit."""
UNKNOWN_RECEIVED_AT = datetime(1970, 1, 1, tzinfo=UTC)
"""``received_at`` of a message when the caller passed none and its Date is missing
or absurd. Callers should always pass the IMAP INTERNALDATE (or, for imports, the
mbox envelope date or the file time); this epoch sentinel makes the gap visible."""


NOT_MAIL_ERROR = "no header fields: not an email message"
"""``parse_error`` of input whose header block holds no field a message has (see
:func:`looks_like_mail`): an empty file, a binary, a text body without headers."""

_MAIL_FIELDS = frozenset(
    {
        # RFC 5322 §3.6 and §3.6.6-§3.6.7 (trace)
        "date",
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "message-id",
        "in-reply-to",
        "references",
        "subject",
        "comments",
        "keywords",
        "return-path",
        "received",
        # RFC 2045 §4
        "mime-version",
        # RFC 5536 (Usenet) and common transport fields
        "newsgroups",
        "path",
        "delivered-to",
        "envelope-to",
        "dkim-signature",
        "authentication-results",
        "received-spf",
        "thread-index",
        "thread-topic",
        "user-agent",
        "organization",
        "importance",
        "priority",
        "precedence",
        "auto-submitted",
        "disposition-notification-to",
    }
)
_MAIL_FIELD_PREFIXES = ("content-", "resent-", "list-", "x-", "arc-")
"""Field families (RFC 2045 Content-*, RFC 5322 §3.6.6 Resent-*, RFC 2369 List-*, X-*)."""

_BARE_CR_LINE = re.compile(rb"\r(?!\n)(?:\r(?!\n)|[ \t]|[\x21-\x39\x3b-\x7e]+[ \t]*:)")
"""A bare CR ending a header line: followed by another field, a fold or the empty line."""


def looks_like_mail(block: HeaderBlock) -> bool:
    """Whether a message's header block holds at least one field a message has.

    Any RFC 5322 §3.6 field (From, To, Subject, Date, Message-ID, Received, ...),
    MIME-Version, a Content-*, Resent-*, List-*, ARC-* or X-* field, or a common
    transport field (Delivered-To, DKIM-Signature, Newsgroups, ...). An empty file,
    a binary (``\x7fELF...``), an Outlook ``.msg`` or a text without headers has none;
    a text whose first line only looks like a field (``Note: call me``) neither.
    """
    return any(_mail_field(header.name) for header in block.headers)


def _bare_cr_to_lf(data: bytes) -> bytes | None:
    """``data`` with bare-CR line ends made LF, when its header block uses bare CR (classic
    Mac OS line ends); None otherwise. RFC 5322 §2.1 allows CR only in CRLF; read as
    line ends they keep the fields apart instead of folding them all into the first."""
    eol = data.find(b"\n")
    end = len(data) if eol < 0 else eol + 1
    if _BARE_CR_LINE.search(data, 0, end) is None:
        return None
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


_LEADING_FIELD = re.compile(rb"[\x21-\x39\x3b-\x7e]+(?=[ \t]*:)")
_UTF8_BOM = b"\xef\xbb\xbf"


def _mail_field(name: str) -> bool:
    lower = name.lower()
    return lower in _MAIL_FIELDS or lower.startswith(_MAIL_FIELD_PREFIXES)


def _skip_leading_blank(data: bytes) -> tuple[bytes, str]:
    """``data`` without what stands before its first header field, and the defect; or
    ``(data, "")`` when nothing does.

    What is skipped: a UTF-8 byte order mark (a file saved by a Windows editor), and
    white space: blank or white-space-only lines (real archives, CPython's and other
    parsers' test suites) and the indentation of the first field. Only when a field a
    message has (:func:`looks_like_mail`) follows: input with no header fields stays
    "not mail". Python's ``email`` reads a white-space-only first line as a
    continuation line with no field (``FirstHeaderLineIsContinuationDefect``) but
    takes an empty first line as the end of an empty header block, and drops an
    indented first field; this reads all three.
    """
    start = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    pos = start
    while pos < len(data) and data[pos] in b" \t\r\n\x0b\x0c":
        pos += 1
    if pos == 0:
        return data, ""
    field = _LEADING_FIELD.match(data, pos)
    if field is None or not _mail_field(field.group().decode("ascii")):
        return data, ""
    what = []
    if start:
        what.append("a UTF-8 byte order mark")
    skipped = data[start:pos]
    lines = skipped.count(b"\n")
    if lines:
        what.append(f"{lines} blank line(s)")
    elif skipped:
        what.append("white space")
    return data[pos:], f"{' and '.join(what)} before the first header field: skipped"


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _strip_envelope(raw: bytes) -> bytes:
    """Drop an mbox ``From `` envelope line: it is framing, not a header field."""
    if raw.startswith(b"From "):
        eol = raw.find(b"\n")
        return b"" if eol < 0 else raw[eol + 1 :]
    return raw


def _ids(block: HeaderBlock, decoder: TextDecoder) -> tuple[str, str, tuple[str, ...]]:
    message_id_raw = block.get("message-id")
    message_id = first_msg_id(decoder.raw_value(message_id_raw)) if message_id_raw else ""
    in_reply_to_raw = block.get("in-reply-to")
    replies = msg_ids(decoder.raw_value(in_reply_to_raw)) if in_reply_to_raw else []
    references_raw = block.get_all("references")
    references = msg_ids(" ".join(decoder.raw_value(v) for v in references_raw))
    return message_id, replies[0] if replies else "", tuple(references[-MAX_REFERENCES:])


MAX_BODY_TEXT = 1_000_000
"""Characters of body text kept for display, routing and search (about 300 pages)."""


def parse_message(
    raw: bytes,
    *,
    received_at: datetime | None = None,
    scope: str = "",
    default_charset: str = "windows-1250",
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    time_zone: str = "UTC",
) -> InboundMessage:
    """Parse raw message bytes. Never raises.

    Args:
        raw: the message as received (CRLF or LF line ends; bare CR line ends are
            read as line breaks; an mbox ``From `` first line is skipped).
        received_at: when the mailbox received it (IMAP INTERNALDATE); a naive
            value is read as UTC. When None: the Date header, else
            :data:`UNKNOWN_RECEIVED_AT`.
        scope: where the message was found (mailbox, UIDVALIDITY, UID); part of a
            synthesized Message-ID (B17).
        default_charset: the charset guessed first for undeclared or unknown 8-bit
            text (windows-1250 for Hungarian mail; B07, B08).
        max_size: bytes parsed; more makes ``parse_status = truncated_size``.
            ``size`` is always the full raw size.
        max_depth: MIME nesting levels read (capped at 256); deeper makes
            ``parse_status = truncated_depth`` (B21).
        time_zone: the business's time zone (IANA name), for the times of calendar
            invitations written into the body.

    Returns:
        An :class:`~triage.domain.InboundMessage`; on failure ``parse_status`` is
        ``error`` and ``parse_error`` says why. Input with no header field a message
        has (:func:`looks_like_mail`: an empty file, a binary, a bare text) is parsed
        as far as it goes, with ``parse_status = error`` and :data:`NOT_MAIL_ERROR`.
    """
    received = _aware(received_at)
    try:
        return _parse(raw, received, scope, default_charset, (max_size, max_depth, time_zone))
    except Exception as exc:  # noqa: BLE001 - the parser must never fail ingestion
        return _failed(raw, received, scope, default_charset, exc)


def _parse(
    raw: bytes,
    received_at: datetime | None,
    scope: str,
    default_charset: str,
    bounds: tuple[int, int, str],
) -> InboundMessage:
    max_size, max_depth, time_zone = bounds
    errors: list[str] = []
    status = ParseStatus.OK
    defects: list[str] = []
    data = raw
    unix = _bare_cr_to_lf(data)
    if unix is not None:
        data = unix
        defects.append("bare CR line ends (no LF): read as line breaks")
    data, skipped = _skip_leading_blank(_strip_envelope(data))
    if skipped:
        defects.append(skipped)
    end = len(data)
    if len(data) > max_size > 0:
        end = max_size  # read up to here; slicing would copy up to 25 MB (issue 13.9)
        status = ParseStatus.TRUNCATED_SIZE
        errors.append(
            f"message is {len(raw)} bytes, over the {max_size}-byte limit: "
            f"only the first {max_size} bytes were parsed"
        )
    decoder = TextDecoder(default_charset)
    limits = Limits(max_depth=max(0, min(max_depth, HARD_MAX_DEPTH)))
    root = parse_structure(data, decoder, limits, span=(0, end))
    block = root.block
    if not looks_like_mail(block):
        errors.insert(0, NOT_MAIL_ERROR)
        status = ParseStatus.ERROR

    sender = decoder.mailbox(block.get_all("from"))
    subject, cut = display_subject(block.get("subject") or b"", decoder)
    if cut:
        defects.append(cut)

    date_raw = block.get("date")
    sent_at = parse_date(decoder.raw_value(date_raw), not_after=received_at) if date_raw else None
    if date_raw is not None and sent_at is None:
        defects.append(f"unusable Date header: {decoder.text(date_raw)[:80]!r}")
    received = received_at or sent_at
    if received is None:
        received = UNKNOWN_RECEIVED_AT
        defects.append("no received time given and no usable Date: received_at is the epoch")

    message_id, in_reply_to, references = _ids(block, decoder)

    body = extract_body(root, decoder, limits, time_zone=time_zone)
    if len(body.text) > MAX_BODY_TEXT:
        # a 30 MB text body took the daemon past 500 MB through quote splitting,
        # language detection, rules and the database: the rest stays in the raw message
        defects.append(
            f"body text of {len(body.text):,} characters: the first {MAX_BODY_TEXT:,} kept"
            " (the whole is in the raw message)"
        )
        body = replace(body, text=body.text[:MAX_BODY_TEXT])
    verdict = classify(block, root, sender, subject)
    to = decoder.addresses(block.get_all("to"), "To")
    cc = decoder.addresses(block.get_all("cc"), "Cc")
    report = (
        delivery_report(root, decoder, body.text, to + cc)
        if verdict.kind
        in {MessageKind.BOUNCE, MessageKind.FEEDBACK_REPORT, MessageKind.READ_RECEIPT}
        else None
    )
    split = split_reply(body.text, sender=sender, subject=subject)
    if body.events:  # an invitation's event after the new text (issue 12.7)
        split = replace(split, body=f"{split.body}\n\n{body.events}".strip())
    language = detect_language(split.body if len(split.body) >= 40 else f"{subject}\n{split.body}")
    headers = header_pairs(block, decoder)

    if limits.too_deep:
        errors.append(
            f"MIME structure too deep: parts nested below {limits.max_depth} levels were not read"
        )
        if status is ParseStatus.OK:
            status = ParseStatus.TRUNCATED_DEPTH
    if limits.too_many:
        errors.append(f"more than {limits.max_parts} MIME parts: the rest were not read")
        if status is ParseStatus.OK:
            status = ParseStatus.TRUNCATED_SIZE
    if decoder.truncated:  # recipients cut to the limits, recorded like the MIME parts
        errors.extend(decoder.truncated)
        if status is ParseStatus.OK:
            status = ParseStatus.TRUNCATED_SIZE

    return InboundMessage(
        message_id=message_id or synthetic_message_id(raw, scope=scope),
        message_id_synthetic=not message_id,
        subject=subject,
        received_at=received,
        from_=sender,
        reply_to=decoder.addresses(block.get_all("reply-to"), "Reply-To"),
        to=to,
        cc=cc,
        sent_at=sent_at,
        body_text=split.body,
        quoted_text=split.quoted,
        signature=split.signature,
        attachments=body.attachments,
        inline_parts=body.inline,
        in_reply_to=in_reply_to,
        references=references,
        headers=headers,
        size=len(raw),
        language=language,
        kind=verdict.kind,
        kind_reason=verdict.reason,
        charset_fallback=decoder.fallback,
        body_missing=body.body_missing,
        list_id=list_id_of(block, decoder),
        delivery_report=report,
        parse_status=status,
        parse_error="; ".join(errors),
        defects=tuple(dict.fromkeys([*limits.defects, *decoder.defects, *body.defects, *defects])),
    )


def _failed(
    raw: bytes,
    received_at: datetime | None,
    scope: str,
    default_charset: str,
    exc: Exception,
) -> InboundMessage:
    """A message the parser failed on: its Message-ID, Subject and From if they can
    still be read, the raw size and the error."""
    message_id = subject = ""
    sender: Address | None = None
    try:
        decoder = TextDecoder(default_charset)
        data = _skip_leading_blank(_strip_envelope(_bare_cr_to_lf(raw) or raw))[0]
        block = split_header_block(data[:DEFAULT_MAX_SIZE])
        message_id = _ids(block, decoder)[0]
        subject = display_subject(block.get("subject") or b"", decoder)[0]
        sender = decoder.mailbox(block.get_all("from"))
    except Exception:  # noqa: BLE001, S110 - salvage is best effort; the error below is what counts
        pass
    return InboundMessage(
        message_id=message_id or synthetic_message_id(raw, scope=scope),
        message_id_synthetic=not message_id,
        subject=subject,
        from_=sender,
        received_at=received_at or UNKNOWN_RECEIVED_AT,
        size=len(raw),
        parse_status=ParseStatus.ERROR,
        parse_error=storable(f"{type(exc).__name__}: {exc}")[:2000],
    )
