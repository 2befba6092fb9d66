"""Reading single parts back out of a stored message: an attachment's bytes, the HTML body.

Pure (bytes in, values out). The parser records each attachment's SHA-256
(:class:`~triage.domain.Attachment`); :func:`attachment_data` walks the MIME tree
again (TNEF ``winmail.dat`` members included, as the parser lists them) and
returns the bytes with that digest, so a download is the very file the parser
saw. :func:`part_by_content_id` finds the part a ``cid:`` URL names (RFC 2392);
:func:`html_body` is the message's HTML as sent, unsanitized: whoever shows it
must sanitize it.
"""

from __future__ import annotations

import hashlib

from triage.mail.headers import TextDecoder
from triage.mail.html import html_charset
from triage.mail.mime import Limits, Part, decode_transfer, parse_structure
from triage.mail.tnef import is_tnef, read_tnef

__all__ = ["attachment_data", "has_html_body", "html_body", "part_by_content_id"]

DEFAULT_CHARSET = "windows-1250"


def _leaves(raw: bytes, decoder: TextDecoder) -> list[Part]:
    root = parse_structure(raw, decoder, Limits())
    return [p for p in root.walk() if not p.children and p.maintype != "multipart"]


def attachment_data(raw: bytes, sha256: str) -> bytes | None:
    """The decoded bytes of the attachment of ``raw`` whose SHA-256 is ``sha256``; None if none.

    Looks at every leaf part and at the files inside a TNEF part, as the parser does.
    """
    wanted = sha256.lower()
    decoder = TextDecoder(DEFAULT_CHARSET)
    for part in _leaves(raw, decoder):
        data = decode_transfer(part)
        if hashlib.sha256(data).hexdigest() == wanted:
            return data
        if is_tnef(part.content_type, part.filename):
            content = read_tnef(data, decoder)
            for _name, payload in content.attachments if content is not None else ():
                if hashlib.sha256(payload).hexdigest() == wanted:
                    return payload
    return None


def part_by_content_id(raw: bytes, content_id: str) -> tuple[str, bytes] | None:
    """``(content type, decoded bytes)`` of the part whose Content-ID is ``content_id``
    (with or without angle brackets, RFC 2392); None when no part has it."""
    wanted = content_id.strip().strip("<>").strip()
    if not wanted:
        return None
    decoder = TextDecoder(DEFAULT_CHARSET)
    for part in _leaves(raw, decoder):
        value = part.block.get("content-id")
        if value is None:
            continue
        if decoder.raw_value(value).strip().strip("<>").strip() == wanted:
            return part.content_type, decode_transfer(part)
    return None


def _is_html_body(part: Part) -> bool:
    return (
        part.content_type == "text/html" and part.disposition != "attachment" and not part.filename
    )


def has_html_body(raw: bytes) -> bool:
    """Whether :func:`html_body` finds an HTML body in ``raw`` (the ticket page offers
    "Show the HTML version" only then). Walks the MIME structure without decoding any
    part: tens of microseconds for ordinary mail."""
    return any(_is_html_body(p) for p in _leaves(raw, TextDecoder(DEFAULT_CHARSET)))


def html_body(raw: bytes) -> str | None:
    """The first ``text/html`` part that is not an attachment, as text; None when none.

    The charset is the part's, else the HTML's own ``<meta charset>``, else guessed.
    """
    decoder = TextDecoder(DEFAULT_CHARSET)
    for part in _leaves(raw, decoder):
        if not _is_html_body(part):
            continue
        data = decode_transfer(part)
        return decoder.decode_bytes(data, part.charset or html_charset(data), "text/html body")
    return None
