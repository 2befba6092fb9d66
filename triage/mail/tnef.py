"""Outlook's TNEF container (``application/ms-tnef``, ``winmail.dat``), with tnefparse.

Outlook sometimes sends the whole message inside ``winmail.dat``: the plain
text body (attBody, in the code page named by attOemCodepage), an HTML body, or
only compressed RTF, and the attachments (B10). :func:`read_tnef` returns what it
holds; None when the container cannot be decoded, so the caller keeps
``winmail.dat`` as an attachment and marks the body missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from triage.mail.headers import TextDecoder
from triage.mail.html import html_to_text

__all__ = ["TnefContent", "is_tnef", "read_tnef"]


def _contain_tnefparse_logging() -> None:
    """Keep tnefparse's own log calls out of our logs, once, at import.

    On damaged containers tnefparse logs warnings, some with format arguments that
    do not match their message (``'Invalid TNEF Version %02x%02x%02x%02x', *data``
    with any number of bytes): formatting them in a handler prints "--- Logging
    error ---" and a traceback to stderr, which breaks JSON log lines. What it
    would say is not needed: a container we cannot read is reported by
    :func:`read_tnef` returning None. Its records are therefore stopped at its
    logger (level above WARNING, no propagation, a filter that drops the rest).
    """
    logger = logging.getLogger("tnefparse")
    logger.setLevel(logging.CRITICAL + 1)
    logger.propagate = False
    logger.addFilter(lambda _record: False)


_contain_tnefparse_logging()


@dataclass(frozen=True, slots=True)
class TnefContent:
    """What a TNEF container holds.

    Attributes:
        body: the message text ("" when it holds none).
        attachments: (filename, bytes) of each attachment.
    """

    body: str
    attachments: tuple[tuple[str, bytes], ...]


def is_tnef(content_type: str, filename: str) -> bool:
    """Whether a part is a TNEF container, by type or by its usual file name."""
    return content_type in {"application/ms-tnef", "application/vnd.ms-tnef"} or (
        filename.lower() == "winmail.dat"
    )


def _text(value: object, codepage: str | None, decoder: TextDecoder) -> str:
    if isinstance(value, str):
        return value.rstrip("\x00")
    if isinstance(value, bytes):
        return decoder.decode_bytes(value.rstrip(b"\x00"), codepage, "TNEF")
    return ""


def _filename(attachment: Any, codepage: str | None, decoder: TextDecoder) -> str:
    """The long file name (MAPI PR_ATTACH_LONG_FILENAME) else the 8.3 title, decoded here:
    tnefparse's own ``name`` assumes UTF-8 and fails on code-page names."""
    from tnefparse import properties  # noqa: PLC0415

    for attr in attachment.mapi_attrs:
        if attr.name == properties.MAPI_ATTACH_LONG_FILENAME:
            long_name = _text(attr.data, codepage, decoder).strip()
            if long_name:
                return long_name
    return _text(attachment._name, codepage, decoder).strip()  # noqa: SLF001 - the raw title


def _rtf_text(compressed: bytes) -> str:
    from compressed_rtf import decompress  # noqa: PLC0415 - only needed for RTF-only TNEF
    from striprtf.striprtf import rtf_to_text  # noqa: PLC0415

    rtf = decompress(compressed + b"\x00")
    text: str = rtf_to_text(rtf.decode("latin-1"), errors="ignore")  # type: ignore[no-untyped-call]
    return text


def read_tnef(data: bytes, decoder: TextDecoder) -> TnefContent | None:
    """Decode a TNEF container; None when it is not one, is damaged or holds nothing readable.

    The body is attBody / PR_BODY when present, else the HTML body converted to
    text, else the compressed RTF body stripped to text. Text in the container's
    code page is decoded with :meth:`TextDecoder.decode_bytes`.
    """
    try:
        from tnefparse import TNEF  # noqa: PLC0415 - tnefparse is only needed for TNEF parts

        tnef = TNEF(data, do_checksum=False)
        codepage = tnef.codepage if isinstance(tnef.codepage, str) else None
        body = _text(tnef.body, codepage, decoder)
        if not body.strip() and tnef.htmlbody:
            body, _defect = html_to_text(_text(tnef.htmlbody, codepage, decoder))
        if not body.strip() and tnef._rtfbody:  # noqa: SLF001 - the public rtfbody logs warnings
            body = _rtf_text(tnef._rtfbody)  # noqa: SLF001
        attachments: list[tuple[str, bytes]] = []
        for attachment in tnef.attachments:
            filename = _filename(attachment, codepage, decoder)
            content = attachment.data if isinstance(attachment.data, bytes) else b""
            attachments.append((filename, content))
    except Exception:  # noqa: BLE001 - any failure of a damaged container means "cannot decode"
        return None
    if not body.strip() and not attachments:
        return None  # a valid signature over nothing readable recovers nothing
    return TnefContent(body, tuple(attachments))
