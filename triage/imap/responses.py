"""Pure helpers over IMAP values: UID sets, search results, FETCH items, IDLE responses.

No I/O here: these take what imapclient returns and give typed values, so they
are tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from imapclient.datetime_util import parse_to_datetime
from imapclient.exceptions import ProtocolError
from imapclient.response_parser import parse_response

__all__ = [
    "FetchAnswer",
    "FetchBatch",
    "FetchedMessage",
    "IdleSignal",
    "batches_by_size",
    "classify_idle",
    "read_fetch_answer",
    "split_fetch_responses",
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
    sizes: Mapping[int, int | None], *, max_count: int, max_bytes: int
) -> Iterator[list[int]]:
    """Group UIDs (ascending) into batches of at most ``max_count`` UIDs and ``max_bytes`` bytes.

    A single message larger than ``max_bytes`` gets a batch of its own, and so
    does a message whose size is unknown (None: the server left it out of its
    RFC822.SIZE answer), so memory stays bounded whatever it turns out to be.
    """
    batch: list[int] = []
    total = 0
    for uid in sorted(sizes):
        known = sizes[uid]
        size = max_bytes if known is None else max(0, known)
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


@dataclass(frozen=True, slots=True)
class FetchBatch:
    """What one ``UID FETCH`` of a batch brought: the messages delivered, and the UIDs not.

    Iterating a batch yields its messages (UID order), so ``for m in batch`` works.

    Attributes:
        messages: the messages delivered whole, in UID order.
        missing: UIDs asked for whose message did not come, with the reason
            (left out of the answer, no ``BODY[]``, a NIL or empty literal, two
            different bodies). Whether such a UID is still in the folder (a
            server fault: retry) or was expunged meanwhile (nothing to do) is
            for the caller to find out with ``UID SEARCH``.
    """

    messages: tuple[FetchedMessage, ...] = ()
    missing: Mapping[int, str] = field(default_factory=dict)

    def __iter__(self) -> Iterator[FetchedMessage]:
        return iter(self.messages)

    def __len__(self) -> int:
        return len(self.messages)


@dataclass(frozen=True, slots=True)
class FetchAnswer:
    """A ``UID FETCH`` answer read response by response (:func:`read_fetch_answer`).

    Attributes:
        batch: the messages delivered and the UIDs missing.
        unrequested: UIDs the answer carried a message for although nobody asked
            (ignored: each is fetched in its own turn).
        unsolicited: responses without a UID (RFC 3501 section 7.4.2: a flag change
            made by another client, announced by sequence number): ignored.
        sizes: RFC822.SIZE per UID where the answer gave one.
    """

    batch: FetchBatch
    unrequested: tuple[int, ...] = ()
    unsolicited: int = 0
    sizes: Mapping[int, int] = field(default_factory=dict)


def split_fetch_responses(data: Sequence[Any]) -> list[tuple[int, dict[bytes, list[Any]]]]:
    """Split imaplib's raw FETCH data into ``(sequence number, {ITEM: [values...]})``.

    Unlike imapclient's ``parse_fetch_response`` nothing is merged: every
    untagged FETCH response stays apart, and an item a response repeats keeps
    every value, so duplicates can be seen. Item names are upper case; the UID
    is the ``b"UID"`` item.

    Raises:
        ProtocolError: the data is not a sequence of FETCH responses.
    """
    if not data or list(data) == [None]:
        return []
    atoms = parse_response(list(data))
    if len(atoms) % 2:
        raise ProtocolError("a FETCH response without its data")
    out: list[tuple[int, dict[bytes, list[Any]]]] = []
    for i in range(0, len(atoms), 2):
        seq, items = atoms[i], atoms[i + 1]
        if not isinstance(seq, int) or not isinstance(items, tuple) or len(items) % 2:
            raise ProtocolError(f"not a FETCH response: {seq!r} {items!r}"[:200])
        fields: dict[bytes, list[Any]] = {}
        for j in range(0, len(items), 2):
            name = items[j]
            key = name.upper() if isinstance(name, bytes) else str(name).encode()
            fields.setdefault(key, []).append(items[j + 1])
        out.append((seq, fields))
    return out


def _first_int(values: list[Any] | None) -> int | None:
    for value in values or ():
        try:
            return int(value)
        except (TypeError, ValueError):
            continue
    return None


def _internal_date(values: list[Any] | None) -> datetime | None:
    for value in values or ():
        if isinstance(value, datetime):
            return value
        if isinstance(value, bytes):
            try:
                parsed: datetime = parse_to_datetime(value, normalise=False)
            except ValueError:
                continue
            return parsed
    return None


def read_fetch_answer(
    responses: Iterable[tuple[int, Mapping[bytes, list[Any]]]],
    asked: Iterable[int],
    *,
    fallback_date: datetime,
) -> FetchAnswer:
    """Match a ``UID FETCH (UID INTERNALDATE RFC822.SIZE BODY.PEEK[])`` answer to the UIDs asked.

    Args:
        responses: :func:`split_fetch_responses` output.
        asked: the UIDs the command named.
        fallback_date: INTERNALDATE when the server sends none (aware).

    Rules (each a fault some server shows):

    - A message is delivered only with a ``BODY[]`` that is a non-empty string.
      ``BODY[] NIL`` or an empty literal, or no ``BODY[]`` at all (a response
      with only FLAGS, as an unsolicited flag update sent in the middle of our
      FETCH looks), leaves the UID missing. An empty message does not exist in
      practice (RFC 5322 requires header fields); a server fault does.
    - A response without a UID is unsolicited (RFC 3501 section 6.4.8: every
      response caused by a UID command carries the UID): never matched to a UID
      by its sequence number.
    - A UID not asked for is ignored (the server's bug, or another client's
      change announced with its UID).
    - The same UID in several responses, or ``BODY[]`` twice in one response:
      equal bodies are one message; different bodies mean the answer cannot be
      trusted, and the UID counts as missing.
    - RFC822.SIZE is not compared with the body's length: servers report
      estimates (Exchange, hMailServer, WildDuck differ by bytes to two thirds),
      and mail systems that trusted it discarded good mail. A literal really cut
      short is a dropped connection, which imaplib reports as an error.
    """
    wanted = set(asked)
    bodies: dict[int, list[Any]] = {}
    dates: dict[int, datetime] = {}
    sizes: dict[int, int] = {}
    unrequested: set[int] = set()
    seen: set[int] = set()
    unsolicited = 0
    for _seq, fields in responses:
        uid = _first_int(fields.get(b"UID"))
        if uid is None:
            unsolicited += 1
            continue
        if uid not in wanted:
            unrequested.add(uid)
            continue
        seen.add(uid)
        if b"BODY[]" in fields:
            bodies.setdefault(uid, []).extend(fields[b"BODY[]"])
        date = _internal_date(fields.get(b"INTERNALDATE"))
        if date is not None and uid not in dates:
            dates[uid] = date
        size = _first_int(fields.get(b"RFC822.SIZE"))
        if size is not None and uid not in sizes:
            sizes[uid] = size
    messages: list[FetchedMessage] = []
    missing: dict[int, str] = {}
    for uid in sorted(wanted):
        values = bodies.get(uid)
        if values is None:
            missing[uid] = (
                "the FETCH answer had no BODY[] for it"
                if uid in seen
                else "the FETCH answer left it out"
            )
            continue
        distinct = {bytes(v) if isinstance(v, bytes | bytearray) else v for v in values}
        if len(distinct) > 1:
            missing[uid] = f"the FETCH answer held {len(distinct)} different bodies"
            continue
        [body] = distinct
        if body is None:
            missing[uid] = "BODY[] was NIL"
            continue
        if not isinstance(body, bytes):
            missing[uid] = f"BODY[] was not a string ({type(body).__name__})"
            continue
        if not body:
            missing[uid] = "BODY[] was empty"
            continue
        messages.append(
            FetchedMessage(
                uid=uid,
                raw=body,
                internal_date=_aware_utc(dates.get(uid), fallback_date),
                size=sizes.get(uid, len(body)),
            )
        )
    return FetchAnswer(
        batch=FetchBatch(messages=tuple(messages), missing=missing),
        unrequested=tuple(sorted(unrequested)),
        unsolicited=unsolicited,
        sizes=sizes,
    )
