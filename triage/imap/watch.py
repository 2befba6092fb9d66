"""Watching one folder: passes of search-fetch-store, IDLE or polling between them, reconnects.

:class:`FolderWatcher` drives a :class:`~triage.imap.mailbox.Mailbox` for one
folder and hands each fetched message to a :class:`FolderSink` (intake, which
stores it exactly once). It knows IMAP's timing rules, not the database:

- A *pass* selects the folder, asks the sink where to start (:class:`SyncPlan`:
  after the stored high-water mark, or from UID 1 after a UIDVALIDITY change),
  runs ``UID SEARCH``, fetches in batches and stores each batch in a few transactions; after
  each batch the after-ingest action is applied to what was committed.
- Nothing listed is skipped. A UID that ``UID SEARCH`` lists but the FETCH
  answer leaves out (or answers without a body: Exchange Online does this now
  and then) keeps the high-water mark below it. ``UID SEARCH`` then tells an
  expunged message (gone: nothing to do) from a missing one (still listed: a
  server fault). A missing UID is fetched again, alone, on later passes, after
  ``missing_retry`` seconds doubling per attempt; after ``missing_attempts``
  failed attempts a placeholder is stored for it (a message with the reason,
  routed to the fallback queue like any unreadable mail) and the mark moves on.
  Meanwhile the folder's error says which UIDs wait (``triage status``:
  unhealthy).
- Between passes it waits with IDLE where the server has it, else sleeps
  ``poll_interval``. It never goes back to waiting while the server has
  announced more mail (an EXISTS or RECENT with any answer during the pass):
  the next pass starts at once. A pass also runs at least every
  ``fallback_poll`` seconds whatever IDLE says, when a missing UID's retry is
  due, and right after every (re)connect. While waiting, a connection silent
  for ``keepalive`` seconds is checked with a round trip, so a flow dropped
  without FIN or RST is found within about keepalive + timeout seconds
  (../shared/cases/B28).
- Failures back off per part. A failed connection, a refused login or a
  command the server refuses ends the connection; the watcher records the
  error, waits with exponential back-off and jitter (``reconnect_initial``
  doubling up to ``reconnect_max``) and reconnects. A database that cannot be
  written keeps the connection: the pass is retried on it after its own
  back-off (1 s doubling up to a minute), and an IMAP back-off is never grown
  by a database fault nor the other way round. Progress only moves in the
  sink's transactions, together with the messages it covers (a batch of up to
  200 messages, one savepoint each), so nothing is lost or repeated.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self

import structlog

from triage.config import ImapSettings
from triage.errors import ConfigError, MailboxAuthError, MailboxError, StoreError
from triage.imap.backoff import Backoff
from triage.imap.mailbox import FolderState, Mailbox
from triage.imap.responses import FetchedMessage

__all__ = [
    "DATABASE_RETRY_INITIAL",
    "DATABASE_RETRY_MAX",
    "MISSING_RETRY_MAX",
    "FolderSink",
    "FolderWatcher",
    "MissingUid",
    "PassReport",
    "StoreOutcome",
    "SyncPlan",
    "WatchedMailbox",
]

log = structlog.get_logger("triage.imap")

DATABASE_RETRY_INITIAL = 1.0
"""Seconds before a pass is retried after the database failed; doubles per failure."""
DATABASE_RETRY_MAX = 60.0
"""Longest wait between two attempts at a database that keeps failing, seconds."""
MISSING_RETRY_MAX = 3600.0
"""Longest wait between two attempts at a UID the server lists but does not deliver."""


class StoreOutcome(StrEnum):
    """What storing one fetched message came to."""

    STORED = "stored"
    """A new row, parsed, with the pipeline's rows, in one transaction."""
    ERROR = "error"
    """Stored raw with ``parse_status = error`` and the error recorded (goes to fallback)."""
    DUPLICATE = "duplicate"
    """Already stored under the same (folder, UIDVALIDITY, UID): nothing written."""
    RECOGNIZED = "recognized"
    """The same mail (Message-ID + SHA-256 of the raw bytes) is already stored: no new row."""


@dataclass(frozen=True, slots=True)
class MissingUid:
    """A UID the server listed but did not deliver, as the sink has it recorded.

    Attributes:
        uid: the UID (under the plan's UIDVALIDITY).
        attempts: FETCH attempts that failed so far (>= 1).
        first_missed_at: when the first attempt failed (UTC); a placeholder is
            received at this time (the SLA clock starts there).
        retry_in: seconds until the next attempt is due (<= 0: due now).
        reason: why the last attempt failed.
    """

    uid: int
    attempts: int
    first_missed_at: datetime
    retry_in: float
    reason: str


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """Where a pass starts, decided by the sink from its stored progress.

    Attributes:
        folder: the folder name.
        uidvalidity: the server's current UIDVALIDITY.
        first_uid: the first UID to search for.
        rescan: the folder is walked from UID 1 and each message is deduplicated by
            Message-ID + raw hash; the new UIDVALIDITY and high-water mark are
            persisted by ``end_pass`` once the whole rescan has committed.
        previous_uidvalidity: the stored UIDVALIDITY (None before the first pass).
        last_uid: the stored high-water mark under ``uidvalidity`` (0 in a rescan).
        skip_uids: UIDs >= ``first_uid`` already stored under ``uidvalidity`` (above
            a missing UID, or a rescan resumed after a crash): not fetched again.
        missing: UIDs >= ``first_uid`` the server listed but did not deliver on
            earlier passes, still being retried, by UID.
    """

    folder: str
    uidvalidity: int
    first_uid: int
    rescan: bool = False
    previous_uidvalidity: int | None = None
    last_uid: int = 0
    skip_uids: frozenset[int] = frozenset()
    missing: Mapping[int, MissingUid] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass over a folder did.

    Attributes:
        complete: every UID found was handled (False when stopped half-way).
        highest_uid: the highest UID handled or skipped (0 when none).
        mark: the high-water mark the pass earned: the highest listed UID with
            every listed UID up to it handled (stored, already stored, expunged
            or given a placeholder); 0 when none. Never past a missing UID.
        missing: UIDs listed but still not delivered, waiting for a retry.
        retry_in: seconds until the first of them is due again (None: none waits).
        vanished: UIDs expunged between the search and the fetch.
        placeholders: UIDs given a placeholder after the last failed attempt.
        seconds: wall-clock duration of the pass.
        warning: a problem that did not stop the pass (UIDs not delivered, a
            refused after-ingest action), "" when none; kept as the folder's last
            error, so ``triage status`` shows it as unhealthy.
    """

    folder: str
    uidvalidity: int
    rescan: bool
    stored: int = 0
    errors: int = 0
    duplicates: int = 0
    recognized: int = 0
    highest_uid: int = 0
    mark: int = 0
    missing: tuple[int, ...] = ()
    retry_in: float | None = None
    vanished: int = 0
    placeholders: int = 0
    complete: bool = True
    seconds: float = 0.0
    warning: str = ""

    @property
    def handled(self) -> int:
        """Messages looked at in this pass."""
        return self.stored + self.errors + self.duplicates + self.recognized


class FolderSink(Protocol):
    """Where a watcher puts what it fetches (intake implements it)."""

    def begin_pass(self, state: FolderState) -> SyncPlan:
        """Compare ``state`` with stored progress and decide where to start."""
        ...

    def prepare(self, plan: SyncPlan, batch: Sequence[FetchedMessage]) -> None:
        """A fetched batch is about to be stored message by message: do the work that
        is cheaper for many at once (parsing, classifying). Stores nothing; never raises."""
        ...

    def store(
        self, plan: SyncPlan, message: FetchedMessage, *, advance: bool = True
    ) -> StoreOutcome:
        """Store one message exactly once (its own transaction), moving the folder's
        high-water mark to its UID when ``advance`` (every listed UID below it is
        handled). Raises StoreError when the database cannot be written: the
        message is then fetched again later."""
        ...

    def store_batch(
        self,
        plan: SyncPlan,
        messages: Sequence[FetchedMessage],
        *,
        mark_with: Callable[[Sequence[int]], int],
        stop: threading.Event | None = None,
    ) -> list[StoreOutcome]:
        """Store a prefix of ``messages`` (at least one) exactly once in one transaction,
        moving the high-water mark to ``mark_with(the UIDs handled)`` in it; their
        outcomes in order. Once ``stop`` is set it takes no further message. Raises
        StoreError when the database cannot be written: nothing of the batch was kept,
        it is fetched again later."""
        ...

    def record_missing(
        self, plan: SyncPlan, uid: int, reason: str, *, retry_in: float
    ) -> MissingUid:
        """Count one more failed attempt at ``uid`` (listed, not delivered) and when the
        next is due; return the record. Raises StoreError."""
        ...

    def store_placeholder(
        self, plan: SyncPlan, missing: MissingUid, *, advance: bool
    ) -> StoreOutcome:
        """Store a placeholder message for a UID given up on (parse_status error, the
        reason in parse_error), in one transaction with the record. Raises StoreError."""
        ...

    def forget_missing(self, plan: SyncPlan, uids: Sequence[int]) -> None:
        """Drop the records of UIDs delivered or expunged at last. Raises StoreError."""
        ...

    def end_pass(self, plan: SyncPlan, report: PassReport) -> None:
        """Record a finished pass (last poll time, warning, the mark it earned; a
        completed rescan's new UIDVALIDITY)."""
        ...

    def pass_failed(self, folder: str, error: str) -> None:
        """Record why a pass or connection failed (shown by ``triage status``)."""
        ...


class WatchedMailbox(Mailbox, Protocol):
    """A mailbox the watcher can wait on and check for liveness."""

    @property
    def can_idle(self) -> bool:
        """The server offers IDLE and it is configured."""
        ...

    @property
    def alive(self) -> bool:
        """False once the connection was found dead."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...


class _Progress:
    """Which listed UIDs a pass has handled, and the high-water mark that allows.

    The mark may stand at a listed UID only when every listed UID up to it is
    handled; UIDs not listed (expunged long ago) do not count.
    """

    def __init__(self, listed: Sequence[int], handled: Iterable[int]) -> None:
        self._listed = sorted(listed)
        self._handled = set(handled) & set(self._listed)
        self._next = 0
        self._move()

    def _move(self) -> None:
        while self._next < len(self._listed) and self._listed[self._next] in self._handled:
            self._next += 1

    def is_next(self, uid: int) -> bool:
        """True when ``uid`` is the first listed UID not handled yet (it may move the mark)."""
        return self._next < len(self._listed) and self._listed[self._next] == uid

    def mark_with(self, uids: Iterable[int]) -> int:
        """The mark once ``uids`` are handled too (nothing is counted yet)."""
        handled = self._handled | (set(uids) & set(self._listed))
        n = self._next
        while n < len(self._listed) and self._listed[n] in handled:
            n += 1
        return self._listed[n - 1] if n else 0

    def handle(self, uid: int) -> None:
        """Count ``uid`` as handled."""
        self._handled.add(uid)
        self._move()

    @property
    def mark(self) -> int:
        """The highest listed UID with all listed UIDs up to it handled (0: none)."""
        return self._listed[self._next - 1] if self._next else 0


@dataclass
class _PassState:
    """Mutable tallies of one pass."""

    counts: Counter[StoreOutcome] = field(default_factory=Counter)
    waiting: dict[int, MissingUid] = field(default_factory=dict)
    vanished: int = 0
    placeholders: int = 0
    highest: int = 0


class FolderWatcher:
    """Keeps one folder ingested over one connection at a time.

    Args:
        folder: the folder to watch.
        settings: the ``[imap]`` section (timing, after-ingest action, missing UIDs).
        sink: stores messages and progress (intake).
        open_mailbox: connects and logs in, returning a fresh mailbox (raises
            MailboxError / MailboxAuthError).
        backoff: reconnect delays; by default from ``reconnect_initial`` / ``reconnect_max``.
        database_backoff: delays before a pass is retried after the database failed;
            by default :data:`DATABASE_RETRY_INITIAL` doubling up to :data:`DATABASE_RETRY_MAX`.
    """

    def __init__(
        self,
        folder: str,
        settings: ImapSettings,
        sink: FolderSink,
        open_mailbox: Callable[[], WatchedMailbox],
        *,
        backoff: Backoff | None = None,
        database_backoff: Backoff | None = None,
    ) -> None:
        self.folder = folder
        self.settings = settings
        self.sink = sink
        self.open_mailbox = open_mailbox
        self.backoff = backoff or Backoff(settings.reconnect_initial, settings.reconnect_max)
        self.database_backoff = database_backoff or Backoff(
            DATABASE_RETRY_INITIAL, DATABASE_RETRY_MAX
        )
        self._current: WatchedMailbox | None = None
        self._database_failing_since = 0.0
        self.passes = 0
        """Passes completed since this watcher was made (for tests and health)."""

    # -- one pass -------------------------------------------------------------

    def poll_once(self, stop: threading.Event | None = None) -> PassReport:
        """Connect, run one pass, log out.

        Raises:
            MailboxError: connecting or talking to the server failed.
            StoreError: the database could not be written.
        """
        stop = stop or threading.Event()
        try:
            with self.open_mailbox() as mailbox:
                self._current = mailbox
                return self._pass(mailbox, stop, heal=True)
        except (MailboxError, StoreError) as exc:
            self._record_failure(str(exc))
            raise
        finally:
            self._current = None

    def missing_retry_delay(self, attempts: int) -> float:
        """Seconds before the attempt after ``attempts`` failed ones at a missing UID:
        ``missing_retry`` doubling per attempt, at most :data:`MISSING_RETRY_MAX`."""
        doublings = min(max(0, attempts - 1), 32)
        return min(MISSING_RETRY_MAX, self.settings.missing_retry * 2.0**doublings)

    def _pass(self, mailbox: WatchedMailbox, stop: threading.Event, *, heal: bool) -> PassReport:
        started = time.monotonic()
        state = mailbox.select(self.folder)
        plan = self.sink.begin_pass(state)
        warnings: list[str] = []
        if heal and not plan.rescan:
            pending = mailbox.pending_after_ingest(plan.last_uid)
            if pending:
                log.info("after_ingest_resumed", folder=self.folder, count=len(pending))
                warnings += self._after_ingest(mailbox, pending)
        mailbox.take_news()  # whatever is announced from here on may be past the search
        found = mailbox.search_from(plan.first_uid)
        listed = set(found)
        progress = _Progress(found, plan.skip_uids)
        tally = _PassState(highest=max(plan.skip_uids & listed, default=0))
        gone = sorted(uid for uid in plan.missing if uid not in listed)
        if gone:
            # expunged while it was being retried: nothing was lost on our side
            self.sink.forget_missing(plan, gone)
            log.info("message_vanished", folder=self.folder, uids=gone, while_retrying=True)
        retry = [uid for uid in found if uid in plan.missing and plan.missing[uid].retry_in <= 0]
        tally.waiting = {
            uid: plan.missing[uid] for uid in found if uid in plan.missing and uid not in retry
        }
        fresh = [uid for uid in found if uid not in plan.skip_uids and uid not in plan.missing]
        complete = True
        # retries first and one by one: a server failing a batch over one message
        # often delivers it alone, and the mark can only move once it is handled
        for batch in itertools.chain(mailbox.fetch(retry, alone=True), mailbox.fetch(fresh)):
            if stop.is_set():
                complete = False
                break
            if batch.missing:
                self._settle_missing(mailbox, plan, batch.missing, progress, tally)
            self.sink.prepare(plan, batch.messages)
            done: list[int] = []
            left = list(batch.messages)
            while left:
                if stop.is_set():
                    complete = False
                    break
                # one transaction for as many as the sink takes at once; the mark it
                # writes with them never passes a listed UID not handled
                outcomes = self.sink.store_batch(
                    plan, left, mark_with=progress.mark_with, stop=stop
                )
                for message, outcome in zip(left, outcomes, strict=False):
                    tally.counts[outcome] += 1
                    progress.handle(message.uid)
                    done.append(message.uid)
                    tally.highest = max(tally.highest, message.uid)
                left = left[len(outcomes) :]
            recovered = [uid for uid in done if uid in plan.missing]
            if recovered:
                self.sink.forget_missing(plan, recovered)
                log.info("message_recovered", folder=self.folder, uids=recovered)
            warnings += self._after_ingest(mailbox, done)
            if not complete:
                break
        if tally.waiting:
            warnings.insert(0, self._waiting_warning(tally.waiting))
        counts = tally.counts
        report = PassReport(
            folder=self.folder,
            uidvalidity=state.uidvalidity,
            rescan=plan.rescan,
            stored=counts[StoreOutcome.STORED],
            errors=counts[StoreOutcome.ERROR],
            duplicates=counts[StoreOutcome.DUPLICATE],
            recognized=counts[StoreOutcome.RECOGNIZED],
            highest_uid=tally.highest,
            mark=progress.mark,
            missing=tuple(sorted(tally.waiting)),
            retry_in=min((m.retry_in for m in tally.waiting.values()), default=None),
            vanished=tally.vanished,
            placeholders=tally.placeholders,
            complete=complete,
            seconds=time.monotonic() - started,
            warning="; ".join(warnings),
        )
        self.sink.end_pass(plan, report)
        self.passes += 1
        emit = log.info if report.handled or report.missing else log.debug
        emit(
            "poll_completed",
            folder=self.folder,
            uidvalidity=report.uidvalidity,
            stored=report.stored,
            errors=report.errors,
            duplicates=report.duplicates,
            recognized=report.recognized,
            missing=len(report.missing),
            rescan=report.rescan,
            complete=report.complete,
            seconds=round(report.seconds, 3),
        )
        return report

    def _settle_missing(
        self,
        mailbox: WatchedMailbox,
        plan: SyncPlan,
        missing: Mapping[int, str],
        progress: _Progress,
        tally: _PassState,
    ) -> None:
        """UIDs a FETCH answer did not deliver: expunged, retried later, or given up on."""
        still = mailbox.listed(sorted(missing))
        for uid in sorted(missing):
            if uid not in still:
                # expunged between the search and the fetch (RFC 3501 section 6.4.8:
                # a UID FETCH of an expunged message answers nothing for it)
                progress.handle(uid)
                tally.vanished += 1
                if uid in plan.missing:
                    self.sink.forget_missing(plan, [uid])
                log.info("message_vanished", folder=self.folder, uid=uid)
                continue
            before = plan.missing.get(uid)
            attempts = (before.attempts if before else 0) + 1
            record = self.sink.record_missing(
                plan, uid, missing[uid], retry_in=self.missing_retry_delay(attempts)
            )
            if record.attempts >= self.settings.missing_attempts:
                outcome = self.sink.store_placeholder(plan, record, advance=progress.is_next(uid))
                tally.counts[outcome] += 1
                tally.placeholders += 1
                progress.handle(uid)
                log.error(
                    "message_undelivered",
                    folder=self.folder,
                    uid=uid,
                    attempts=record.attempts,
                    reason=record.reason,
                    placeholder=True,
                )
                continue
            tally.waiting[uid] = record
            log.warning(
                "message_missing",
                folder=self.folder,
                uid=uid,
                attempt=record.attempts,
                attempts=self.settings.missing_attempts,
                retry_in=round(record.retry_in, 1),
                reason=record.reason,
            )

    def _waiting_warning(self, waiting: Mapping[int, MissingUid]) -> str:
        """The folder's error while UIDs wait: which, how often tried, why."""
        first = waiting[min(waiting)]
        more = f" and {len(waiting) - 1} more" if len(waiting) > 1 else ""
        return (
            f"UID {first.uid}{more} listed by the server but not delivered"
            f" (attempt {first.attempts} of {self.settings.missing_attempts},"
            f" next in {max(0.0, first.retry_in):.0f} s): {first.reason}"
        )

    def _after_ingest(self, mailbox: WatchedMailbox, uids: list[int]) -> list[str]:
        """Apply the action; a refusal (not a dead connection) is returned as a warning."""
        if not uids or self.settings.after_ingest == "keep":
            return []
        try:
            mailbox.after_ingest(uids)
        except MailboxError as exc:
            if not mailbox.alive:
                raise
            # The mail is stored; a refused action must not stop ingestion. It is
            # retried at the next connection (pending_after_ingest).
            log.warning(
                "after_ingest_failed",
                folder=self.folder,
                action=self.settings.after_ingest,
                count=len(uids),
                error=str(exc),
            )
            return [f"after_ingest: {exc}"]
        return []

    # -- the long-running loop -----------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Watch the folder until ``stop`` is set; never raises.

        Returns within about a second of ``stop`` on a healthy connection (IDLE
        is checked in half-second slices, back-off sleeps wait on ``stop``); the
        message in hand is finished or, if not yet committed, left for next time.
        """
        log.info("imap_watch_started", folder=self.folder)
        while not stop.is_set():
            try:
                self._session(stop)
            except (MailboxAuthError, ConfigError) as exc:
                # retried too (a password file may be fixed meanwhile), at back-off pace
                error = str(exc)
                event = (
                    "imap_login_refused"
                    if isinstance(exc, MailboxAuthError)
                    else "imap_config_error"
                )
                log.error(event, folder=self.folder, error=error)  # noqa: TRY400 - no traceback
            except (MailboxError, StoreError) as exc:
                error = str(exc)
            except Exception as exc:  # the runner owns failure; the loop goes on
                error = f"{type(exc).__name__}: {exc}"
                log.exception("imap_watch_failed", folder=self.folder)
            else:
                continue
            if stop.is_set():
                break
            self._record_failure(error)
            delay = self.backoff.next_delay()
            log.warning(
                "imap_reconnecting",
                folder=self.folder,
                attempt=self.backoff.attempt,
                delay=round(delay, 2),
                error=error,
            )
            stop.wait(delay)
        log.info("imap_watch_stopped", folder=self.folder)

    def _session(self, stop: threading.Event) -> None:
        """One connection: a pass at once, then wait/pass until stopped or it fails.

        A pass follows at once while the server announced more mail during the
        last one; otherwise the watcher waits (IDLE or polling) until news, the
        fallback poll, or a missing UID's retry. A database failure does not end
        the connection: the pass is retried on it after the database back-off.
        """
        with self.open_mailbox() as mailbox:
            self._current = mailbox
            try:
                log.info(
                    "imap_connected",
                    folder=self.folder,
                    idle=mailbox.can_idle,
                    attempt=self.backoff.attempt,
                )
                heal = True
                while not stop.is_set():
                    try:
                        report = self._pass(mailbox, stop, heal=heal)
                    except StoreError as exc:
                        # the server answered up to here: only the database backs off
                        self.backoff.reset()
                        stop.wait(self._database_failed(str(exc)))
                        continue
                    heal = False
                    self.backoff.reset()
                    self._database_recovered()
                    if stop.is_set() or mailbox.take_news():
                        continue  # the folder grew during the pass: never wait on more
                    timeout = self.settings.fallback_poll
                    if report.retry_in is not None:
                        timeout = min(timeout, max(0.0, report.retry_in))
                    if not mailbox.can_idle:
                        timeout = min(timeout, self.settings.poll_interval)
                    mailbox.wait(timeout, stop)
            finally:
                self._current = None

    def _database_failed(self, error: str) -> float:
        """Log and record a database failure (once per episode); the delay before retrying."""
        delay = self.database_backoff.next_delay()
        if self.database_backoff.attempt == 1:
            self._database_failing_since = time.monotonic()
            log.warning(
                "intake_database_failed", folder=self.folder, error=error, retry_in=round(delay, 2)
            )
            self._record_failure(error)
        else:
            log.debug(
                "intake_database_retry",
                folder=self.folder,
                attempt=self.database_backoff.attempt,
                delay=round(delay, 2),
                error=error,
            )
        return delay

    def _database_recovered(self) -> None:
        if not self.database_backoff.attempt:
            return
        log.info(
            "intake_database_recovered",
            folder=self.folder,
            failures=self.database_backoff.attempt,
            seconds=round(time.monotonic() - self._database_failing_since, 1),
        )
        self.database_backoff.reset()

    def interrupt(self) -> None:
        """From another thread: break a read blocked on a half-open connection."""
        current = self._current
        if current is not None:
            current.interrupt()

    def _record_failure(self, error: str) -> None:
        try:
            self.sink.pass_failed(self.folder, error)
        except StoreError as exc:  # the database is down too: the log still has it
            log.error("folder_error_not_recorded", folder=self.folder, error=str(exc))  # noqa: TRY400
