"""Addresses and header-safe text: pure checks shared by the acknowledgment policy
(:mod:`triage.handling`) and outgoing mail (:mod:`triage.outbox.headers`).

Text from a client (a subject, a display name) is made safe before it goes into a
header: CR, LF, other control characters and Unicode line separators become spaces,
so no client text can start a new header line (header injection, cases/B25).
"""

from __future__ import annotations

import re
import unicodedata
from email.utils import parseaddr

__all__ = ["MAX_SUBJECT", "ascii_address", "header_safe", "parse_mailbox", "valid_address"]

MAX_SUBJECT = 300
"""Characters of client text kept in a subject; the rest is cut."""

_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")


def header_safe(text: str, *, limit: int = MAX_SUBJECT) -> str:
    """``text`` with every control or line-separator character turned into a space.

    Runs of whitespace collapse to one space; the result is stripped and cut to
    ``limit`` characters. Removes C0/C1 controls (CR, LF, NUL, NEL ...), U+2028,
    U+2029 and other Unicode "Cc", "Zl", "Zp" characters, and a stray byte-order
    mark (U+FEFF, which the parser drops from incoming headers too).
    """
    cleaned = "".join(
        " " if ch == "\ufeff" or unicodedata.category(ch) in {"Cc", "Zl", "Zp"} else ch
        for ch in text
    )
    collapsed = " ".join(cleaned.split())
    return collapsed[:limit].rstrip()


def valid_address(addr: str) -> bool:
    """True for a plain ``local@domain`` address that can go into a header and RCPT TO.

    Refuses empty strings, spaces, control characters, angle brackets, commas and
    other characters that would need quoting or could smuggle a second address.
    """
    if not addr or len(addr) > 320 or header_safe(addr, limit=400) != addr:
        return False
    return _ADDRESS.fullmatch(addr) is not None


def ascii_address(addr: str) -> str | None:
    """``addr`` in the form plain SMTP and header fields carry: the domain in IDNA.

    ``kovacs@kávéház.hu`` becomes ``kovacs@xn--kvhz-5nac8c.hu`` (RFC 5890/5891,
    Python's IDNA codec). None when ``addr`` is not :func:`valid_address`, or its
    local part is not ASCII (that needs SMTPUTF8, RFC 6531, which triage does not
    use), or the domain is not a valid IDN.
    """
    if not valid_address(addr):
        return None
    if addr.isascii():
        return addr
    local, _, domain = addr.rpartition("@")
    if not local.isascii():
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return f"{local}@{ascii_domain}"


def parse_mailbox(text: str) -> tuple[str, str]:
    """Split ``"Name <local@domain>"`` into (name, address); ("", "") when unusable."""
    name, addr = parseaddr(text)
    if not valid_address(addr):
        return "", ""
    return header_safe(name, limit=200), addr
