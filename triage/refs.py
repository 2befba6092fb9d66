"""Ticket references and subjects: ``#1042``, ``[#1042]`` and ``Re:``/``Fwd:`` prefixes.

Pure. A ticket's reference is ``1000 + ticket id`` and is shown as ``#1042``; in a
subject it appears in brackets, ``[#1042]``, which is how a client's reply finds
its ticket when the threading headers are missing.
"""

from __future__ import annotations

import re

from triage.errors import NotFoundError

__all__ = [
    "REF_OFFSET",
    "extract_refs",
    "format_ref",
    "normalize_subject",
    "parse_ref",
    "ref_for",
    "subject_with_ref",
]

REF_OFFSET = 1000
"""References start above 1000 so they never look like a small count."""

_REF_IN_SUBJECT = re.compile(r"\[#(\d{1,9})\]")

# Reply and forward prefixes as mail clients write them in the languages our
# clients use: English Re, Fwd, Fw; Hungarian Válasz, Továbbítás, VS; German AW, WG;
# French TR; Nordic SV, VS, VB; Dutch Antw, Doorst; Spanish and Portuguese RES, RV,
# ENC. Numbered forms such as "Re[2]:" and "Re(2):" count too.
_PREFIX = re.compile(
    r"^\s*(?:re|fwd?|v[áa]lasz|tov[áa]bb[íi]t[áa]s|vs|aw|wg|tr|sv|vb|antw|doorst|res|rv|enc)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")


def ref_for(ticket_id: int) -> int:
    """The reference of the ticket with database id ``ticket_id``."""
    return REF_OFFSET + ticket_id


def format_ref(ref: int) -> str:
    """``#1042``."""
    return f"#{ref}"


def parse_ref(text: str) -> int:
    """The reference number in ``"#1042"``, ``"1042"`` or ``"[#1042]"``.

    Raises:
        NotFoundError: ``text`` is not a ticket reference.
    """
    cleaned = text.strip().removeprefix("[").removesuffix("]").strip().removeprefix("#")
    if not cleaned.isdigit() or len(cleaned) > 9:
        raise NotFoundError(f"{text!r} is not a ticket reference (write it as 1042 or #1042)")
    return int(cleaned)


def extract_refs(subject: str) -> tuple[int, ...]:
    """Every ``[#1042]`` reference in ``subject``, in order of appearance, without repeats."""
    seen: dict[int, None] = {}
    for match in _REF_IN_SUBJECT.finditer(subject):
        seen.setdefault(int(match.group(1)), None)
    return tuple(seen)


def normalize_subject(subject: str) -> str:
    """``subject`` without reply/forward prefixes and ticket references, spaces collapsed.

    ``"Re: Fwd: [#1042] Számla"`` -> ``"Számla"``; ``"VS: Válasz: Számla"`` -> ``"Számla"``.
    """
    text = _REF_IN_SUBJECT.sub(" ", subject)
    text = _SPACES.sub(" ", text).strip()
    while True:
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped.strip()
    return text


def subject_with_ref(subject: str, ref: int, *, reply: bool = True) -> str:
    """The subject of our mail about ticket ``ref``: ``"Re: [#1042] Számla"``.

    Prefixes and older references are removed first, so answering an answer does not
    pile them up. ``reply=False`` leaves out ``Re:``.
    """
    base = normalize_subject(subject)
    tagged = f"[{format_ref(ref)}] {base}".rstrip()
    return f"Re: {tagged}" if reply else tagged
