"""Message identifiers: Message-ID, In-Reply-To, References (RFC 5322 §3.6.4).

A message without a Message-ID gets a synthetic one from the hash of its raw
bytes and where it was found (B17): two different mails that share From,
Subject and Date still get different ids, and the same mail fetched twice
from the same place gets the same id.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["MAX_ID", "MAX_REFERENCES", "first_msg_id", "msg_ids", "synthetic_message_id"]

MAX_ID = 998
"""Longest identifier kept (RFC 5322 §2.1.1 line limit; the store's column size)."""
MAX_REFERENCES = 100
"""References kept: the last ones (the nearest ancestors) when there are more."""

_MSG_ID = re.compile(r"<([^<>\s]{1,996})>")
_BARE_ID = re.compile(r"[^<>\s@]+@[^<>\s@]+")


def synthetic_message_id(raw: bytes, *, scope: str = "") -> str:
    """A stable Message-ID for a message that has none: a hash of its raw bytes and scope.

    ``scope`` distinguishes identical bytes in different places (mailbox,
    UIDVALIDITY, UID). Never built from From/Subject/Date alone (two different
    mails can share those). Shape: ``<synthetic.{32 hex}@triage.invalid>``.
    """
    digest = hashlib.sha256(scope.encode("utf-8", "surrogatepass") + b"\0" + raw).hexdigest()[:32]
    return f"<synthetic.{digest}@triage.invalid>"


def msg_ids(value: str) -> list[str]:
    """Every ``<id>`` in a header value, in order, without duplicates."""
    return list(dict.fromkeys(f"<{m}>" for m in _MSG_ID.findall(value)))


def first_msg_id(value: str) -> str:
    """The first ``<id>`` in a value; a bare ``left@right`` (no brackets at all) is
    bracketed; "" when none."""
    ids = _MSG_ID.findall(value)
    if ids:
        return f"<{ids[0]}>"
    if "<" in value:  # brackets around something that is no id: unusable
        return ""
    bare = _BARE_ID.search(value)
    if bare and len(bare.group()) <= MAX_ID - 2:
        return f"<{bare.group()}>"
    return ""
