"""The MIME structure of a message (RFC 2045, RFC 2046), read with hard limits.

:func:`parse_structure` splits a message into a tree of :class:`Part` values.
It reads multipart bodies itself (RFC 2046 §5.1.1: a delimiter is ``--boundary``
at the start of a line, optional transport padding, then the line end) instead
of the stdlib feed parser, whose nested generators raise ``RecursionError`` on
deep nesting (B21 nests 1,200 levels). Nesting below ``max_depth`` and parts
beyond ``max_parts`` are not read; :class:`Limits` records that.

Content-Type and Content-Disposition parameters are read with the stdlib
(``email.message.Message.get_param``), which handles quoting and RFC 2231
continuations; transfer encodings are removed leniently (bad base64 keeps what
decodes).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from email.message import Message

from triage.mail.headers import HeaderBlock, TextDecoder, split_header_block

__all__ = ["Limits", "Part", "decode_transfer", "parse_structure"]

MAX_PARTS = 1000
"""MIME parts read per message; a message with more is truncated (a mail bomb)."""

_EMPTY = memoryview(b"")
_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+/[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass
class Limits:
    """The bounds of one parse and what hit them (mutable, one per message).

    Attributes:
        max_depth: multipart nesting read (the top level is depth 0).
        max_parts: parts read in all.
        parts: parts read so far.
        too_deep: a multipart below ``max_depth`` was left unread.
        too_many: parts beyond ``max_parts`` were left unread.
        defects: structural problems met.
    """

    max_depth: int = 32
    max_parts: int = MAX_PARTS
    parts: int = 0
    too_deep: bool = False
    too_many: bool = False
    defects: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        """Record a defect once."""
        if what not in self.defects and len(self.defects) < 50:
            self.defects.append(what)


@dataclass(frozen=True, slots=True, eq=False)
class Part:
    """One MIME entity.

    Attributes:
        block: its header fields.
        content_type: lowercased ``type/subtype`` (RFC 2045 §5.2 default text/plain).
        params: Content-Type parameters, lowercased names, RFC 2231 values joined.
        disposition: lowercased Content-Disposition type, "" when absent.
        filename: the decoded filename (RFC 2231 / RFC 2047), "" when none.
        transfer_encoding: lowercased Content-Transfer-Encoding, "" when absent.
        body: the entity's body bytes, still transfer-encoded (empty for multiparts):
            a read-only view into the message's bytes, so that a 25 MB part is not
            copied until :func:`decode_transfer` reads it (issue 13.9).
        children: the parts of a multipart, in order.
        depth: nesting level (0 = the message).
    """

    block: HeaderBlock
    content_type: str
    params: dict[str, str]
    disposition: str
    filename: str
    transfer_encoding: str
    body: memoryview
    children: tuple[Part, ...] = ()
    depth: int = 0

    @property
    def maintype(self) -> str:
        """The part before the slash: ``text``, ``multipart``, ``application``."""
        return self.content_type.partition("/")[0]

    @property
    def charset(self) -> str | None:
        """The charset parameter as written, None when absent."""
        return self.params.get("charset") or None

    def walk(self) -> list[Part]:
        """This part and every part below it, depth first (iterative)."""
        out: list[Part] = []
        stack = [self]
        while stack:
            part = stack.pop()
            out.append(part)
            stack.extend(reversed(part.children))
        return out


def decode_transfer(
    part: Part, limits: Limits | None = None, *, max_bytes: int | None = None
) -> bytes:
    """The body of a leaf part with its Content-Transfer-Encoding removed (RFC 2045 §6).

    base64 is decoded leniently (characters outside the alphabet skipped, bad
    padding repaired); quoted-printable with ``binascii.a2b_qp``; x-uuencode line
    by line; 7bit/8bit/binary and unknown encodings are returned as they are.
    ``max_bytes``: for those, only the first ``max_bytes`` are copied out of the
    message (the encoded ones are decoded whole, then cut).
    """
    data = part.body
    cte = part.transfer_encoding
    if cte == "base64":
        decoded = _base64(data, limits)
    elif cte == "quoted-printable":
        decoded = binascii.a2b_qp(data)
    elif cte in {"x-uuencode", "uuencode", "x-uue", "uue"}:
        decoded = _uudecode(bytes(data))
    else:
        return bytes(data if max_bytes is None else data[:max_bytes])
    return decoded if max_bytes is None else decoded[:max_bytes]


def _base64(data: memoryview, limits: Limits | None) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        cleaned = _BASE64_JUNK.sub(b"", data)
        cleaned = cleaned.rstrip(b"=")
        cleaned = cleaned[: len(cleaned) - (len(cleaned) % 4 == 1)]
        if limits is not None:
            limits.note("base64 body with bad padding or length")
        try:
            return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
        except binascii.Error:
            return b""


def _uudecode(data: bytes) -> bytes:
    out = bytearray()
    started = False
    for line in data.splitlines():
        if not started:
            started = line.startswith(b"begin ")
            continue
        if line.strip() in {b"end", b"`"}:
            break
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            try:  # the classic workaround for trailing garbage (as in the stdlib)
                nbytes = (((line[0] - 32) & 63) * 4 + 5) // 3
                out += binascii.a2b_uu(line[:nbytes])
            except (binascii.Error, IndexError):
                continue
    return bytes(out)


def _params(decoder: TextDecoder, block: HeaderBlock) -> tuple[str, dict[str, str], str, str]:
    """Content type, its parameters, the disposition and the filename of a part."""
    message = Message()
    ctype_raw = block.get("content-type")
    disp_raw = block.get("content-disposition")
    if ctype_raw is not None:
        message["Content-Type"] = decoder.raw_value(ctype_raw)
    if disp_raw is not None:
        message["Content-Disposition"] = decoder.raw_value(disp_raw)

    params: dict[str, str] = {}
    content_type = ""
    raw_params = message.get_params(header="content-type") if ctype_raw is not None else None
    if raw_params:
        first = raw_params[0][0].strip().lower()
        content_type = first if _TOKEN.fullmatch(first) else ""
        for key, value in raw_params[1:]:
            params[key.strip().lower()] = _param_text(decoder, value)
    disposition = ""
    filename = ""
    if disp_raw is not None:
        disp = message.get_params(header="content-disposition")
        if disp:
            disposition = disp[0][0].strip().lower()
            for key, value in disp[1:]:
                if key.strip().lower() == "filename":
                    filename = _param_text(decoder, value)
    if not filename:
        filename = params.get("name", "")
    return content_type, params, disposition, decoder.words(filename).strip()


def _param_text(decoder: TextDecoder, value: str | tuple[str, str, str]) -> str:
    """A parameter value as text; RFC 2231 ``charset'lang'%XX`` values decoded."""
    if isinstance(value, tuple):
        charset, _language, text = value
        try:
            raw = text.encode("latin-1")
        except UnicodeEncodeError:
            return text
        return decoder.decode_bytes(raw, charset or None, "RFC 2231 parameter")
    return value.strip('"')


def _split_multipart(
    data: bytes, start: int, end: int, boundary: bytes, limits: Limits
) -> list[tuple[int, int]] | None:
    """The (start, end) spans between ``--boundary`` delimiter lines of ``data[start:end]``;
    None when there is no delimiter. Works on offsets: nothing is copied."""
    delimiter = b"--" + boundary
    marks: list[tuple[int, int]] = []  # (start of the line break before it, start of content)
    closed = False
    pos = start
    while True:
        i = data.find(delimiter, pos, end)
        if i < 0:
            break
        pos = i + 1
        if i > start and data[i - 1] != 0x0A:
            continue
        j = i + len(delimiter)
        close = data.startswith(b"--", j, end)
        k = j + 2 if close else j
        while k < end and data[k] in b" \t":
            k += 1
        if k < end and data[k] not in b"\r\n":
            continue
        eol = data.find(b"\n", k, end)
        content = end if eol < 0 else eol + 1
        before = i
        if before > start and data[before - 1] == 0x0A:
            before -= 1
            if before > start and data[before - 1] == 0x0D:
                before -= 1
        marks.append((before, content))
        pos = content
        if close:
            closed = True
            break
    if not marks:
        return None
    if not closed:
        limits.note("multipart without closing boundary")
        marks.append((end, end))
    return [(marks[n][1], marks[n + 1][0]) for n in range(len(marks) - 1)]


def parse_structure(
    data: bytes,
    decoder: TextDecoder,
    limits: Limits,
    *,
    span: tuple[int, int] | None = None,
    depth: int = 0,
    default_type: str = "text/plain",
) -> Part:
    """Read one entity (a message or a part) and, for multiparts, its parts.

    Args:
        data: the message's bytes.
        decoder: decodes 8-bit header bytes and RFC 2231/2047 parameter values.
        limits: depth and part bounds; records what was cut.
        span: (start, end) of this entity in ``data``; the whole of it when None.
        depth: this entity's nesting level.
        default_type: the type when Content-Type is absent (RFC 2046 §5.1.5:
            message/rfc822 inside multipart/digest).

    Never raises for any input; recursion is bounded by ``limits.max_depth``, and
    nothing is copied out of ``data`` (leaf bodies are views into it).
    """
    start, end = span if span is not None else (0, len(data))
    limits.parts += 1
    block = split_header_block(data, start, end)
    for defect in block.defects:
        limits.note(defect)
    try:
        content_type, params, disposition, filename = _params(decoder, block)
    except Exception:  # noqa: BLE001 - the stdlib parameter parser on hostile input
        limits.note("unreadable Content-Type or Content-Disposition parameters")
        content_type, params, disposition, filename = "", {}, "", ""
    if not content_type:
        if block.get("content-type") is not None:
            limits.note("unreadable Content-Type; read as " + default_type)
        content_type = default_type
    cte_raw = block.get("content-transfer-encoding")
    cte = cte_raw.decode("ascii", "replace").strip().lower() if cte_raw else ""
    body_start = block.body_offset
    if not content_type.startswith("multipart/"):
        body = memoryview(data)[body_start:end]
        return Part(block, content_type, params, disposition, filename, cte, body, (), depth)

    boundary = params.get("boundary", "").encode("utf-8", "replace")
    spans = _split_multipart(data, body_start, end, boundary, limits) if boundary else None
    if spans is None:
        limits.note("multipart without boundary or delimiter; read as text/plain")
        body = memoryview(data)[body_start:end]
        return Part(block, "text/plain", params, disposition, filename, cte, body, (), depth)
    if depth >= limits.max_depth:
        limits.too_deep = True
        return Part(block, content_type, params, disposition, filename, "", _EMPTY, (), depth)
    child_type = "message/rfc822" if content_type == "multipart/digest" else "text/plain"
    children: list[Part] = []
    for child_span in spans:
        if limits.parts >= limits.max_parts:
            limits.too_many = True
            break
        children.append(
            parse_structure(
                data, decoder, limits, span=child_span, depth=depth + 1, default_type=child_type
            )
        )
    return Part(
        block, content_type, params, disposition, filename, "", _EMPTY, tuple(children), depth
    )
