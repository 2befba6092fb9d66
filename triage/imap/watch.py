"""Watching one folder: passes of search-fetch-store, IDLE or polling between them, reconnects.

:class:`FolderWatcher` drives a :class:`~triage.imap.mailbox.Mailbox` for one
folder and hands each fetched message to a :class:`FolderSink` (intake, which
stores it exactly once). It knows IMAP's timing rules, not the database:

- A *pass* selects the folder, asks the sink where to start (:class:`SyncPlan`:
  after the stored high-water mark, or from UID 1 after a UIDVALIDITY change),
  runs ``UID SEARCH``, fetches in batches and stores message by message; after
  each batch the after-ingest action is applied to what was committed.
- Between passes it waits with IDLE where the server has it, else sleeps
  ``poll_interval``; a pass runs at least every ``fallback_poll`` seconds
  whatever IDLE says (a NAT may have dropped the flow silently, and mail
  delivered while not idling is not announced: ../shared/cases/B28), and right
  after every (re)connect.
- Any failure — timeout, EOF, ``* BYE``, socket error, refused command, database
  down — ends the connection; the watcher records the error, waits with
  exponential back-off and jitter (``reconnect_initial`` doubling up to
  ``reconnect_max``) and reconnects. Progress only moves in the sink's
  per-message transactions, so nothing is lost or repeated.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    "FolderSink",
    "FolderWatcher",
    "PassReport",
    "StoreOutcome",
    "SyncPlan",
    "WatchedMailbox",
]

log = structlog.get_logger("triage.imap")


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
        skip_uids: UIDs already stored under ``uidvalidity`` (a rescan resumed after
            a crash): not fetched again.
    """

    folder: str
    uidvalidity: int
    first_uid: int
    rescan: bool = False
    previous_uidvalidity: int | None = None
    last_uid: int = 0
    skip_uids: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass over a folder did.

    Attributes:
        complete: every UID found was handled (False when stopped half-way).
        highest_uid: the highest UID handled or skipped (0 when none).
        seconds: wall-clock duration of the pass.
        warning: a problem that did not stop the pass (a refused after-ingest
            action), "" when none; kept as the folder's last error.
    """

    folder: str
    uidvalidity: int
    rescan: bool
    stored: int = 0
    errors: int = 0
    duplicates: int = 0
    recognized: int = 0
    highest_uid: int = 0
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

    def store(self, plan: SyncPlan, message: FetchedMessage) -> StoreOutcome:
        """Store one message exactly once (its own transaction). Raises StoreError
        when the database cannot be written: the message is then fetched again later."""
        ...

    def end_pass(self, plan: SyncPlan, report: PassReport) -> None:
        """Record a finished pass (last poll time; a completed rescan's new progress)."""
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


class FolderWatcher:
    """Keeps one folder ingested over one connection at a time.

    Args:
        folder: the folder to watch.
        settings: the ``[imap]`` section (timing, after-ingest action).
        sink: stores messages and progress (intake).
        open_mailbox: connects and logs in, returning a fresh mailbox (raises
            MailboxError / MailboxAuthError).
        backoff: reconnect delays; by default from ``reconnect_initial`` / ``reconnect_max``.
    """

    def __init__(
        self,
        folder: str,
        settings: ImapSettings,
        sink: FolderSink,
        open_mailbox: Callable[[], WatchedMailbox],
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.folder = folder
        self.settings = settings
        self.sink = sink
        self.open_mailbox = open_mailbox
        self.backoff = backoff or Backoff(settings.reconnect_initial, settings.reconnect_max)
        self._current: WatchedMailbox | None = None
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
        found = mailbox.search_from(plan.first_uid)
        todo = [uid for uid in found if uid not in plan.skip_uids]
        counts: Counter[StoreOutcome] = Counter()
        highest = max(plan.skip_uids & set(found), default=0)
        complete = True
        for batch in mailbox.fetch(todo):
            if stop.is_set():
                complete = False
                break
            self.sink.prepare(plan, batch)
            done: list[int] = []
            for message in batch:
                if stop.is_set():
                    complete = False
                    break
                counts[self.sink.store(plan, message)] += 1
                done.append(message.uid)
                highest = max(highest, message.uid)
            warnings += self._after_ingest(mailbox, done)
            if not complete:
                break
        report = PassReport(
            folder=self.folder,
            uidvalidity=state.uidvalidity,
            rescan=plan.rescan,
            stored=counts[StoreOutcome.STORED],
            errors=counts[StoreOutcome.ERROR],
            duplicates=counts[StoreOutcome.DUPLICATE],
            recognized=counts[StoreOutcome.RECOGNIZED],
            highest_uid=highest,
            complete=complete,
            seconds=time.monotonic() - started,
            warning=warnings[0] if warnings else "",
        )
        self.sink.end_pass(plan, report)
        self.passes += 1
        emit = log.info if report.handled else log.debug
        emit(
            "poll_completed",
            folder=self.folder,
            uidvalidity=report.uidvalidity,
            stored=report.stored,
            errors=report.errors,
            duplicates=report.duplicates,
            recognized=report.recognized,
            rescan=report.rescan,
            complete=report.complete,
            seconds=round(report.seconds, 3),
        )
        return report

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
        """One connection: a pass at once, then wait/pass until stopped or it fails."""
        with self.open_mailbox() as mailbox:
            self._current = mailbox
            try:
                log.info(
                    "imap_connected",
                    folder=self.folder,
                    idle=mailbox.can_idle,
                    attempt=self.backoff.attempt,
                )
                self._pass(mailbox, stop, heal=True)
                self.backoff.reset()
                next_pass = time.monotonic() + self.settings.fallback_poll
                while not stop.is_set():
                    timeout = next_pass - time.monotonic()
                    if not mailbox.can_idle:
                        timeout = min(timeout, self.settings.poll_interval)
                    mailbox.wait(timeout, stop)
                    if stop.is_set():
                        break
                    self._pass(mailbox, stop, heal=False)
                    next_pass = time.monotonic() + self.settings.fallback_poll
            finally:
                self._current = None

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
