"""Pure helpers over IMAP values: UID sets, search results, FETCH items, IDLE responses.

No I/O here: these take what imapclient returns and give typed values, so they
are tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "FetchedMessage",
    "IdleSignal",
    "batches_by_size",
    "classify_idle",
    "fetched_message",
    "uid_set",
    "uids_from",
]


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    """One message as the server holds it.

    Attributes:
        uid: its UID in the folder (RFC 3501 section 2.3.1.1), > 0.
        raw: the full message bytes from ``BODY.PEEK[]`` (the ``\\Seen`` flag untouched).
        internal_date: INTERNALDATE (when the server received it), timezone-aware UTC.
            The SLA clock starts here.
        size: RFC822.SIZE as the server reports it, bytes.
    """

    uid: int
    raw: bytes
    internal_date: datetime
    size: int


def uid_set(uids: Iterable[int]) -> str:
    """An IMAP sequence set for ``uids`` with runs compressed: ``[1,2,3,7,9,10]`` -> ``1:3,7,9:10``.

    Keeps commands short for large folders (RFC 3501 section 9, ``sequence-set``).

    Raises:
        ValueError: ``uids`` is empty or holds a UID < 1.
    """
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("an IMAP sequence set needs at least one UID")
    if ordered[0] < 1:
        raise ValueError("UIDs start at 1")
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if prev > start else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if prev > start else str(start))
    return ",".join(parts)


def uids_from(found: Iterable[int], first_uid: int) -> list[int]:
    """The UIDs of a ``UID SEARCH UID first:*`` answer that really are >= ``first_uid``, sorted.

    ``first:*`` always matches the highest UID in the folder even when it is
    below ``first`` (RFC 3501 section 6.4.8: ``*`` is the largest UID in use, and
    ``n:m`` equals ``m:n``), so the raw answer would repeat the last message
    forever. This filter is what keeps a poll from re-fetching it.
    """
    return sorted({int(uid) for uid in found if int(uid) >= first_uid})


def batches_by_size(
    sizes: Mapping[int, int], *, max_count: int, max_bytes: int
) -> Iterator[list[int]]:
    """Group UIDs (ascending) into batches of at most ``max_count`` UIDs and ``max_bytes`` bytes.

    A single message larger than ``max_bytes`` gets a batch of its own.
    """
    batch: list[int] = []
    total = 0
    for uid in sorted(sizes):
        size = max(0, sizes[uid])
        if batch and (len(batch) >= max_count or total + size > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


def _aware_utc(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # a server that sent no zone: RFC 3501 requires one
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    return fallback


def fetched_message(
    uid: int, item: Mapping[bytes, Any], *, fallback_date: datetime
) -> FetchedMessage | None:
    """Build a :class:`FetchedMessage` from one imapclient FETCH item, or None without a body.

    Args:
        uid: the UID the item belongs to.
        item: imapclient's dict for that UID (``b"BODY[]"``, ``b"INTERNALDATE"``,
            ``b"RFC822.SIZE"``).
        fallback_date: used when the server sent no INTERNALDATE (aware).
    """
    raw = item.get(b"BODY[]")
    if raw is None:
        return None
    body = bytes(raw)
    size = item.get(b"RFC822.SIZE")
    return FetchedMessage(
        uid=uid,
        raw=body,
        internal_date=_aware_utc(item.get(b"INTERNALDATE"), fallback_date),
        size=int(size) if isinstance(size, int) else len(body),
    )


@dataclass(frozen=True, slots=True)
class IdleSignal:
    """What a batch of untagged responses during IDLE means.

    Attributes:
        news: the folder changed in a way worth a search (EXISTS, RECENT).
        bye: the server is closing the connection (``* BYE``, RFC 3501 section 7.1.5).
        text: the BYE text, for the log.
    """

    news: bool = False
    bye: bool = False
    text: str = ""


def _word(value: Any) -> bytes:
    return value.upper() if isinstance(value, bytes) else b""


def classify_idle(responses: Sequence[Any]) -> IdleSignal:
    """Classify imapclient's parsed IDLE responses (``[(7, b'EXISTS'), (b'BYE', ...)]``)."""
    news = bye = False
    text = ""
    for response in responses:
        if not isinstance(response, tuple) or not response:
            continue
        if len(response) >= 2 and isinstance(response[0], int):
            if _word(response[1]) in {b"EXISTS", b"RECENT"}:
                news = True
        elif _word(response[0]) == b"BYE":
            bye = True
            text = b" ".join(p for p in response[1:] if isinstance(p, bytes)).decode(
                "ascii", "replace"
            )
    return IdleSignal(news=news, bye=bye, text=text)
