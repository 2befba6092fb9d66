"""Message identifiers: Message-ID, In-Reply-To, References (RFC 5322 §3.6.4).

Every identifier triage stores or looks up goes through :func:`normalize_msg_id`
once, so a reply threads whatever form its client wrote the parent's id in:

- angle brackets are added when missing (``abc@example.com``, which some clients
  and list software write in In-Reply-To) and doubled ones removed (``<<abc@x>>``);
- white space inside the brackets is dropped (RFC 5322 §4.5.4 obs-id allows CFWS
  around the parts; a folded id comes back as ``<abc@ example.com>``);
- comments (``<abc@x> (Kovács Ödön's message of ...)``), the old RFC 822 phrase
  form of In-Reply-To (``Your message of "Tue, 14 May" <abc@x>``), commas and
  other junk between ids are ignored;
- the id-right (after the last ``@``) is lowercased: it is a domain name (or
  domain literal) in practice, and domains compare case-insensitively (RFC 5321
  §2.4; RFC 5322 §3.6.4 asks for a domain there), and some servers rewrite its
  case on the way. The id-left is kept as written: it is case-sensitive.

A message without a Message-ID gets a synthetic one from the hash of its raw
bytes and where it was found (B17): two different mails that share From,
Subject and Date still get different ids, and the same mail fetched twice
from the same place gets the same id.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "MAX_ID",
    "MAX_REFERENCES",
    "first_msg_id",
    "msg_ids",
    "normalize_msg_id",
    "synthetic_message_id",
]

MAX_ID = 998
"""Longest identifier kept (RFC 5322 §2.1.1 line limit; the store's column size)."""
MAX_REFERENCES = 100
"""References kept: the last ones (the nearest ancestors) when there are more."""

_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"?'  # a quoted string (a phrase or an obsolete quoted id-left)
    r"|\((?:[^()\\]|\\.)*\)?"  # a comment (nesting is resolved by repeating the match)
    r"|<[^<>]*>"  # an id in brackets
    r"|[^\s\"(<>,;]+"  # a word
    r"|[\s\S]",  # anything else: one character of junk
)
_BARE_ID = re.compile(r"[^\s<>@\"(),;:\\\[\]]+@[^\s<>@\"(),;:\\]+")
_SPACE = re.compile(r"\s+")
_QUOTED_LEFT = re.compile(r'^"((?:[^"\\]|\\.)*)"@')
_ATOM_LEFT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+")


def synthetic_message_id(raw: bytes, *, scope: str = "") -> str:
    """A stable Message-ID for a message that has none: a hash of its raw bytes and scope.

    ``scope`` distinguishes identical bytes in different places (mailbox,
    UIDVALIDITY, UID). Never built from From/Subject/Date alone (two different
    mails can share those). Shape: ``<synthetic.{32 hex}@triage.invalid>``.
    """
    digest = hashlib.sha256(scope.encode("utf-8", "surrogatepass") + b"\0" + raw).hexdigest()[:32]
    return f"<synthetic.{digest}@triage.invalid>"


def _strip_comments(value: str) -> str:
    """``value`` without its (nested) comments; quoted strings and brackets kept."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            quoted = ch != '"'
            out.append(ch)
            continue
        if ch == "(":
            depth += 1
            continue
        if ch == ")" and depth:
            depth -= 1
            continue
        if depth == 0:
            quoted = ch == '"'
            out.append(ch)
    return "".join(out)


def _canonical(inner: str) -> str:
    """The text between the brackets, normalised; "" when unusable."""
    inner = inner.strip()
    quoted = _QUOTED_LEFT.match(inner)
    if quoted is not None:  # an obsolete quoted id-left: its white space is part of it
        left = quoted.group(1) if _ATOM_LEFT.fullmatch(quoted.group(1)) else quoted.group()[:-1]
        inner = left + "@" + _SPACE.sub("", inner[quoted.end() :])  # <"abc"@x> is <abc@x>
    else:
        inner = _SPACE.sub("", inner)
    if (
        not inner
        or len(inner) > MAX_ID - 2
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in inner)
    ):
        return ""
    left, at, right = inner.rpartition("@")
    if not at:
        return inner
    if not left or not right:
        return ""
    return f"{left}@{right.lower()}"


def normalize_msg_id(value: str) -> str:
    """One identifier in its stored form ``<left@right-lowercased>``; "" when there is none.

    Accepts ``<abc@x>``, ``abc@x``, ``<<abc@x>>``, ``< abc@X.COM >``, ``<abc@x> (comment)``;
    the first identifier of ``value`` counts (see :func:`msg_ids`).
    """
    found = msg_ids(value)
    return found[0] if found else ""


def msg_ids(value: str) -> list[str]:
    """Every identifier in a header value (In-Reply-To, References), normalised (see the
    module docstring), in order, without duplicates.

    Ids in angle brackets count; bare ``left@right`` words count only when the value has
    no bracketed id at all (``In-Reply-To: abc@example.com``), so that an address in
    an old phrase form (``<abc@x> from odon@y``) is not taken for an id.
    """
    text = _strip_comments(value)
    bracketed: list[str] = []
    bare: list[str] = []
    for token in _TOKEN.findall(text):
        if token.startswith("<"):
            inner = token[1:-1]
            while inner.startswith("<"):
                inner = inner[1:]
            canonical = _canonical(inner.strip().rstrip(">"))
            if canonical:
                bracketed.append(f"<{canonical}>")
        elif not bracketed and "@" in token and not token.startswith(('"', "(")):
            match = _BARE_ID.fullmatch(token.strip(".:"))
            if match is not None:
                canonical = _canonical(match.group())
                if canonical:
                    bare.append(f"<{canonical}>")
    return list(dict.fromkeys(bracketed or bare))


def first_msg_id(value: str) -> str:
    """The first identifier of a Message-ID value, normalised; "" when none.

    The same as :func:`normalize_msg_id` (kept for the parser's callers).
    """
    return normalize_msg_id(value)
