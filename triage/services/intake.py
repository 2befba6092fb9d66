"""Intake: each fetched or imported message stored exactly once, parsed, in one transaction.

One database transaction per message holds the ``messages`` row (raw bytes,
SHA-256, size, INTERNALDATE and the parsed fields), the folder's new progress
(``folders.uidvalidity`` / ``last_uid``) and whatever the :class:`MessagePipeline`
adds (routing, ticket and outbox rows, added by the lead). So a crash at any
point either keeps all of it or none of it, and the next pass starts after the
last committed UID.

Exactly once:
    - Incremental passes fetch UIDs above the stored high-water mark; the unique
      key ``(folder_id, uidvalidity, uid)`` makes a repeat (a second worker, a
      replayed UID) harmless: it is reported as :attr:`StoreOutcome.DUPLICATE`.
    - UIDVALIDITY change (RFC 3501 section 2.3.1.1; ../shared/cases/B27): the
      high-water mark is discarded, the folder rescanned from UID 1, and each
      message deduplicated by Message-ID + SHA-256 of its raw bytes. An old
      message recognized this way gets NO new row (decision: a row pointing to
      the old one would be a second message for the same mail, and the pipeline —
      ticket, acknowledgment — must not run for it); it is reported as
      :attr:`StoreOutcome.RECOGNIZED` and logged ``message_duplicate``. New mail
      is stored under the new UIDVALIDITY. The new UIDVALIDITY and high-water
      mark are written only when the rescan has gone through the whole folder;
      a crash before that repeats the rescan, which skips what it already stored.
    - ``triage import`` dedupes the same way (Message-ID + raw hash) across
      everything stored, so importing twice adds nothing.

Never skipped: the high-water mark never passes a UID the server listed but
did not deliver (see :mod:`triage.imap.watch`). Messages above such a gap are
stored without moving it (the next pass skips them: ``SyncPlan.skip_uids``),
the gap is recorded in ``missing_uids`` with its attempts and next retry, and
``end_pass`` moves the mark once the gap is closed: by the message arriving,
by its expunge, or by a placeholder (:meth:`Intake.store_placeholder`) after
the last attempt.

Failure boundary: anything unexpected while parsing, building the row or
running the pipeline for one message is caught here; that transaction is rolled
back and the message stored raw with ``parse_status = "error"`` and the error
(the pipeline then sees it with ``parse_status = error`` and routes it to the
fallback queue; if the pipeline fails on that too, the raw row is stored
without it). Only a database that cannot be written raises
(:class:`~triage.errors.StoreError`): the message is not marked done and is
fetched again on the next pass.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext, suppress
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from triage.clock import Clock, SystemClock
from triage.config import ImapSettings, Settings
from triage.domain import Address, InboundMessage, MessageKind, ParseStatus
from triage.errors import ConfigError, MailboxError, StoreError
from triage.imap.connect import ImapConnector
from triage.imap.mailbox import FolderState, ImapMailbox
from triage.imap.responses import FetchedMessage
from triage.imap.watch import (
    FolderWatcher,
    MissingUid,
    PassReport,
    StoreOutcome,
    SyncPlan,
    WatchedMailbox,
)
from triage.liveness import child_event
from triage.mail import parse_message
from triage.oauth2 import token_getter
from triage.services.contract import (
    BatchPipeline,
    MessagePipeline,
    ModelAnswer,
    NoPipeline,
    Prepared,
    RowPipeline,
)
from triage.services.workers import LEASE_RENEW_SECONDS, LeaseKeeper, WorkerLeases
from triage.store import Database
from triage.store.models import Folder, Message
from triage.store.models import MissingUid as MissingUidRow
from triage.store.rows import NewMessage

__all__ = [
    "STREAM_RAW_MIN",
    "BatchPipeline",
    "FolderProgress",
    "FolderResult",
    "Intake",
    "MessagePipeline",
    "NoPipeline",
    "Poller",
    "plan_sync",
]

log = structlog.get_logger("triage.intake")

ParseFunction = Callable[..., InboundMessage]

_MAX_ERROR = 2000
"""Characters of an error kept in ``parse_error`` / ``folders.last_error``."""


@dataclass(frozen=True, slots=True)
class FolderProgress:
    """A folder's stored progress: the pair (UIDVALIDITY, highest UID stored)."""

    uidvalidity: int | None
    last_uid: int


def plan_sync(folder: str, progress: FolderProgress, uidvalidity: int) -> SyncPlan:
    """Decide where a pass over ``folder`` starts (pure).

    - never synced: from UID 1, progress written per message;
    - same UIDVALIDITY: from ``last_uid + 1``;
    - different UIDVALIDITY: the old UIDs mean nothing now (RFC 3501 section
      2.3.1.1), so from UID 1 as a rescan deduplicating by content (B27). Never
      ``UID SEARCH last+1:*`` under the new value: that would skip mail forever.
    """
    if progress.uidvalidity is None:
        return SyncPlan(folder=folder, uidvalidity=uidvalidity, first_uid=1)
    if progress.uidvalidity != uidvalidity:
        return SyncPlan(
            folder=folder,
            uidvalidity=uidvalidity,
            first_uid=1,
            rescan=True,
            previous_uidvalidity=progress.uidvalidity,
        )
    return SyncPlan(
        folder=folder,
        uidvalidity=uidvalidity,
        first_uid=progress.last_uid + 1,
        previous_uidvalidity=progress.uidvalidity,
        last_uid=progress.last_uid,
    )


@dataclass(frozen=True, slots=True)
class _Target:
    """Where and how one message is stored."""

    source: str
    folder: str = ""
    folder_id: int | None = None
    uidvalidity: int | None = None
    uid: int | None = None
    internal_date: datetime | None = None
    received_at: datetime | None = None
    """Fixed receive time (INTERNALDATE); None: the Date header, else ``fallback_date``."""
    fallback_date: datetime | None = None
    scope: str = ""
    dedupe: bool = False
    """Look for the same Message-ID + raw hash first (rescan, import)."""
    progress: bool = False
    """A fetched message under the folder's stored UIDVALIDITY (not a rescan): a UID at or
    below the stored high-water mark is already stored."""


BATCH_MAX_MESSAGES = 200
"""Messages committed in one transaction at most (:meth:`Intake.store_batch`)."""
BATCH_MAX_SECONDS = 0.1
"""A batch's transaction commits once it has been open this long (seconds), whatever its
size: live mail is not held back behind a slow message."""


@dataclass(slots=True)
class _Item:
    """One message for a transaction: fetched or imported bytes, or a placeholder."""

    raw: bytes
    target: _Target
    degraded: InboundMessage | None = None
    """Store this error record as is (a placeholder), without parsing ``raw``."""
    error: str = ""
    after: Callable[[Session, Message], None] | None = None
    """Run in the message's savepoint after its row (a placeholder links its record)."""


@dataclass(frozen=True, slots=True)
class _Done:
    """What became of one item in its transaction (logged once the transaction commits)."""

    outcome: StoreOutcome
    target: _Target
    message: InboundMessage | None
    existing: int | None = None


class _RetryWithSavepointsError(Exception):
    """A message failed in a transaction taken without savepoints: roll it all back and
    store the same items again, each in its own savepoint (:meth:`Intake._transaction`)."""


class _AlreadyStoredError(Exception):
    def __init__(self, outcome: StoreOutcome, existing: int | None = None) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome
        self.existing = existing


def _describe(exc: BaseException) -> str:
    """``Type: message`` for a log line or ``parse_error``, never with a message's content.

    SQLAlchemy's own text of a failed statement lists its parameters (raw bytes,
    body text) and PostgreSQL's DETAIL line repeats the row: only the first line
    of the driver's message is kept.
    """
    if isinstance(exc, StatementError) and exc.orig is not None:
        first = (str(exc.orig).strip().splitlines() or [""])[0]
        return _clean(f"{type(exc).__name__}: {first}", _MAX_ERROR)
    return _clean(f"{type(exc).__name__}: {exc}", _MAX_ERROR)


def _is_database_down(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _clean(value: str, limit: int | None = None) -> str:
    """A string any database accepts: no NUL, no lone surrogate, at most ``limit`` characters."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value[:limit] if limit is not None else value


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    if isinstance(value, dict):
        return {_clean(str(k)): _clean_json(v) for k, v in value.items()}
    return value


def _missing(row: MissingUidRow, now: datetime) -> MissingUid:
    return MissingUid(
        uid=row.uid,
        attempts=row.attempts,
        first_missed_at=row.first_missed_at,
        retry_in=(row.next_attempt_at - now).total_seconds(),
        reason=row.reason,
    )


def _addresses(values: Iterable[Address]) -> list[dict[str, str]]:
    return [{"name": a.name, "addr": a.addr} for a in values]


STREAM_RAW_MIN = 1024 * 1024
"""Raw messages of this many bytes or more are written to SQLite last (issue 13.9).

SQLite copies a bound value whole and builds the row's record from it, and every
later UPDATE of the row (the pipeline sets its ticket) rewrites the whole record:
a 30 MB message took the daemon about 90 MB above its own size. Such a row is
inserted without its raw bytes, and they are written by one UPDATE at the end of
the same savepoint, when nothing changes the row any more. (SQLite's incremental
blob I/O would need no whole copy, but it refuses a table with an expression
index, and ``messages`` has one.) PostgreSQL keeps an unchanged large value on an
UPDATE, so it gets the row whole at once."""


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _write_raw(session: Session, message_id: int, raw: bytes) -> None:
    """Write ``raw`` into the ``messages`` row ``message_id``, after flushing what is
    pending (so that nothing rewrites the row after it). Raises what the database
    raises (the savepoint is then rolled back)."""
    session.flush()
    session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(raw=raw)
        .execution_options(synchronize_session=False)
    )


class Intake:
    """Stores fetched and imported messages exactly once (a :class:`~triage.imap.FolderSink`).

    Args:
        db: the store.
        pipeline: runs inside each message's transaction (default: nothing).
        clock: current time for ``last_poll_at`` and imports without a date.
        max_message_size: bytes parsed at most (passed to a parser that accepts
            ``max_size``); the raw bytes are always stored whole.
        parse: the parser, ``parse_message(raw, *, received_at, scope, ...)``.
        on_commit: called (in the storing thread) after each message's transaction
            commits, e.g. to wake the outbox dispatcher; must not raise.
        source: ``messages.source`` of fetched mail (``imap``; ``sent`` for a watched
            Sent folder).
        direction: ``messages.direction`` of fetched mail (``in``; ``out`` for Sent).
        folder_prefix: put before an IMAP folder's name to make its ``folders.name``
            (``sales:`` for the ``[[imap.accounts]]`` entry named ``sales``; "" for
            the ``[imap]`` account, whose folders keep their plain names).
    """

    def __init__(
        self,
        db: Database,
        *,
        pipeline: MessagePipeline | None = None,
        clock: Clock | None = None,
        max_message_size: int | None = None,
        parse: ParseFunction = parse_message,
        on_commit: Callable[[], None] | None = None,
        source: str = "imap",
        direction: str = "in",
        folder_prefix: str = "",
    ) -> None:
        self.db = db
        self.folder_prefix = folder_prefix
        self.on_commit = on_commit
        self.source = source
        self.direction = direction
        self.pipeline: MessagePipeline = pipeline or NoPipeline()
        self.clock: Clock = clock or SystemClock()
        self.max_message_size = max_message_size
        self._parse_fn = parse
        self._parse_takes_max_size = "max_size" in inspect.signature(parse).parameters
        self._folder_ids: dict[str, int] = {}
        self._ahead: dict[str, dict[str, Prepared]] = {}
        """Folder -> scope -> a fetched message parsed and classified ahead (the folders'
        watcher threads share an Intake)."""
        self._ahead_lock = threading.Lock()

    # -- folders ----------------------------------------------------------------

    def folder_id(self, name: str) -> int:
        """The ``folders.id`` of IMAP folder ``name`` (with this intake's prefix), creating
        the row on first use. Raises StoreError."""
        name = self.folder_prefix + name
        cached = self._folder_ids.get(name)
        if cached is not None:
            return cached
        for _ in range(2):
            try:
                with self.db.session() as s:
                    folder = s.scalar(select(Folder).where(Folder.name == name))
                    if folder is None:
                        folder = Folder(name=name, last_uid=0, last_error="")
                        s.add(folder)
                        s.flush()
                    self._folder_ids[name] = folder.id
                    return folder.id
            except IntegrityError:  # created by another worker at the same moment
                continue
            except DBAPIError as exc:
                raise StoreError(f"cannot read folder {name!r}: {exc.orig}") from None
        raise StoreError(f"cannot create folder {name!r}")

    def progress(self, name: str) -> FolderProgress:
        """The stored (UIDVALIDITY, last UID) of folder ``name``. Raises StoreError."""
        fid = self.folder_id(name)
        try:
            with self.db.session() as s:
                folder = s.get_one(Folder, fid)
                return FolderProgress(folder.uidvalidity, folder.last_uid)
        except DBAPIError as exc:
            raise StoreError(f"cannot read progress of {name!r}: {exc.orig}") from None

    # -- FolderSink --------------------------------------------------------------

    def begin_pass(self, state: FolderState) -> SyncPlan:
        """Plan a pass from stored progress; log ``uidvalidity_changed`` on a mismatch.

        The plan also carries the UIDs above the mark that are already stored (a
        gap left by a missing UID, or a rescan resumed) and the missing UIDs still
        being retried. Records of a UID stored meanwhile are dropped here; so are
        pending records of another UIDVALIDITY (those UIDs mean nothing now).

        Raises:
            StoreError: the database cannot be read or written.
        """
        with self._ahead_lock:  # what an interrupted pass prepared and never stored
            self._ahead.pop(state.folder, None)
        progress = self.progress(state.folder)
        plan = plan_sync(state.folder, progress, state.uidvalidity)
        fid = self.folder_id(state.folder)
        above = plan.first_uid - 1
        try:
            with self.db.session() as s:
                stored = s.scalars(
                    select(Message.uid).where(
                        Message.folder_id == fid,
                        Message.uidvalidity == state.uidvalidity,
                        Message.uid > above,
                    )
                ).all()
                skip = frozenset(uid for uid in stored if uid is not None)
                missing = self._pending_missing(s, fid, state.uidvalidity, above, skip)
        except DBAPIError as exc:
            raise StoreError(f"cannot read stored UIDs of {state.folder!r}: {exc.orig}") from None
        plan = replace(plan, skip_uids=skip, missing=missing)
        if not plan.rescan:
            return plan
        log.warning(
            "uidvalidity_changed",
            folder=state.folder,
            old=progress.uidvalidity,
            new=state.uidvalidity,
            old_last_uid=progress.last_uid,
            resumed=bool(skip),
        )
        return plan

    def _pending_missing(
        self, session: Session, fid: int, uidvalidity: int, above: int, stored: frozenset[int]
    ) -> dict[int, MissingUid]:
        """Missing UIDs still retried under ``uidvalidity`` (> ``above``), tidying stale rows."""
        pending = MissingUidRow.message_id.is_(None)
        session.execute(
            delete(MissingUidRow).where(
                MissingUidRow.folder_id == fid,
                pending,
                or_(MissingUidRow.uidvalidity != uidvalidity, MissingUidRow.uid <= above),
            )
        )
        now = self.clock.now()
        missing: dict[int, MissingUid] = {}
        rows = session.scalars(
            select(MissingUidRow).where(
                MissingUidRow.folder_id == fid,
                MissingUidRow.uidvalidity == uidvalidity,
                MissingUidRow.uid > above,
                pending,
            )
        ).all()
        for row in rows:
            if row.uid in stored:  # delivered, the record's removal lost in a crash
                session.delete(row)
                continue
            missing[row.uid] = _missing(row, now)
        return missing

    def prepare(self, plan: SyncPlan, batch: Sequence[FetchedMessage]) -> None:
        """Parse a fetched batch ahead and let a :class:`BatchPipeline` work ahead on it.

        :meth:`store` then uses these parsed messages (the classifier answers a
        batch in one call about ten times faster than message by message). Never
        raises: a message that fails here is parsed again, inside its failure
        boundary, when it is stored. Thread-safe, and it touches no database. Kept
        until stored, or until the folder's next pass begins.

        Issue 18.3 tried running it for the next batch in a thread while this one is
        stored: slower, not faster (the storing thread releases the GIL on every
        statement and then waits for the parsing thread to give it back), so the
        watcher calls it before storing each batch; a process would be needed.
        """
        parsed: dict[str, InboundMessage] = {}
        for message in batch:
            target = self._fetched_target(plan, message)
            try:
                parsed[target.scope] = self._parse(message.raw, target)
            except Exception:  # noqa: BLE001, S112 - store() meets it again and records it
                continue
        prepared = {scope: Prepared(message) for scope, message in parsed.items()}
        if isinstance(self.pipeline, BatchPipeline) and parsed:
            try:
                answers = self.pipeline.prepare(list(parsed.values()))
                prepared = {
                    scope: Prepared(message, answer)
                    for (scope, message), answer in zip(parsed.items(), answers, strict=True)
                }
            except Exception as exc:  # noqa: BLE001 - only the head start is lost
                log.warning("pipeline_prepare_failed", folder=plan.folder, error=_describe(exc))
        with self._ahead_lock:
            self._ahead.setdefault(plan.folder, {}).update(prepared)

    def _prepared(self, target: _Target) -> Prepared | None:
        """The head start for the message at ``target`` (taken once), or None."""
        with self._ahead_lock:
            ahead = self._ahead.get(target.folder)
            return ahead.pop(target.scope, None) if ahead else None

    def _fetched_target(self, plan: SyncPlan, message: FetchedMessage) -> _Target:
        return _Target(
            source=self.source,
            folder=plan.folder,
            folder_id=self.folder_id(plan.folder),
            uidvalidity=plan.uidvalidity,
            uid=message.uid,
            internal_date=message.internal_date,
            received_at=message.internal_date,
            scope=f"{plan.folder}/{plan.uidvalidity}/{message.uid}",
            dedupe=plan.rescan,
            progress=not plan.rescan,
        )

    def store(
        self, plan: SyncPlan, message: FetchedMessage, *, advance: bool = True
    ) -> StoreOutcome:
        """Store one fetched message exactly once (see the module docstring), in its own
        transaction.

        ``advance``: move the folder's high-water mark to this UID in the same
        transaction (the watcher passes False while a lower listed UID is missing).

        Returns:
            STORED, ERROR (stored raw with the error), DUPLICATE (this UID is already
            stored) or RECOGNIZED (rescan: the same mail is already stored).

        Raises:
            StoreError: the database cannot be written; nothing was committed.
        """
        uid = message.uid if advance else 0
        [done] = self._transaction(
            [_Item(message.raw, self._fetched_target(plan, message))],
            plan=plan,
            mark_with=lambda _uids: uid,
            limit=False,
        )
        return done.outcome

    def store_batch(
        self,
        plan: SyncPlan,
        messages: Sequence[FetchedMessage],
        *,
        mark_with: Callable[[Sequence[int]], int],
        stop: threading.Event | None = None,
    ) -> list[StoreOutcome]:
        """Store fetched messages exactly once, many in one transaction.

        The transaction holds at most :data:`BATCH_MAX_MESSAGES` messages and stays
        open at most about :data:`BATCH_MAX_SECONDS`; it stores a prefix of
        ``messages`` (at least one) and returns their outcomes, in order: the caller
        calls again for the rest. Once ``stop`` is set (the daemon stops) it takes no
        further message and commits. Each message has its own savepoint, so one that
        fails (parse, pipeline, a constraint) is rolled back alone and stored raw with
        its error, and the others commit. The folder's row is locked first
        (PostgreSQL: two workers on one folder take turns; SQLite: ``BEGIN IMMEDIATE``
        already holds the write lock) and its high-water mark is written once, at the
        end, to ``mark_with(UIDs handled)`` when that is higher: the highest UID whose
        whole listed prefix is stored (:class:`~triage.imap.watch.FolderWatcher` knows
        the listing). A crash before the commit keeps none of the batch, so the next
        pass fetches it again: nothing lost, nothing stored twice (the unique key
        ``(folder_id, uidvalidity, uid)`` stays the guarantee).

        Raises:
            StoreError: the database cannot be written; nothing of the batch was
                committed.
        """
        if not messages:
            return []
        items = [_Item(m.raw, self._fetched_target(plan, m)) for m in messages]
        done = self._transaction(items, plan=plan, mark_with=mark_with, limit=True, stop=stop)
        return [d.outcome for d in done]

    # -- UIDs listed but not delivered -------------------------------------------

    def record_missing(
        self, plan: SyncPlan, uid: int, reason: str, *, retry_in: float
    ) -> MissingUid:
        """Count a failed attempt at ``uid`` (listed, not delivered); next due in ``retry_in`` s.

        Raises:
            StoreError: the database cannot be written.
        """
        fid = self.folder_id(plan.folder)
        now = self.clock.now()
        for _ in range(2):
            try:
                with self.db.session() as s:
                    row = s.scalar(
                        select(MissingUidRow).where(
                            MissingUidRow.folder_id == fid,
                            MissingUidRow.uidvalidity == plan.uidvalidity,
                            MissingUidRow.uid == uid,
                        )
                    )
                    if row is None:
                        row = MissingUidRow(
                            folder_id=fid,
                            uidvalidity=plan.uidvalidity,
                            uid=uid,
                            attempts=0,
                            first_missed_at=now,
                        )
                        s.add(row)
                    row.attempts += 1
                    row.last_attempt_at = now
                    row.next_attempt_at = now + timedelta(seconds=retry_in)
                    row.reason = _clean(reason, _MAX_ERROR)
                    s.flush()
                    return _missing(row, now)
            except IntegrityError:  # recorded by another worker at the same moment
                continue
            except DBAPIError as exc:
                raise StoreError(
                    f"cannot record missing UID {uid} of {plan.folder!r}: {_describe(exc)}"
                ) from None
        raise StoreError(f"cannot record missing UID {uid} of {plan.folder!r}")

    def forget_missing(self, plan: SyncPlan, uids: Sequence[int]) -> None:
        """Drop the retry records of ``uids`` (delivered or expunged). Raises StoreError."""
        if not uids:
            return
        fid = self.folder_id(plan.folder)
        try:
            with self.db.session() as s:
                s.execute(
                    delete(MissingUidRow).where(
                        MissingUidRow.folder_id == fid,
                        MissingUidRow.uidvalidity == plan.uidvalidity,
                        MissingUidRow.uid.in_(list(uids)),
                        MissingUidRow.message_id.is_(None),
                    )
                )
        except DBAPIError as exc:
            raise StoreError(
                f"cannot update missing UIDs of {plan.folder!r}: {_describe(exc)}"
            ) from None

    def store_placeholder(
        self, plan: SyncPlan, missing: MissingUid, *, advance: bool
    ) -> StoreOutcome:
        """Store a placeholder for a UID the server lists but never delivered.

        The row has no raw bytes, ``parse_status = error`` and the reason in
        ``parse_error``; the pipeline routes it like any unreadable mail (the
        fallback queue, no acknowledgment: there is no sender). It is received at
        the first failed attempt. Its retry record points at it, in the same
        transaction, and the mark moves past the UID (``advance``).

        Returns:
            ERROR, or DUPLICATE when the UID was stored meanwhile (another worker).

        Raises:
            StoreError: the database cannot be written.
        """
        fid = self.folder_id(plan.folder)
        target = _Target(
            source=self.source,
            folder=plan.folder,
            folder_id=fid,
            uidvalidity=plan.uidvalidity,
            uid=missing.uid,
            received_at=missing.first_missed_at,
            scope=f"{plan.folder}/{plan.uidvalidity}/{missing.uid}",
            progress=not plan.rescan,
        )
        error = _clean(
            f"the IMAP server lists UID {missing.uid} in {plan.folder!r} (UIDVALIDITY"
            f" {plan.uidvalidity}) but did not deliver it in {missing.attempts} attempts since"
            f" {missing.first_missed_at:%Y-%m-%d %H:%M} UTC (last: {missing.reason}); this"
            " placeholder stands for it: read the mail in the mailbox itself",
            _MAX_ERROR,
        )
        message = InboundMessage(
            message_id=f"<missing.{fid}.{plan.uidvalidity}.{missing.uid}@triage.invalid>",
            message_id_synthetic=True,
            subject=f"(mail the server did not deliver: UID {missing.uid} in {plan.folder})",
            received_at=missing.first_missed_at,
            size=0,
            parse_status=ParseStatus.ERROR,
            parse_error=error,
        )

        def link(session: Session, row: Message) -> None:
            session.execute(
                update(MissingUidRow)
                .where(
                    MissingUidRow.folder_id == fid,
                    MissingUidRow.uidvalidity == plan.uidvalidity,
                    MissingUidRow.uid == missing.uid,
                )
                .values(message_id=row.id)
            )

        uid = missing.uid if advance else 0
        [done] = self._transaction(
            [_Item(b"", target, degraded=message, error=error, after=link)],
            plan=plan,
            mark_with=lambda _uids: uid,
            limit=False,
        )
        return done.outcome

    def end_pass(self, plan: SyncPlan, report: PassReport) -> None:
        """Record ``last_poll_at`` and the pass's warning (``last_error``, "" when none),
        and move the high-water mark to ``report.mark`` when that is further (never
        back); after a complete rescan persist the new UIDVALIDITY and mark.
        Raises StoreError."""
        fid = self.folder_id(plan.folder)
        try:
            with self.db.session() as s:
                folder = s.get_one(Folder, fid, with_for_update=True)
                folder.last_poll_at = self.clock.now()
                folder.last_error = _clean(report.warning, _MAX_ERROR)
                if plan.rescan and report.complete:
                    folder.uidvalidity = plan.uidvalidity
                    folder.last_uid = report.mark
                    log.info(
                        "uidvalidity_resynced",
                        folder=plan.folder,
                        uidvalidity=plan.uidvalidity,
                        last_uid=report.mark,
                        stored=report.stored,
                        recognized=report.recognized,
                        missing=len(report.missing),
                    )
                elif not plan.rescan:
                    if folder.uidvalidity is None:
                        folder.uidvalidity = plan.uidvalidity
                    if folder.uidvalidity == plan.uidvalidity and report.mark > folder.last_uid:
                        # a gap closed (delivered, expunged, placeholder): the mark catches up
                        folder.last_uid = report.mark
        except DBAPIError as exc:
            raise StoreError(f"cannot record the pass over {plan.folder!r}: {exc.orig}") from None

    def pass_failed(self, folder: str, error: str) -> None:
        """Record ``error`` as the folder's ``last_error``. Raises StoreError."""
        try:
            fid = self.folder_id(folder)
            with self.db.session() as s:
                s.get_one(Folder, fid, with_for_update=True).last_error = _clean(error, _MAX_ERROR)
        except DBAPIError as exc:
            raise StoreError(f"cannot record the error of {folder!r}: {exc.orig}") from None

    # -- import ---------------------------------------------------------------

    def import_message(self, raw: bytes, *, fallback_date: datetime | None = None) -> StoreOutcome:
        """Store one message from a file (mbox, Maildir) with ``source = "import"``.

        ``received_at`` is the Date header; without a usable one ``fallback_date``
        (mbox ``From`` line, Maildir delivery time), else now. Deduplicated by
        Message-ID + raw hash against everything stored: RECOGNIZED when present.

        Raises:
            StoreError: the database cannot be written.
        """
        target = _Target(
            source="import",
            fallback_date=fallback_date,
            scope="import",
            dedupe=True,
        )
        [done] = self._transaction([_Item(raw, target)], plan=None, mark_with=None, limit=False)
        return done.outcome

    # -- the per-message boundary ---------------------------------------------

    def _parse(self, raw: bytes, target: _Target) -> InboundMessage:
        kwargs: dict[str, Any] = {
            # the bound for an absurd Date is the mailbox's arrival (INTERNALDATE), else
            # now: an mbox "From " line's date is only a fallback, often a placeholder
            "received_at": target.received_at or self.clock.now(),
            "scope": target.scope,
        }
        if self._parse_takes_max_size and self.max_message_size:
            kwargs["max_size"] = self.max_message_size
        parsed = self._parse_fn(raw, **kwargs)
        received = target.received_at or parsed.sent_at or target.fallback_date or self.clock.now()
        if parsed.received_at != received:
            parsed = replace(parsed, received_at=received)
        return parsed

    def _transaction(
        self,
        items: Sequence[_Item],
        *,
        plan: SyncPlan | None,
        mark_with: Callable[[Sequence[int]], int] | None,
        limit: bool,
        stop: threading.Event | None = None,
    ) -> list[_Done]:
        """One transaction for a prefix of ``items`` (all of them unless ``limit``); the
        folder's mark moved once; logged after the commit.

        Optimistic: the transaction is first taken without a savepoint per message (two
        statements less per message, issue 18.2). When a message fails in it, the whole
        transaction is rolled back (nothing of it was committed) and the same items are
        stored again with each message in its own savepoint, so that the failing one is
        rolled back alone and stored raw with its error, as before. A pipeline's counters
        (``PipelineStats``) count the messages of such a retried transaction twice.
        """
        try:
            done = self._attempt(
                items, plan=plan, mark_with=mark_with, limit=limit, stop=stop, savepoints=False
            )
        except _RetryWithSavepointsError as retry:
            log.debug("batch_retried_with_savepoints", error=_describe(retry.__cause__ or retry))
            done = self._attempt(
                items, plan=plan, mark_with=mark_with, limit=limit, stop=stop, savepoints=True
            )
        if self.on_commit is not None:
            self.on_commit()
        for d in done:
            if d.outcome in {StoreOutcome.DUPLICATE, StoreOutcome.RECOGNIZED}:
                self._already(_AlreadyStoredError(d.outcome, d.existing), d.target, d.message)
            elif d.message is not None:
                self._log_stored(d.message, d.target, d.outcome)
        return done

    def _attempt(
        self,
        items: Sequence[_Item],
        *,
        plan: SyncPlan | None,
        mark_with: Callable[[Sequence[int]], int] | None,
        limit: bool,
        stop: threading.Event | None,
        savepoints: bool,
    ) -> list[_Done]:
        """One try of :meth:`_transaction`: committed when it returns.

        Raises:
            StoreError: the database cannot be written; nothing was committed.
            _RetryWithSavepointsError: without ``savepoints``, a message failed;
                nothing was committed.
        """
        started = time.monotonic()
        done: list[_Done] = []
        try:
            with self.db.session() as s:
                last_uid = self._claim(s, plan) if plan is not None else 0
                for item in items:
                    if (
                        limit
                        and done
                        and (
                            (stop is not None and stop.is_set())
                            or len(done) >= BATCH_MAX_MESSAGES
                            or time.monotonic() - started >= BATCH_MAX_SECONDS
                        )
                    ):
                        break
                    done.append(self._one(s, item, last_uid, savepoint=savepoints))
                if plan is not None and mark_with is not None and not plan.rescan:
                    mark = mark_with([d.target.uid for d in done if d.target.uid is not None])
                    if mark > last_uid:
                        s.execute(
                            update(Folder)
                            .where(Folder.id == self.folder_id(plan.folder))
                            .values(uidvalidity=plan.uidvalidity, last_uid=mark),
                            execution_options={"synchronize_session": False},
                        )
        except (StoreError, _RetryWithSavepointsError):
            raise
        except DBAPIError as exc:  # the commit, or a rollback on a dead connection
            where = self._where(done[0].target) if done else "messages"
            raise StoreError(f"cannot store {where}: {_describe(exc)}") from None
        return done

    def _claim(self, session: Session, plan: SyncPlan) -> int:
        """Lock the folder's row; return its high-water mark (0 in a rescan).

        Which UIDs above the mark are stored the plan already says
        (``SyncPlan.skip_uids``: the watcher does not fetch them); one stored
        meanwhile by another worker is caught by the unique key in its savepoint.

        Raises:
            StoreError: the folder's UIDVALIDITY changed under a pass that is not a
                rescan (the next pass rescans).
        """
        fid = self.folder_id(plan.folder)
        uidvalidity, last_uid = session.execute(
            select(Folder.uidvalidity, Folder.last_uid).where(Folder.id == fid).with_for_update()
        ).one()
        if plan.rescan:
            return 0  # the stored mark counts under the old UIDVALIDITY only
        if uidvalidity is not None and uidvalidity != plan.uidvalidity:
            raise StoreError(
                f"the UIDVALIDITY of {plan.folder!r} changed during the pass"
                f" ({uidvalidity} -> {plan.uidvalidity}); the next pass rescans"
            )
        return int(last_uid)

    def _one(self, session: Session, item: _Item, last_uid: int, *, savepoint: bool) -> _Done:
        """Store one item in a savepoint of ``session`` (the per-message failure boundary).

        Without ``savepoint`` the item is stored straight into the transaction, and a
        failure raises :class:`_RetryWithSavepointsError` (the caller rolls back and
        tries again with savepoints) instead of being handled here.
        """
        target = item.target
        if target.uid is not None and target.progress and target.uid <= last_uid:
            return _Done(StoreOutcome.DUPLICATE, target, None)
        sha = hashlib.sha256(item.raw).hexdigest()
        if item.degraded is not None:
            return self._store_failed(
                session,
                item.raw,
                sha,
                None,
                target,
                item.error,
                degraded=item.degraded,
                after=item.after,
            )
        parsed: InboundMessage | None = None
        try:
            ahead = self._prepared(target)
            parsed = ahead.message if ahead is not None else self._parse(item.raw, target)
            self._insert(
                session,
                item.raw,
                sha,
                parsed,
                target,
                run_pipeline=True,
                answer=ahead.answer if ahead is not None else None,
                savepoint=savepoint,
            )
        except _AlreadyStoredError as done:
            return _Done(done.outcome, target, parsed, done.existing)
        except StoreError:
            raise
        except Exception as exc:  # the per-message failure boundary (re-raised without savepoint)
            if _is_database_down(exc):
                raise StoreError(f"cannot store {self._where(target)}: {_describe(exc)}") from None
            if not savepoint and parsed is not None:  # a parse error wrote nothing yet
                raise _RetryWithSavepointsError from exc
            if isinstance(exc, IntegrityError) and self._uid_stored(target, session):
                return _Done(StoreOutcome.DUPLICATE, target, parsed)
            error = _describe(exc)
            log.warning(
                "message_failed",
                folder=target.folder or None,
                uid=target.uid,
                source=target.source,
                error=error,
            )
            return self._store_failed(session, item.raw, sha, parsed, target, error)
        # the parser's own verdict counts too: stored, but raw with the error
        outcome = (
            StoreOutcome.ERROR if parsed.parse_status == ParseStatus.ERROR else StoreOutcome.STORED
        )
        return _Done(outcome, target, parsed)

    def _store_failed(  # noqa: PLR0917 - private step; the arguments are the message in hand
        self,
        session: Session,
        raw: bytes,
        sha: str,
        parsed: InboundMessage | None,
        target: _Target,
        error: str,
        *,
        degraded: InboundMessage | None = None,
        after: Callable[[Session, Message], None] | None = None,
    ) -> _Done:
        """Store the raw message with the error: with the pipeline, then without it."""
        degraded = degraded or self._degraded(raw, parsed, target, error)
        for run_pipeline in (True, False):
            try:
                self._insert(
                    session,
                    raw,
                    sha,
                    degraded,
                    replace(target, dedupe=False),
                    run_pipeline,
                    after=after,
                )
            except _AlreadyStoredError as done:
                return _Done(done.outcome, target, parsed, done.existing)
            except Exception as exc:  # noqa: BLE001 - keep the raw bytes whatever happens
                if _is_database_down(exc):
                    raise StoreError(
                        f"cannot store {self._where(target)}: {_describe(exc)}"
                    ) from None
                if isinstance(exc, IntegrityError) and self._uid_stored(target, session):
                    return _Done(StoreOutcome.DUPLICATE, target, parsed)
                if not run_pipeline:
                    raise StoreError(
                        f"cannot store {self._where(target)} even raw: {_describe(exc)}"
                    ) from None
                log.warning(
                    "message_pipeline_failed",
                    folder=target.folder or None,
                    uid=target.uid,
                    error=_describe(exc),
                )
                continue
            return _Done(StoreOutcome.ERROR, target, degraded)
        raise AssertionError("unreachable")  # pragma: no cover

    def _degraded(
        self, raw: bytes, parsed: InboundMessage | None, target: _Target, error: str
    ) -> InboundMessage:
        """A minimal message for the raw row: identity fields only, marked as an error."""
        received = target.received_at or target.fallback_date or self.clock.now()
        if parsed is None:
            digest = hashlib.sha256(target.scope.encode() + b"\0" + raw).hexdigest()[:32]
            return InboundMessage(
                message_id=f"<synthetic.{digest}@triage.invalid>",
                message_id_synthetic=True,
                subject="",
                received_at=received,
                size=len(raw),
                parse_status=ParseStatus.ERROR,
                parse_error=error,
            )
        return InboundMessage(
            message_id=parsed.message_id,
            message_id_synthetic=parsed.message_id_synthetic,
            subject=parsed.subject,
            received_at=parsed.received_at,
            from_=parsed.from_,
            sent_at=parsed.sent_at,
            size=len(raw),
            kind=parsed.kind if isinstance(parsed.kind, MessageKind) else MessageKind.NORMAL,
            parse_status=ParseStatus.ERROR,
            parse_error=error,
        )

    def _insert(  # noqa: PLR0917 - private step; the arguments are the message in hand
        self,
        session: Session,
        raw: bytes,
        sha: str,
        message: InboundMessage,
        target: _Target,
        run_pipeline: bool,
        *,
        after: Callable[[Session, Message], None] | None = None,
        answer: ModelAnswer | None = None,
        savepoint: bool = True,
    ) -> None:
        """One savepoint: the row, the pipeline's rows and ``after``; rolled back alone
        when any of it raises. ``answer``: the batch's head start for ``message``.
        Without ``savepoint``: the same rows, flushed before it returns (so that a
        failure surfaces here, for this message), no savepoint."""
        with session.begin_nested() if savepoint else nullcontext():
            if target.dedupe:
                existing = self._find_same(session, message, sha)
                if existing is not None:
                    raise _AlreadyStoredError(StoreOutcome.RECOGNIZED, existing)
            streamed = len(raw) >= STREAM_RAW_MIN and _sqlite(session)
            writer = self.pipeline if run_pipeline else None
            plain = writer is None or type(writer) is NoPipeline  # not a subclass of it
            if after is None and (plain or isinstance(writer, RowPipeline)):
                # SQLAlchemy Core (issue 18.2): the row inserted once, with its ticket
                row_id = self._insert_core(
                    session,
                    raw,
                    sha,
                    message,
                    target,
                    writer if isinstance(writer, RowPipeline) else None,
                    answer,
                )
                if streamed:
                    _write_raw(session, row_id, raw)
                if not savepoint:
                    session.flush()  # what the pipeline changed through the ORM, if anything
                return
            row = Message(**self._values(raw, sha, message, target))
            if streamed:
                row.raw = b""  # written last (_write_raw); raw_size, raw_sha256 as they are
            session.add(row)
            session.flush()
            if streamed:  # the ORM takes the row as holding ``raw``: no UPDATE carries it
                set_committed_value(row, "raw", raw)
            if run_pipeline:
                if answer is None:  # a pipeline without batch work takes no ``answer``
                    self.pipeline.process(session, row, message)
                else:
                    self.pipeline.process(session, row, message, answer=answer)
            if after is not None:
                after(session, row)
            if streamed:
                _write_raw(session, row.id, raw)
            if not savepoint:
                session.flush()

    def _insert_core(  # noqa: PLR0917 - private step; the arguments are the message in hand
        self,
        session: Session,
        raw: bytes,
        sha: str,
        message: InboundMessage,
        target: _Target,
        pipeline: RowPipeline | None,
        answer: ModelAnswer | None,
    ) -> int:
        """The message's row (raw bytes left out when streamed, see :data:`STREAM_RAW_MIN`)
        inserted by the pipeline's ``store`` (or here, without a pipeline); its id."""
        values = self._values(raw, sha, message, target)
        if len(raw) >= STREAM_RAW_MIN and _sqlite(session):
            values["raw"] = b""
        row = NewMessage(values)
        if pipeline is not None:
            if answer is None:
                pipeline.store(session, row, message)
            else:
                pipeline.store(session, row, message, answer=answer)
        return row.id if row.id is not None else row.insert(session)

    @staticmethod
    def _uid_stored(target: _Target, session: Session) -> bool:
        if target.folder_id is None or target.uid is None:
            return False
        query = select(Message.id).where(
            Message.folder_id == target.folder_id,
            Message.uidvalidity == target.uidvalidity,
            Message.uid == target.uid,
        )
        return session.scalar(query) is not None

    @staticmethod
    def _find_same(session: Session, message: InboundMessage, sha: str) -> int | None:
        """The id of an inbound row with the same Message-ID (or none) and raw SHA-256."""
        query = select(Message.id).where(Message.raw_sha256 == sha, Message.direction == "in")
        if message.message_id_synthetic:
            query = query.where(Message.message_id_synthetic.is_(True))
        else:
            query = query.where(Message.message_id == _clean(message.message_id, 998))
        return session.scalar(query.limit(1))

    def _values(self, raw: bytes, sha: str, m: InboundMessage, target: _Target) -> dict[str, Any]:
        """The ``messages`` row of ``m`` (column -> value; every text cleaned)."""
        report = m.delivery_report
        return {
            "folder_id": target.folder_id,
            "uidvalidity": target.uidvalidity,
            "uid": target.uid,
            "source": target.source,
            "direction": self.direction if target.source != "import" else "in",
            "message_id": _clean(m.message_id, 998),
            "message_id_synthetic": m.message_id_synthetic,
            "raw_sha256": sha,
            "raw": raw,
            "raw_size": len(raw),
            "internal_date": target.internal_date,
            "sent_at": m.sent_at,
            "received_at": m.received_at,
            "from_addr": _clean(m.from_.addr, 320) if m.from_ else "",
            "from_name": _clean(m.from_.name, 500) if m.from_ else "",
            "to_addrs": _clean_json(_addresses(m.to)),
            "cc_addrs": _clean_json(_addresses(m.cc)),
            "reply_to": _clean_json(_addresses(m.reply_to)),
            "subject": _clean(m.subject),
            "body_text": _clean(m.body_text),
            "quoted_text": _clean(m.quoted_text),
            "signature": _clean(m.signature),
            "attachments": _clean_json([asdict(a) for a in m.attachments]),
            "inline_parts": _clean_json([asdict(a) for a in m.inline_parts]),
            "in_reply_to": _clean(m.in_reply_to, 998),
            "references": _clean_json(list(m.references)),
            "language": _clean(m.language, 8),
            "kind": _clean(str(m.kind), 16),
            "list_id": _clean(m.list_id, 500),
            "delivery_report": _clean_json(asdict(report)) if report is not None else None,
            "parse_status": _clean(str(m.parse_status), 20),
            "parse_error": _clean(m.parse_error, _MAX_ERROR),
            "defects": _clean_json(list(m.defects[:50])),
            "charset_fallback": m.charset_fallback,
            "body_missing": m.body_missing,
        }

    # -- logging ------------------------------------------------------------------

    @staticmethod
    def _where(target: _Target) -> str:
        if target.uid is not None:
            return f"UID {target.uid} of {target.folder!r}"
        return "an imported message"

    def _already(
        self, done: _AlreadyStoredError, target: _Target, parsed: InboundMessage | None
    ) -> StoreOutcome:
        emit = log.debug if target.source == "import" else log.info
        emit(
            "message_duplicate",
            folder=target.folder or None,
            uid=target.uid,
            message_id=parsed.message_id if parsed else None,
            source=target.source,
            reason="same_uid" if done.outcome is StoreOutcome.DUPLICATE else "same_content",
            existing=done.existing,
        )
        return done.outcome

    @staticmethod
    def _log_stored(message: InboundMessage, target: _Target, outcome: StoreOutcome) -> None:
        # an import of thousands of messages logs its counts, not every message
        emit = log.debug if target.source == "import" else log.info
        emit(
            "message_stored",
            folder=target.folder or None,
            uid=target.uid,
            uidvalidity=target.uidvalidity,
            message_id=message.message_id,
            kind=str(message.kind),
            parse_status=str(message.parse_status),
            source=target.source,
            outcome=outcome.value,
            # APPEND time: the metrics measure the intake latency from it
            internal_date=target.internal_date.isoformat() if target.internal_date else None,
        )


@dataclass(frozen=True, slots=True)
class FolderResult:
    """The outcome of one pass over a folder in :meth:`Poller.poll_once`.

    Attributes:
        report: the pass's counts, None when it failed.
        error: why it failed ("" when it did not).
        database_failed: the failure was the database's (StoreError), not the server's.
        held_by: the worker that watches the folder instead ("" when this one did).
    """

    folder: str
    report: PassReport | None = None
    error: str = ""
    database_failed: bool = False
    held_by: str = ""
    """Another live worker watches this folder (PostgreSQL leases): left to it, no error."""


class Poller:
    """Intake for every configured folder: one connection and one watcher per folder.

    ``poll_once()`` makes one full pass over all folders (``triage poll --once``);
    ``run(stop)`` watches them all until ``stop`` is set (the daemon runs it in a
    thread beside its asyncio loop, e.g. ``await asyncio.to_thread(poller.run, stop)``).

    Args:
        settings: the whole configuration; ``[imap]`` must be present.
        db: the store.
        pipeline: runs in each message's transaction (routing, ticket, outbox).
        clock: the current time.
        open_mailbox: connection factory for tests; by default
            ``ImapMailbox.open(ImapConnector(settings.imap))``.
        sent_pipeline: runs for mail in ``imap.sent_folder`` (stored with source
            ``sent``, direction ``out``), e.g. recording the team's replies.
        on_commit: called after each stored message commits (see :class:`Intake`).

    Raises:
        ConfigError: there is no ``[imap]`` section.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        pipeline: MessagePipeline | None = None,
        clock: Clock | None = None,
        open_mailbox: Callable[[], WatchedMailbox] | None = None,
        sent_pipeline: MessagePipeline | None = None,
        on_commit: Callable[[], None] | None = None,
        leases: WorkerLeases | None = None,
    ) -> None:
        if settings.imap is None:
            raise ConfigError("no [imap] section in the configuration: nothing to poll")
        imap = settings.imap
        self.settings = imap
        self.leases = leases
        self.watchers: list[FolderWatcher] = []
        self._intakes: dict[int, Intake] = {}
        """Each watcher's intake, by ``id(watcher)`` (folder ids for the leases)."""
        # calendar invitations are written in the business's time zone
        parse = partial(parse_message, time_zone=settings.calendar.timezone)
        for account, mailbox in imap.mailboxes():
            prefix = f"{account}:" if account else ""
            intake = Intake(
                db,
                pipeline=pipeline,
                clock=clock,
                max_message_size=mailbox.max_message_size,
                on_commit=on_commit,
                folder_prefix=prefix,
                parse=parse,
            )
            if account == "":
                self.intake = intake
            opener = open_mailbox or self._opener(mailbox, settings, clock)
            for folder in mailbox.folders:
                self._watch(FolderWatcher(folder, mailbox, intake, opener), intake)
            if mailbox.sent_folder and mailbox.sent_folder not in mailbox.folders:
                # The team's replies: stored as outgoing mail, matched to their tickets.
                sent_intake = Intake(
                    db,
                    pipeline=sent_pipeline,
                    clock=clock,
                    max_message_size=mailbox.max_message_size,
                    on_commit=on_commit,
                    source="sent",
                    direction="out",
                    folder_prefix=prefix,
                    parse=parse,
                )
                watcher = FolderWatcher(mailbox.sent_folder, mailbox, sent_intake, opener)
                self._watch(watcher, sent_intake)

    @staticmethod
    def _opener(
        mailbox: ImapSettings, settings: Settings, clock: Clock | None
    ) -> Callable[[], WatchedMailbox]:
        connector = ImapConnector(
            mailbox,
            resolve=settings.resolve,
            access_token=token_getter(settings, mailbox.username),
        )

        def open_imap() -> WatchedMailbox:
            return ImapMailbox.open(connector, clock=clock)

        return open_imap

    def _watch(self, watcher: FolderWatcher, intake: Intake) -> None:
        self.watchers.append(watcher)
        self._intakes[id(watcher)] = intake

    def _folder_id(self, watcher: FolderWatcher) -> int:
        return self._intakes[id(watcher)].folder_id(watcher.folder)

    def _leased(self) -> WorkerLeases | None:
        return self.leases if self.leases is not None and self.leases.enabled else None

    def poll_once(self) -> list[FolderResult]:
        """One pass over each folder in turn; a failing folder does not stop the others.

        Login refusals and unreachable servers are returned as errors (and recorded
        as the folder's ``last_error``), not raised. With worker leases (PostgreSQL),
        a folder another live worker watches is left to it (``held_by``).
        """
        leases = self._leased()
        if leases is None:
            return [self._poll_folder(watcher) for watcher in self.watchers]
        keeper = LeaseKeeper(leases, len(self.watchers))
        stop = threading.Event()
        leases.register()
        beating = threading.Thread(target=keeper.keep, args=(stop,), name="worker-heartbeat")
        beating.start()
        results = []
        try:
            for watcher in self.watchers:
                try:
                    fid = self._folder_id(watcher)
                    holder = leases.acquire(fid)
                except StoreError as exc:
                    results.append(
                        FolderResult(watcher.folder, error=str(exc), database_failed=True)
                    )
                    continue
                if holder:
                    log.info("folder_skipped", folder=watcher.folder, held_by=holder)
                    results.append(FolderResult(watcher.folder, held_by=holder))
                    continue
                try:
                    results.append(self._poll_folder(watcher))
                finally:
                    with suppress(StoreError):
                        leases.release(fid)
        finally:
            stop.set()
            beating.join()
            with suppress(StoreError):
                leases.unregister()
        return results

    def _poll_folder(self, watcher: FolderWatcher) -> FolderResult:
        try:
            report = watcher.poll_once()
        except (MailboxError, StoreError) as exc:
            log.error("poll_failed", folder=watcher.folder, error=str(exc))  # noqa: TRY400
            return FolderResult(
                watcher.folder, error=str(exc), database_failed=isinstance(exc, StoreError)
            )
        return FolderResult(watcher.folder, report=report)

    def run(self, stop: threading.Event, *, grace: float = 5.0) -> None:
        """Watch every folder (one thread each) until ``stop`` is set, then return.

        After ``stop`` each watcher finishes or rolls back the message in hand and
        logs out; one still blocked on a dead socket after ``grace`` seconds has its
        socket shut down so it ends at once. With worker leases (PostgreSQL) each
        thread watches its folder only while this worker holds the folder's lease
        (see :mod:`triage.services.workers`).
        """
        leases = self._leased()
        keeper = LeaseKeeper(leases, len(self.watchers)) if leases is not None else None
        if leases is not None and keeper is not None:
            self._register(leases, stop)
            threads = [
                threading.Thread(
                    target=self._run_leased,
                    args=(watcher, keeper, stop),
                    name=f"imap-{watcher.folder}",
                    daemon=True,
                )
                for watcher in self.watchers
            ]
            threads.append(
                threading.Thread(target=keeper.keep, args=(stop,), name="worker-heartbeat")
            )
        else:
            threads = [
                threading.Thread(
                    target=watcher.run, args=(stop,), name=f"imap-{watcher.folder}", daemon=True
                )
                for watcher in self.watchers
            ]
        for thread in threads:
            thread.start()
        stop.wait()
        deadline = time.monotonic() + grace
        for watcher, thread in zip(self.watchers, threads, strict=False):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("imap_watch_interrupted", folder=watcher.folder)
                watcher.interrupt()
                thread.join(grace)
        for thread in threads[len(self.watchers) :]:
            thread.join(grace)
        if leases is not None:
            with suppress(StoreError):
                leases.unregister()

    @staticmethod
    def _register(leases: WorkerLeases, stop: threading.Event) -> None:
        """Register this worker, retrying while the database is down (until ``stop``)."""
        while not stop.is_set():
            try:
                leases.register()
            except StoreError as exc:
                log.warning("worker_register_failed", worker=leases.name, error=str(exc))
                stop.wait(LEASE_RENEW_SECONDS)
            else:
                return

    def _run_leased(
        self, watcher: FolderWatcher, keeper: LeaseKeeper, stop: threading.Event
    ) -> None:
        """Watch ``watcher``'s folder whenever this worker holds its lease, until ``stop``."""
        leases = keeper.leases
        while not stop.is_set():
            try:
                fid = self._folder_id(watcher)
                holder = leases.acquire(fid) if keeper.may_take() else "(fair share reached)"
            except StoreError as exc:
                log.warning("folder_lease_failed", folder=watcher.folder, error=str(exc))
                stop.wait(keeper.renew)
                continue
            if holder:
                stop.wait(keeper.renew)
                continue
            folder_stop = child_event(stop)  # its polls are this thread's progress (watchdog)
            keeper.started(fid, folder_stop)
            if stop.is_set():
                folder_stop.set()
            log.info("folder_lease_taken", folder=watcher.folder, worker=leases.name)
            try:
                watcher.run(folder_stop)
            finally:
                keeper.finished(fid)
                with suppress(StoreError):
                    leases.release(fid)
                log.info("folder_lease_released", folder=watcher.folder, worker=leases.name)
            # let another worker take a handed-over folder before trying again
            stop.wait(keeper.renew)
