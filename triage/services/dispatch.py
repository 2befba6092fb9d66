"""The dispatcher: delivers outbox rows with a Sender, retrying what can be retried.

For each due row (status ``pending``, ``next_attempt_at`` reached, no live lease):

1. **Claim** it in a short transaction (:data:`CLAIM_CHUNK` rows at a time):
   ``lease_until`` is set with a conditional UPDATE, so two workers (PostgreSQL)
   never send the same row at once; a worker that dies leaves the row to others
   once the lease runs out; rows a pass did not get to are released at its end.
2. **Send** it with the row's fixed Message-ID and bytes.
3. **Record** the outcome (accepted mail :data:`RECORD_CHUNK` at a time, at the
   latest when the chunk's last row is done; failures at once):

   - accepted -> ``sent`` (a sent row is never picked again, so an accepted mail
     is not sent twice by a retry);
   - temporary failure (4xx, server unreachable) -> attempts + 1 and the next
     attempt after an exponential back-off with jitter (``smtp.retry_initial``
     doubling up to ``smtp.retry_max``); after ``smtp.max_attempts`` -> ``failed``;
   - permanent failure (5xx) -> ``failed`` with the server's reply.

Between 2 and 3 the send journal (:mod:`triage.services.sendjournal`) keeps
"accepted by the server" on disk, in space reserved beforehand: when the database
cannot be written (disk full) or the process dies before step 3 commits, the
next pass (or the next process) records the row as sent from the journal instead
of sending it again. A mail whose "sending" record cannot be written is not sent.
The one window left: the process dies between the end of DATA and the server's
reply; the row is then sent again once its lease ends, with the same Message-ID
(so the receiving side can recognise the copy).

When the server cannot be reached at all (:class:`~triage.smtp.SmtpSessionError`),
the rest of the pass is deferred without a connection attempt per row.

When the server refuses the login or the security it needs
(:class:`~triage.errors.SendAuthError`: 535, no AUTH offered while a username is
set, STARTTLS not offered, an XOAUTH2 sign-in gone), sending **stops**: retrying
the same password every few minutes gets real accounts locked. The row in hand is
released untouched (no attempt counted), the ``smtp`` alert is written at once
(``triage status`` exits 1, ``/health`` answers 503, with the server's reply and
what to do; never the secret), and no row is claimed until :meth:`Dispatcher.resume`
(the daemon's SIGHUP, after the configuration is fixed) or a restart: then one
login check (:meth:`SmtpSender.verify`) decides, and the alert is cleared when the
login works.

Log events: ``smtp_login_refused`` (once, when sending stops), ``smtp_sending_resumed``,
``mail_sent``, ``mail_deferred``, ``mail_failed`` with the keys
``outbox`` (row id), ``kind``, ``ticket`` (reference), ``message_id``,
``attempts``; never bodies or secrets. Temporary failures are logged as an episode
(issue 13.11): the first ``mail_deferred`` of a run of them is a warning line, the
following ones are marked ``quiet`` (counted by the metrics, written only at debug
level, :func:`triage.logs.configure_logging`), and the first acceptance after them
logs ``sending_recovered`` with how many deferrals of how many mails it ended and
how long it lasted. A 60-second outage is two lines, not one per mail per retry.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from triage.clock import Clock, SystemClock
from triage.config import Settings
from triage.errors import (
    ConfigError,
    PermanentSendError,
    SendAuthError,
    StoreError,
    TemporarySendError,
)
from triage.logs import get_logger
from triage.services.sendjournal import Accepted, SendJournal, message_key
from triage.smtp import OutgoingMail, Sender, SendReceipt, SmtpSessionError, make_sender
from triage.store import Database
from triage.store.alerts import clear_alert, raise_alert, read_alerts
from triage.store.models import OutboxMail, Ticket

__all__ = ["SMTP_ALERT", "DispatchStats", "Dispatcher", "journal_path", "retry_delay"]

SMTP_ALERT = "smtp"
"""The alert's name (``alerts`` table) while the SMTP server refuses the login."""

SENT_MARK_RETRIES: tuple[float | None, ...] = (0.5, 2.0, 5.0, None)
"""Waits (seconds) between tries to record an accepted mail as sent; None: give up."""

CLAIM_CHUNK = 10
"""Rows leased in one transaction: each commit waits for the database's write lock,
which intake holds for most of a burst, so a chunk costs one wait instead of ten."""

RECORD_CHUNK = 10
"""Accepted mail recorded as sent in one transaction (the send journal holds each
acceptance until then), for the same reason."""


def log() -> Any:
    """The module's logger, bound at each call so it follows the logging configuration.

    (A logger bound once at import keeps the processors of that moment, and misses a
    later configure_logging or structlog.testing.capture_logs.)
    """
    return get_logger("triage.dispatch")


def journal_path(db: Database, settings: Settings | None = None) -> Path | None:
    """Where the send journal of ``db`` lives.

    ``smtp.journal`` when set (relative to the config file); else beside an SQLite
    database file (``<file>.send-journal``); else (PostgreSQL) in systemd's
    ``$STATE_DIRECTORY`` or, without it, the config file's directory. None for an
    in-memory SQLite database without a setting (the journal is then kept in memory).
    """
    smtp = settings.smtp if settings is not None else None
    if settings is not None and smtp is not None and smtp.journal:
        return settings.resolve(smtp.journal)
    url = db.engine.url
    if url.get_backend_name() == "sqlite":
        name = url.database or ""
        if not name or name == ":memory:" or name.startswith("file:"):
            return None
        return Path(name).with_name(Path(name).name + ".send-journal")
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / "send-journal"
    if settings is not None:
        return settings.base_dir / "send-journal"
    return None


def retry_delay(attempts: int, initial: float, maximum: float, jitter: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1 = the first).

    The base doubles from ``initial`` (``initial * 2**(attempts-1)``) and is capped
    at ``maximum``; "equal jitter" then picks a point in [base/2, base) from
    ``jitter`` in [0, 1), so workers that failed together do not retry together.
    """
    exponent = min(max(attempts - 1, 0), 62)
    base = min(maximum, math.ldexp(initial, exponent))
    return base * (0.5 + min(max(jitter, 0.0), 1.0) / 2)


@dataclass
class _Deferrals:
    """A run of temporary send failures (one log line at its start, one at its end)."""

    since: datetime
    deferrals: int = 0
    mails: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class DispatchStats:
    """What one pass did: rows sent, deferred (to retry) and failed (given up)."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0

    @property
    def handled(self) -> int:
        """Rows the pass claimed."""
        return self.sent + self.deferred + self.failed


@dataclass(frozen=True, slots=True)
class _Claimed:
    mail: OutgoingMail
    kind: str
    ticket: int | None
    attempts: int


class Dispatcher:
    """Delivers due outbox rows with ``sender``.

    Args:
        db: the database.
        sender: SmtpSender or FolderSender.
        max_attempts: temporary failures before a row is marked failed.
        retry_initial: seconds before the first retry.
        retry_max: longest wait between attempts, seconds.
        lease: seconds a claimed row stays reserved for this worker; must exceed
            the longest send (several SMTP command timeouts).
        clock: the time source (timestamps written, leases).
        batch_size: rows per pass at most.
        poll_interval: seconds :meth:`run` sleeps between passes unless woken.
        rng: random source of the back-off jitter.
        journal: the send journal; default :func:`journal_path` of ``db`` (in memory
            when there is no file to put it beside).

    Raises:
        StoreError: the send journal cannot be created or locked (names the file).
    """

    def __init__(
        self,
        db: Database,
        sender: Sender,
        *,
        max_attempts: int = 12,
        retry_initial: float = 30.0,
        retry_max: float = 3600.0,
        lease: float = 210.0,
        clock: Clock | None = None,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        rng: random.Random | None = None,
        journal: SendJournal | None = None,
    ) -> None:
        self.db = db
        self.journal = journal if journal is not None else SendJournal(journal_path(db))
        for outbox_id, _key in self.journal.unknown:
            log().warning("mail_outcome_unknown", outbox=outbox_id, journal=str(self.journal.path))
        self.sender = sender
        self.max_attempts = max_attempts
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.lease = timedelta(seconds=lease)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.rng = rng if rng is not None else random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.stopped = ""
        """Why sending has stopped (a refused login, :class:`SendAuthError`); "" while sending."""
        self._resume_lock = threading.Lock()
        self._resume: tuple[Sender | None] | None = None
        self._alert: str | None = None
        """The alert still to be written: the problem, "" to clear it, None: nothing to do."""
        self._checked_start = False
        self._held: dict[int, _Claimed] = {}
        self._deferring: _Deferrals | None = None
        """The run of temporary failures in progress (None: the last attempt worked)."""

    @classmethod
    def from_settings(
        cls,
        db: Database,
        settings: Settings,
        *,
        sender: Sender | None = None,
        clock: Clock | None = None,
        poll_interval: float = 1.0,
    ) -> Dispatcher:
        """A dispatcher configured by ``[smtp]`` (sender from :func:`~triage.smtp.make_sender`).

        The lease is 6 SMTP timeouts plus 30 s (210 s with the default 30 s timeout).

        Raises:
            ConfigError: there is no [smtp] section.
        """
        smtp = settings.smtp
        if smtp is None:
            raise ConfigError("no [smtp] section: outgoing mail cannot be sent")
        return cls(
            db,
            sender if sender is not None else make_sender(settings),
            max_attempts=smtp.max_attempts,
            retry_initial=smtp.retry_initial,
            retry_max=smtp.retry_max,
            lease=6 * smtp.timeout + 30,
            clock=clock,
            poll_interval=poll_interval,
            journal=SendJournal(journal_path(db, settings)),
        )

    # -- database steps (run in a worker thread; each one its own transaction) --

    def _due_ids(self, now: datetime) -> list[int]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(OutboxMail.id)
                    .where(
                        OutboxMail.status == "pending",
                        OutboxMail.next_attempt_at <= now,
                        or_(OutboxMail.lease_until.is_(None), OutboxMail.lease_until < now),
                    )
                    .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
                    .limit(self.batch_size)
                )
            )

    def _claim(self, outbox_id: int, due: datetime) -> _Claimed | None:
        now = self.clock.now()
        with self.db.session() as s:
            result = s.execute(
                update(OutboxMail)
                .where(
                    OutboxMail.id == outbox_id,
                    OutboxMail.status == "pending",
                    OutboxMail.next_attempt_at <= max(due, now),
                    or_(OutboxMail.lease_until.is_(None), OutboxMail.lease_until < now),
                )
                .values(lease_until=now + self.lease)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return self._claimed(s, s.get_one(OutboxMail, outbox_id))

    def _claim_next(self, due: datetime) -> _Claimed | None:
        """PostgreSQL: lease the next due row no other worker has locked, in one transaction.

        ``FOR UPDATE SKIP LOCKED`` lets several workers claim disjoint rows at once
        instead of racing each other down the same list; the lease (a conditional
        value, as on SQLite) still keeps a crashed worker's row from being sent twice.
        """
        now = self.clock.now()
        with self.db.session() as s:
            row = s.scalars(
                select(OutboxMail)
                .where(
                    OutboxMail.status == "pending",
                    OutboxMail.next_attempt_at <= max(due, now),
                    or_(OutboxMail.lease_until.is_(None), OutboxMail.lease_until < now),
                )
                .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            row.lease_until = now + self.lease
            return self._claimed(s, row)

    def _claim_many(self, ids: list[int], due: datetime) -> list[_Claimed]:
        """Lease each of ``ids`` still due and unleased, in one transaction (SQLite)."""
        now = self.clock.now()
        won = []
        with self.db.session() as s:
            for outbox_id in ids:
                result = s.execute(
                    update(OutboxMail)
                    .where(
                        OutboxMail.id == outbox_id,
                        OutboxMail.status == "pending",
                        OutboxMail.next_attempt_at <= max(due, now),
                        or_(OutboxMail.lease_until.is_(None), OutboxMail.lease_until < now),
                    )
                    .values(lease_until=now + self.lease)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    won.append(outbox_id)
            return [self._claimed(s, s.get_one(OutboxMail, i)) for i in won]

    def _claim_next_many(self, due: datetime, limit: int) -> list[_Claimed]:
        """PostgreSQL: lease up to ``limit`` due rows no other worker has locked, at once."""
        now = self.clock.now()
        with self.db.session() as s:
            rows = s.scalars(
                select(OutboxMail)
                .where(
                    OutboxMail.status == "pending",
                    OutboxMail.next_attempt_at <= max(due, now),
                    or_(OutboxMail.lease_until.is_(None), OutboxMail.lease_until < now),
                )
                .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                row.lease_until = now + self.lease
            return [self._claimed(s, row) for row in rows]

    @staticmethod
    def _claimed(s: Any, row: OutboxMail) -> _Claimed:
        ticket = s.get(Ticket, row.ticket_id) if row.ticket_id is not None else None
        return _Claimed(
            mail=OutgoingMail(
                message_id=row.message_id,
                mail_from=row.mail_from,
                rcpt_to=tuple(str(r) for r in row.rcpt_to),
                raw=row.raw,
                outbox_id=row.id,
            ),
            kind=row.kind,
            ticket=ticket.ref if ticket is not None else None,
            attempts=row.attempts,
        )

    async def _claims(self, due: datetime, stop: asyncio.Event | None) -> AsyncIterator[_Claimed]:
        """The rows this pass sends, leased to this worker :data:`CLAIM_CHUNK` at a time
        before they are yielded; none is claimed once ``stop`` is set. Rows leased but
        not handed out (the consumer stopped) stay in ``self._held`` for release."""
        if self.db.engine.dialect.name == "postgresql":
            left = self.batch_size
            while left > 0:
                if stop is not None and stop.is_set():
                    return
                chunk = await asyncio.to_thread(self._claim_next_many, due, min(CLAIM_CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                self._held.update((c.mail.outbox_id or 0, c) for c in chunk)
                for claimed in chunk:
                    yield claimed
            return
        ids = await asyncio.to_thread(self._due_ids, due)
        for start in range(0, len(ids), CLAIM_CHUNK):
            if stop is not None and stop.is_set():
                return
            chunk = await asyncio.to_thread(self._claim_many, ids[start : start + CLAIM_CHUNK], due)
            self._held.update((c.mail.outbox_id or 0, c) for c in chunk)
            for claimed in chunk:
                yield claimed

    def _release_held(self, ids: list[int]) -> None:
        """Give back leased rows this pass did not get to (one transaction)."""
        with self.db.session() as s:
            s.execute(
                update(OutboxMail)
                .where(OutboxMail.id.in_(ids), OutboxMail.status == "pending")
                .values(lease_until=None)
                .execution_options(synchronize_session=False)
            )

    def _finish(self, outbox_id: int, **values: object) -> None:
        self._finish_many([(outbox_id, values)])

    def _finish_many(self, items: list[tuple[int, dict[str, object]]]) -> None:
        """Write each row's outcome (and end its lease), all in one transaction."""
        with self.db.session() as s:
            for outbox_id, values in items:
                s.execute(
                    update(OutboxMail)
                    .where(OutboxMail.id == outbox_id, OutboxMail.status == "pending")
                    .values(lease_until=None, **values)
                    .execution_options(synchronize_session=False)
                )

    # -- one row --

    def _keys(self, claimed: _Claimed, attempts: int) -> dict[str, object]:
        return {
            "outbox": claimed.mail.outbox_id,
            "kind": claimed.kind,
            "ticket": claimed.ticket,
            "message_id": claimed.mail.message_id,
            "attempts": attempts,
        }

    async def _sent(self, batch: list[tuple[_Claimed, SendReceipt, int]]) -> bool:
        """Record accepted mail (``(claimed, receipt, journal slot)``) as sent, in one
        transaction; False when the database would not take it (the journal's records
        then stand for them until a later pass)."""
        if not batch:
            return True
        now = self.clock.now()
        items: list[tuple[int, dict[str, object]]] = [
            (
                claimed.mail.outbox_id or 0,
                {
                    "status": "sent",
                    "sent_at": now,
                    "attempts": claimed.attempts + 1,
                    "last_error": "; ".join(
                        f"refused {a}: {r}" for a, r in receipt.refused.items()
                    ),
                },
            )
            for claimed, receipt, _slot in batch
        ]
        first = batch[0][0]
        # The server has the mail: try hard to record it; the journal keeps it meanwhile.
        for delay in SENT_MARK_RETRIES:
            try:
                await asyncio.to_thread(self._finish_many, items)
                break
            except SQLAlchemyError as exc:
                if delay is None:
                    log().error(
                        "mail_sent_not_recorded",
                        **self._keys(first, first.attempts + 1),
                        count=len(batch),
                        error=type(exc).__name__,
                        kept_in=str(self.journal.path or "memory"),
                    )
                    return False
                log().warning(
                    "mail_sent_not_recorded",
                    **self._keys(first, first.attempts + 1),
                    count=len(batch),
                )
                await asyncio.sleep(delay)
        self._recovered()
        for claimed, receipt, slot in batch:
            self.journal.done(slot)
            log().info(
                "mail_sent",
                **self._keys(claimed, claimed.attempts + 1),
                reply=receipt.reply,
                refused=receipt.refused or None,
            )
        return True

    def _record_accepted(self, accepted: Accepted) -> bool:
        """Record a journaled acceptance as ``sent`` (if the row still waits); True when
        the database has the outcome (sent now or before)."""
        with self.db.session() as s:
            row = s.get(OutboxMail, accepted.outbox_id)
            if row is None or message_key(row.message_id) != accepted.key:
                return True  # not this database's row (or gone): nothing to record
            if row.status != "pending":
                return True
            row.status = "sent"
            row.sent_at = accepted.at
            row.attempts = row.attempts + 1
            row.lease_until = None
            return True

    async def _settle_journal(self) -> int:
        """Record every acceptance the journal holds; returns how many were recorded.

        Stops at the first database failure (the records stay for the next pass).
        """
        recorded = 0
        for slot, accepted in self.journal.accepted_slots().items():
            try:
                await asyncio.to_thread(self._record_accepted, accepted)
            except SQLAlchemyError:
                return recorded
            self.journal.done(slot)
            recorded += 1
            log().info(
                "mail_sent_recorded_late", outbox=accepted.outbox_id, accepted_at=accepted.at
            )
        return recorded

    async def _deferred(self, claimed: _Claimed, error: str) -> bool:
        """Record a temporary failure; True when the row was given up (failed)."""
        attempts = claimed.attempts + 1
        outbox_id = claimed.mail.outbox_id or 0
        if attempts >= self.max_attempts:
            message = f"gave up after {attempts} attempts: {error}"
            await asyncio.to_thread(
                self._finish, outbox_id, status="failed", attempts=attempts, last_error=message
            )
            log().error("mail_failed", **self._keys(claimed, attempts), error=message)
            return True
        delay = retry_delay(attempts, self.retry_initial, self.retry_max, self.rng.random())
        next_at = self.clock.now() + timedelta(seconds=delay)
        await asyncio.to_thread(
            self._finish, outbox_id, attempts=attempts, next_attempt_at=next_at, last_error=error
        )
        episode = self._deferring
        first = episode is None
        if episode is None:
            episode = self._deferring = _Deferrals(since=self.clock.now())
        episode.deferrals += 1
        episode.mails.add(outbox_id)
        extra: dict[str, object] = {"quiet": True} if not first else {}
        log().warning(
            "mail_deferred",
            **self._keys(claimed, attempts),
            next_attempt_at=next_at.isoformat(),
            error=error,
            **extra,
        )
        return False

    def _recovered(self) -> None:
        """End the run of temporary failures, if any, with one summary line."""
        episode, self._deferring = self._deferring, None
        if episode is None:
            return
        log().info(
            "sending_recovered",
            deferrals=episode.deferrals,
            mails=len(episode.mails),
            seconds=round((self.clock.now() - episode.since).total_seconds(), 1),
        )

    async def _failed(self, claimed: _Claimed, error: str) -> None:
        attempts = claimed.attempts + 1
        await asyncio.to_thread(
            self._finish,
            claimed.mail.outbox_id or 0,
            status="failed",
            attempts=attempts,
            last_error=error,
        )
        log().error("mail_failed", **self._keys(claimed, attempts), error=error)

    # -- passes --

    async def run_once(
        self,
        now: datetime | None = None,
        *,
        stop: asyncio.Event | None = None,
        close_session: bool = True,
    ) -> DispatchStats:
        """Deliver every row due at ``now`` (default: the clock's now), up to ``batch_size``.

        Stops between two rows when ``stop`` is set (the row in hand is finished
        and recorded first). Closes the sender's session at the end unless
        ``close_session`` is False (:meth:`run` keeps it while mail keeps coming).

        Returns:
            How many rows were sent, deferred and failed.
        """
        due = now if now is not None else self.clock.now()
        sent = deferred = failed = 0
        unreachable = ""
        await self._check_stopped()
        if self.stopped:
            return DispatchStats()
        sent += await self._settle_journal()
        self._held = {}
        accepted_mail: list[tuple[_Claimed, SendReceipt, int]] = []
        try:
            async for claimed in self._claims(due, stop):
                outbox_id = claimed.mail.outbox_id
                if stop is not None and stop.is_set():
                    break  # this row and the rest of its chunk are released below
                self._held.pop(outbox_id or 0, None)
                if unreachable:
                    gave_up = await self._deferred(claimed, unreachable)
                    failed, deferred = failed + gave_up, deferred + (not gave_up)
                    continue
                known = self.journal.was_accepted(outbox_id or 0, claimed.mail.message_id)
                if known is not None:  # accepted before, never recorded: record, never resend
                    await asyncio.to_thread(self._record_accepted, known[1])
                    self.journal.done(known[0])
                    log().info("mail_sent_recorded_late", outbox=outbox_id)
                    sent += 1
                    continue
                try:
                    slot = self.journal.begin(outbox_id or 0, claimed.mail.message_id)
                except StoreError as exc:  # cannot be recognised later: do not send
                    unreachable = str(exc)
                    log().error("send_journal_failed", error=unreachable)
                    gave_up = await self._deferred(claimed, unreachable)
                    failed, deferred = failed + gave_up, deferred + (not gave_up)
                    continue
                accepted = False
                try:
                    receipt = await self.sender.send(claimed.mail)
                except SendAuthError as exc:
                    await self._release(claimed, str(exc))
                    await self._stop_sending(str(exc))
                    break
                except SmtpSessionError as exc:
                    unreachable = str(exc)
                    gave_up = await self._deferred(claimed, unreachable)
                    failed, deferred = failed + gave_up, deferred + (not gave_up)
                except TemporarySendError as exc:
                    gave_up = await self._deferred(claimed, str(exc))
                    failed, deferred = failed + gave_up, deferred + (not gave_up)
                except PermanentSendError as exc:
                    await self._failed(claimed, str(exc))
                    failed += 1
                except Exception as exc:  # noqa: BLE001 - the runner owns failure (logged below)
                    # An unexpected error defers the row; the pass goes on.
                    log().exception("mail_send_crashed", outbox=outbox_id)
                    gave_up = await self._deferred(claimed, f"{type(exc).__name__}: {exc}")
                    failed, deferred = failed + gave_up, deferred + (not gave_up)
                else:
                    accepted = True
                    self.journal.accepted(slot, self.clock.now(), receipt.reply)
                finally:
                    if not accepted:
                        self.journal.done(slot)
                if accepted:
                    sent += 1
                    accepted_mail.append((claimed, receipt, slot))
                    if len(accepted_mail) >= RECORD_CHUNK or not self._held:
                        recorded = await self._sent(accepted_mail)
                        accepted_mail = []
                        if not recorded:
                            break  # the database takes no writes: the journal holds them
        finally:
            try:
                await self._sent(accepted_mail)
                if self._held:
                    await asyncio.to_thread(self._release_held, list(self._held))
            except SQLAlchemyError:
                pass  # their leases run out; the journal holds what was accepted
            finally:
                self._held = {}
                if close_session or unreachable or self.stopped:
                    await self.sender.aclose()
        return DispatchStats(sent=sent, deferred=deferred, failed=failed)

    # -- a refused login: stop, report, resume on request --

    def resume(self, sender: Sender | None = None) -> None:
        """Send again after a refused login, with ``sender`` (a new configuration) if given.

        Safe to call from any thread (the daemon's SIGHUP). The next pass first
        checks the login once (``sender.verify()`` when the sender has it): the alert
        is cleared when it works; when refused again, sending stays stopped with the
        new reason. Without a stop in force it only swaps the sender.
        """
        with self._resume_lock:
            self._resume = (sender,)
        self.wake()

    async def _check_stopped(self) -> None:
        """Apply a pending :meth:`resume`, check the login, and write the alert's change."""
        if not self._checked_start:
            self._checked_start = True
            # A refusal reported by an earlier run (then a restart): check the login now.
            try:
                standing = await asyncio.to_thread(self._standing_alert)
            except SQLAlchemyError:
                standing = False
            if standing:
                with self._resume_lock:
                    self._resume = self._resume or (None,)
        with self._resume_lock:
            resume, self._resume = self._resume, None
        if resume is not None:
            fresh = resume[0]
            if fresh is not None and fresh is not self.sender:
                await self.sender.aclose()
                self.sender = fresh
            was = self.stopped
            self.stopped = ""
            error = await self._verify()
            if error:
                await self._stop_sending(error)
            else:
                self._alert = ""
                if was:
                    log().info("smtp_sending_resumed", sender=repr(self.sender))
        await self._write_alert()

    def _standing_alert(self) -> bool:
        with self.db.read_session() as s:
            return any(name == SMTP_ALERT for name, _, _ in read_alerts(s))

    async def _verify(self) -> str:
        """One login check with the current sender: the refusal, or "" (also when the
        server is merely unreachable: that is retried as usual)."""
        verify = getattr(self.sender, "verify", None)
        if verify is None:
            return ""
        try:
            await verify()
        except SendAuthError as exc:
            return str(exc)
        except Exception:  # noqa: BLE001 - unreachable etc.: the passes retry and report
            return ""
        finally:
            await self.sender.aclose()
        return ""

    async def _stop_sending(self, reason: str) -> None:
        first = not self.stopped
        self.stopped = reason
        problem = (
            f"sending stopped: {reason}. Fix [smtp] (or the password, or sign in again with"
            " `triage auth login`), then reload the daemon (SIGHUP: systemctl reload triage)"
        )
        self._alert = problem
        if first:
            log().error("smtp_login_refused", error=reason)
        await self._write_alert()

    async def _write_alert(self) -> None:
        """Write (or clear) the ``smtp`` alert; kept for the next pass when the database fails."""
        alert = self._alert
        if alert is None:
            return
        try:
            await asyncio.to_thread(self._store_alert, alert)
        except SQLAlchemyError as exc:
            log().warning("smtp_alert_not_recorded", error=type(exc).__name__)
            return
        if self._alert == alert:
            self._alert = None

    def _store_alert(self, problem: str) -> None:
        with self.db.session() as s:
            if problem:
                raise_alert(s, SMTP_ALERT, problem, self.clock.now())
            else:
                clear_alert(s, SMTP_ALERT)

    async def _release(self, claimed: _Claimed, error: str) -> None:
        """Give a claimed row back untouched but for ``last_error`` (no attempt counted)."""
        try:
            await asyncio.to_thread(
                self._finish, claimed.mail.outbox_id or 0, last_error=f"not sent: {error}"
            )
        except SQLAlchemyError:
            return  # its lease runs out; it was not sent

    def close(self) -> None:
        """Release the send journal's file (what it holds stays for the next process)."""
        self.journal.close()

    def wake(self) -> None:
        """Ask :meth:`run` for a pass now (e.g. after intake queued an acknowledgment).

        Safe to call from any thread; does nothing when :meth:`run` is not running.
        """
        loop, event = self._loop, self._wake
        if loop is None or event is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # the loop closed in between
            return

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver mail until ``stop`` is set: a pass, then sleep ``poll_interval`` or until woken.

        A failing pass (e.g. the database unreachable or its disk full) is retried
        after the interval; it never ends the loop. The failure is logged once when
        it starts (``dispatch_failed``, with its traceback) and once when a pass
        works again (``dispatch_recovered``, with the passes that failed), never
        once per pass.
        The SMTP session stays open from one pass to the next while passes follow
        each other (intake keeps waking it during a burst: no new connection, TLS
        handshake and login per pass) and is closed (QUIT) after an idle interval.
        """
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        log().info("dispatcher_started", sender=repr(self.sender))
        failed_passes = 0
        failing_since = 0.0
        try:
            while not stop.is_set():
                self._wake.clear()
                full = False
                try:
                    stats = await self.run_once(stop=stop, close_session=False)
                    full = stats.handled >= self.batch_size
                except Exception:  # noqa: BLE001 - logged; the loop outlives a failing pass
                    # e.g. the database unreachable: try again after the interval.
                    if not failed_passes:
                        failing_since = self._loop.time()
                        log().exception("dispatch_failed")
                    failed_passes += 1
                    await self.sender.aclose()
                else:
                    if failed_passes:
                        log().info(
                            "dispatch_recovered",
                            failed_passes=failed_passes,
                            seconds=round(self._loop.time() - failing_since, 1),
                        )
                        failed_passes = 0
                if not full and not await self._sleep(stop):
                    await self.sender.aclose()  # idle: end the session politely
        finally:
            await self.sender.aclose()
            self._wake = None
            log().info("dispatcher_stopped")

    async def _sleep(self, stop: asyncio.Event) -> bool:
        """Wait ``poll_interval`` or until woken or stopped; True when woken."""
        assert self._wake is not None  # noqa: S101 - set by run()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(
                waiters, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        return self._wake.is_set() and not stop.is_set()
