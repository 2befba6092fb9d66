"""The queue's page cursor: an opaque text naming the last ticket of a page.

It holds the ticket's place in the queue order (its deadline, priority rank,
opening time and id), not an offset: a page after it starts right behind that
ticket even when tickets were claimed or solved meanwhile, and reading page 500
costs what page 1 costs.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from triage.errors import UserError
from triage.store.tickets import QueueKey

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(key: QueueKey) -> str:
    """``key`` as URL-safe text (base64url, no padding)."""
    text = "|".join(
        (key.queue_due.isoformat(), str(key.priority_rank), key.opened_at.isoformat(), str(key.id))
    )
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> QueueKey:
    """The key in a cursor made by :func:`encode_cursor`.

    Raises:
        UserError: the text is not such a cursor (edited by hand, cut short).
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        due, rank, opened, ident = raw.split("|")
        key = QueueKey(
            queue_due=datetime.fromisoformat(due),
            priority_rank=int(rank),
            opened_at=datetime.fromisoformat(opened),
            id=int(ident),
        )
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise UserError(f"{cursor[:40]!r} is not a queue position from this page") from None
    if (
        key.queue_due.tzinfo is None
        or key.opened_at.tzinfo is None
        or not (0 <= key.id < 2**62 and abs(key.priority_rank) < 2**62)
    ):
        raise UserError(f"{cursor[:40]!r} is not a queue position from this page")
    return key
