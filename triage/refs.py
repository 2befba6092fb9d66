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

# Reply and forward prefixes as mail clients write them, in the languages of our clients
# and their neighbours (Outlook's, Gmail's, Thunderbird's and Apple Mail's
# localisations; en.wikipedia.org "List of email subject abbreviations"):
_PREFIX_WORDS = (
    "re", "fw", "fwd",  # English, and most clients in any language
    "vá", "válasz", "tov", "továbbítás", "továbbítva",  # Hungarian (Outlook: VÁ, TOV)
    "aw", "antwort", "wg", "wtr",  # German
    "antw", "doorst",  # Dutch
    "sv", "vs", "vb", "vl", "fs",  # Swedish, Danish, Norwegian, Finnish, Icelandic
    "tr",  # French (RE : and TR :, with a space before the colon)
    "rv", "res", "enc", "rif",  # Spanish, Portuguese, Italian
    "odp", "pd", "odg", "prosl",  # Polish, Czech, Slovak, Croatian, Serbian
    "ynt", "ilt", "i̇lt",  # Turkish
    "atb", "ats", "pārs", "pers",  # Latvian, Lithuanian
    "απ", "σχετ", "πρθ",  # Greek
    "отв", "пер", "пересл", "відп",  # Russian, Ukrainian
    "回复", "回覆", "答复", "转发", "轉寄", "轉發", "返信", "転送", "회신", "답장", "전달",
    "external", "extern", "külső",  # mail gateways' "EXTERNAL:" warnings
)  # fmt: skip
_PREFIX = re.compile(
    r"^\s*(?:" + "|".join(sorted(map(re.escape, _PREFIX_WORDS), key=len, reverse=True)) + r")"
    r"\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]\s*",
    re.IGNORECASE,
)
"""One reply or forward prefix (``Re:``, ``VÁ:``, ``AW:``, ``Re[2]:``, ``Re(2):``, ``RE :``)."""
_TAG = re.compile(r"^\s*(\[[^\[\]]{1,80}\]|\*{1,3}[^*]{1,40}\*{1,3})\s*")
"""A bracketed tag at the front: ``[EXTERNAL]``, ``[list-name]``, ``*EXTERNAL*``."""
_GATEWAY_TAG = re.compile(
    r"^[\[*]+\s*(?:(?:caution|warning|attention)\s*[:\-]?\s*)?"
    r"(?:external|ext|extern|externe|externo|esterno|külső|kulso|spam|suspected\s+spam|"
    r"possible\s+spam|suspicious|phishing|bulk|marketing)"
    r"(?:\s+(?:e-?mail|sender|message|levél|feladó))?\s*[\]*]+$",
    re.IGNORECASE,
)
"""Tags a mail gateway or spam filter puts in front of the subject: noise, not the client's."""
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

    ``"Re: Fwd: [#1042] Számla"`` -> ``"Számla"``; ``"VÁ: TOV: AW: Számla"`` -> ``"Számla"``;
    ``"[EXTERNAL] RE: AW: Fwd: [#1042] Számla"`` -> ``"Számla"``. Prefixes are stripped
    from the front in any order and number (a stack of clients in several languages).
    Tags a mail gateway adds (``[EXTERNAL]``, ``*EXTERNAL*``, ``[SPAM]``, ``[Külső]``) go
    too; any other tag in front (a list's ``[hirlevel]``) is kept, in front, with the
    prefixes after it removed. The ticket reference is removed here (it is shown apart
    and written back by :func:`subject_with_ref`); :func:`extract_refs` finds it in the
    subject as received.
    """
    text = _SPACES.sub(" ", _REF_IN_SUBJECT.sub(" ", subject)).strip()
    kept: list[str] = []
    while True:
        prefix = _PREFIX.match(text)
        if prefix is not None:
            text = text[prefix.end() :]
            continue
        tag = _TAG.match(text)
        if tag is not None and text[tag.end() :].strip():
            if not _GATEWAY_TAG.fullmatch(tag.group(1)):
                kept.append(tag.group(1))
            text = text[tag.end() :]
            continue
        break
    return " ".join([*kept, text.strip()]).strip()


def subject_with_ref(subject: str, ref: int, *, reply: bool = True) -> str:
    """The subject of our mail about ticket ``ref``: ``"Re: [#1042] Számla"``.

    Prefixes and older references are removed first, so answering an answer does not
    pile them up. ``reply=False`` leaves out ``Re:``.
    """
    base = normalize_subject(subject)
    tagged = f"[{format_ref(ref)}] {base}".rstrip()
    return f"Re: {tagged}" if reply else tagged
