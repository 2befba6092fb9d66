"""The dispatcher: delivers outbox rows with a Sender, retrying what can be retried.

For each due row (status ``pending``, ``next_attempt_at`` reached, no live lease):

1. **Claim** it in a short transaction: ``lease_until`` is set with a conditional
   UPDATE, so two workers (PostgreSQL) never send the same row at once; a worker
   that dies leaves the row to others once the lease runs out.
2. **Send** it with the row's fixed Message-ID and bytes.
3. **Record** the outcome in its own commit, right after the server answered:

   - accepted -> ``sent`` (a sent row is never picked again, so an accepted mail
     is not sent twice by a retry);
   - temporary failure (4xx, server unreachable) -> attempts + 1 and the next
     attempt after an exponential back-off with jitter (``smtp.retry_initial``
     doubling up to ``smtp.retry_max``); after ``smtp.max_attempts`` -> ``failed``;
   - permanent failure (5xx) -> ``failed`` with the server's reply.

The one window left: if the process dies after the server accepted a mail and
before step 3 commits, the row is sent again once its lease ends, with the
same Message-ID (so the receiving side can recognise the copy).

When the server cannot be reached at all (:class:`~triage.smtp.SmtpSessionError`),
the rest of the pass is deferred without a connection attempt per row.

Log events: ``mail_sent``, ``mail_deferred``, ``mail_failed`` with the keys
``outbox`` (row id), ``kind``, ``ticket`` (reference), ``message_id``,
``attempts``; never bodies or secrets.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from triage.clock import Clock, SystemClock
from triage.config import Settings
from triage.errors import ConfigError, PermanentSendError, TemporarySendError
from triage.logs import get_logger
from triage.smtp import OutgoingMail, Sender, SmtpSessionError, make_sender
from triage.store import Database
from triage.store.models import OutboxMail, Ticket

__all__ = ["DispatchStats", "Dispatcher", "retry_delay"]

SENT_MARK_RETRIES: tuple[float | None, ...] = (0.5, 2.0, 5.0, None)
"""Waits (seconds) between tries to record an accepted mail as sent; None: give up."""


def log() -> Any:
    """The module's logger, bound at each call so it follows the logging configuration.

    (A logger bound once at import keeps the processors of that moment, and misses a
    later configure_logging or structlog.testing.capture_logs.)
    """
    return get_logger("triage.dispatch")


def retry_delay(attempts: int, initial: float, maximum: float, jitter: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1 = the first).

    The base doubles from ``initial`` (``initial * 2**(attempts-1)``) and is capped
    at ``maximum``; "equal jitter" then picks a point in [base/2, base) from
    ``jitter`` in [0, 1), so workers that failed together do not retry together.
    """
    exponent = min(max(attempts - 1, 0), 62)
    base = min(maximum, math.ldexp(initial, exponent))
    return base * (0.5 + min(max(jitter, 0.0), 1.0) / 2)


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
    ) -> None:
        self.db = db
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
            row = s.get_one(OutboxMail, outbox_id)
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
        """The rows this pass sends, each leased to this worker before it is yielded;
        none is claimed once ``stop`` is set."""
        if self.db.engine.dialect.name == "postgresql":
            for _ in range(self.batch_size):
                if stop is not None and stop.is_set():
                    return
                claimed = await asyncio.to_thread(self._claim_next, due)
                if claimed is None:
                    return
                yield claimed
            return
        for outbox_id in await asyncio.to_thread(self._due_ids, due):
            if stop is not None and stop.is_set():
                return
            claimed = await asyncio.to_thread(self._claim, outbox_id, due)
            if claimed is not None:
                yield claimed

    def _finish(self, outbox_id: int, **values: object) -> None:
        with self.db.session() as s:
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

    async def _sent(self, claimed: _Claimed, reply: str, refused: dict[str, str]) -> None:
        attempts = claimed.attempts + 1
        values = {
            "status": "sent",
            "sent_at": self.clock.now(),
            "attempts": attempts,
            "last_error": "; ".join(f"refused {a}: {r}" for a, r in refused.items()),
        }
        # The server has the mail: try hard to record it, since a row left pending
        # is sent again once its lease ends.
        for delay in SENT_MARK_RETRIES:
            try:
                await asyncio.to_thread(self._finish, claimed.mail.outbox_id or 0, **values)
                break
            except SQLAlchemyError:
                if delay is None:
                    raise
                log().warning("mail_sent_not_recorded", **self._keys(claimed, attempts))
                await asyncio.sleep(delay)
        log().info(
            "mail_sent", **self._keys(claimed, attempts), reply=reply, refused=refused or None
        )

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
        log().warning(
            "mail_deferred",
            **self._keys(claimed, attempts),
            next_attempt_at=next_at.isoformat(),
            error=error,
        )
        return False

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
        self, now: datetime | None = None, *, stop: asyncio.Event | None = None
    ) -> DispatchStats:
        """Deliver every row due at ``now`` (default: the clock's now), up to ``batch_size``.

        Stops between two rows when ``stop`` is set (the row in hand is finished
        and recorded first). Closes the sender's session at the end.

        Returns:
            How many rows were sent, deferred and failed.
        """
        due = now if now is not None else self.clock.now()
        sent = deferred = failed = 0
        unreachable = ""
        try:
            async for claimed in self._claims(due, stop):
                outbox_id = claimed.mail.outbox_id
                if unreachable:
                    gave_up = await self._deferred(claimed, unreachable)
                    failed, deferred = failed + gave_up, deferred + (not gave_up)
                    continue
                try:
                    receipt = await self.sender.send(claimed.mail)
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
                    await self._sent(claimed, receipt.reply, receipt.refused)
                    sent += 1
        finally:
            await self.sender.aclose()
        return DispatchStats(sent=sent, deferred=deferred, failed=failed)

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

        A failing pass (e.g. the database unreachable) is logged as
        ``dispatch_failed`` and retried after the interval; it never ends the loop.
        """
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        log().info("dispatcher_started", sender=repr(self.sender))
        try:
            while not stop.is_set():
                self._wake.clear()
                full = False
                try:
                    stats = await self.run_once(stop=stop)
                    full = stats.handled >= self.batch_size
                except Exception:  # noqa: BLE001 - logged; the loop outlives a failing pass
                    # e.g. the database unreachable: try again after the interval.
                    log().exception("dispatch_failed")
                if not full:
                    await self._sleep(stop)
        finally:
            self._wake = None
            log().info("dispatcher_stopped")

    async def _sleep(self, stop: asyncio.Event) -> None:
        assert self._wake is not None  # noqa: S101 - set by run()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(
                waiters, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
