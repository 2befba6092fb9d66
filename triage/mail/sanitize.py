"""Making decoded text safe to store and reuse.

PostgreSQL text cannot hold NUL; UTF-8 cannot hold lone surrogates; a header
value reused in an outgoing mail must not carry CR or LF (B25: an encoded
``=0D=0A`` in a Subject would otherwise inject a ``Bcc:`` header into the
acknowledgment).
"""

from __future__ import annotations

import re

__all__ = ["clean_body", "one_line", "storable"]

_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_BODY_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")
"""C0 controls but tab and line ends, DEL, the C1 controls (U+0080-U+009F: never text;
U+009B starts a terminal escape sequence) and a stray byte-order mark."""
_SURROGATES = re.compile("[\ud800-\udfff]")
_BLANK_RUNS = re.compile(r"\n{3,}")


def storable(text: str) -> str:
    """``text`` without NUL and lone surrogates (which no UTF-8 store accepts)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.isascii():
        return text
    return _SURROGATES.sub("\ufffd", text)


def one_line(text: str) -> str:
    """A header value on one line: CR, LF, tabs and other control characters become a
    space, runs of white space collapse to one, and the ends are trimmed."""
    joined = " ".join(text.split())
    if joined.isprintable():  # the common case: no control characters, NUL or surrogates
        return joined
    return " ".join(_CONTROLS.sub(" ", storable(joined)).split())


def clean_body(text: str) -> str:
    """Body text with LF line ends, no control characters but tab and newline, no
    trailing blanks on lines, at most one empty line in a row, trimmed."""
    text = storable(text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _BODY_CONTROLS.sub("", text)
    text = "\n".join([line.rstrip() for line in text.split("\n")])
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")
