"""Header-safe text for outgoing mail: subjects, names, Message-IDs, addresses.

Everything here is pure. Text from a client (a subject, a display name) is made
safe before it goes into a header, whatever the parser handed over: CR, LF,
other control characters and Unicode line separators become spaces, so no
client text can start a new header line (header injection, cases/B25).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from triage.mail.addresses import (
    ascii_address,
    header_safe,
    parse_mailbox,
    valid_address,
)
from triage.refs import subject_with_ref

__all__ = [
    "MAX_REFERENCES",
    "ascii_address",
    "header_safe",
    "make_message_id",
    "message_id_domain",
    "message_ids",
    "parse_mailbox",
    "reply_subject",
    "valid_address",
]

MAX_REFERENCES = 20
"""References keeps the first and the last ones of a long thread (RFC 5322 section 3.6.4)."""

_MSGID = re.compile(r"<[^<>\s\x00-\x1f\x7f]{1,900}>")


def reply_subject(original: str, ref: int) -> str:
    """``Re: [#ref] <original subject>``, header-safe (the form of ../shared/cases B25).

    The ticket reference comes first, as in every mail triage writes (escalations:
    ``[#ref] ...``). Reply and forward prefixes of the original (``Re:``, ``AW:``,
    ``Válasz:`` ...) and older ``[#...]`` references are dropped first
    (:func:`triage.refs.subject_with_ref`), so the subject does not grow
    ``Re: Re:``. An empty subject gives ``Re: [#ref]``. CR, LF and control
    characters become spaces: no header injection.
    """
    return header_safe(subject_with_ref(header_safe(original), ref))


def message_ids(*values: str | Iterable[str]) -> list[str]:
    """Every well-formed ``<...>`` Message-ID found in ``values``, in order, without repeats.

    Anything else (stray text, CR/LF, controls) is dropped, so the result is safe
    for In-Reply-To and References.
    """
    found: list[str] = []
    for value in values:
        texts = [value] if isinstance(value, str) else list(value)
        for text in texts:
            for mid in _MSGID.findall(text):
                if mid not in found:
                    found.append(mid)
    return found


def message_id_domain(configured: str, from_address: str) -> str:
    """The domain of our Message-IDs: ``configured``, else the domain of ``from_address``.

    Falls back to ``triage.invalid`` (RFC 2606) when neither gives one.
    """
    domain = configured.strip().strip("@").lower()
    if not domain:
        _, addr = parse_mailbox(from_address)
        domain = addr.rpartition("@")[2].lower() if addr else ""
    if not domain or not re.fullmatch(r"[a-z0-9.-]+", domain):
        return "triage.invalid"
    return domain


def make_message_id(domain: str, kind: str, ref: int | None = None) -> str:
    """A new, unique Message-ID from our domain: ``<kind.ref.random@domain>`` (RFC 5322 3.6.4).

    The ticket reference in it lets a bounce or a reply be traced to the ticket.
    """
    token = secrets.token_hex(10)
    middle = f"{kind}.{ref}.{token}" if ref is not None else f"{kind}.{token}"
    return f"<{middle}@{domain}>"
