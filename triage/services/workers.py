"""Several workers on one database: who is alive, and which folders each one watches.

On PostgreSQL any number of ``triage run`` processes (on one host or several)
may share one database. Each registers in ``workers`` and renews a heartbeat;
folders are handed out by lease (``folders.lease_worker`` / ``lease_until``,
times from the database's own clock, so the hosts' clocks do not matter):

- a worker takes a free folder (no holder, or a lease that lapsed) while it
  holds fewer than its fair share, ``ceil(folders / live workers)``;
- it renews its leases every ``renew`` seconds; a worker that dies stops
  renewing and its folders are free ``ttl`` seconds later (30 s by default:
  taken over within a minute);
- a worker holding more than its share (a new worker joined) lets the extra
  folders go after the message in hand, so the others can take them.

Correctness never depends on the lease: the unique key ``(folder_id,
uidvalidity, uid)`` and the folder's conditional high-water mark update keep
two workers on one folder (a lease lapsed during a long pause, a clock jump)
exactly-once; the lease only keeps them from doing the same work twice.

On SQLite there is one daemon per database file: :func:`sqlite_daemon_lock`
refuses a second one with a clear message (several workers need PostgreSQL).
"""

from __future__ import annotations

import fcntl
import math
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import structlog
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DBAPIError

from triage.errors import StoreError, UserError
from triage.store import Database
from triage.store.models import Folder, Worker

__all__ = [
    "LEASE_RENEW_SECONDS",
    "LEASE_TTL_SECONDS",
    "LeaseKeeper",
    "WorkerInfo",
    "WorkerLeases",
    "list_workers",
    "sqlite_daemon_lock",
]

log = structlog.get_logger("triage.workers")

LEASE_TTL_SECONDS = 30.0
"""A folder lease lapses this long after its holder's last renewal."""
LEASE_RENEW_SECONDS = 2.0
"""Leases and the heartbeat are renewed, and the fair share recomputed, this often."""
FORGET_AFTER = 10
"""A worker silent for this many TTLs is removed from ``workers`` (status stays tidy)."""


def _holder_key(db: Database) -> bool:
    return db.engine.dialect.name == "postgresql"


class WorkerLeases:
    """This process as a worker: registration, heartbeat and folder leases.

    Args:
        db: the store. On anything but PostgreSQL the object is inert
            (``enabled`` False): every folder counts as held, nothing is written.
        ttl: seconds a lease holds without renewal.
        name: this worker's name (default ``host:pid:random``).

    Every method raises :class:`~triage.errors.StoreError` when the database
    cannot be reached.
    """

    def __init__(
        self, db: Database, *, ttl: float = LEASE_TTL_SECONDS, name: str | None = None
    ) -> None:
        self.db = db
        self.enabled = _holder_key(db)
        self.ttl = timedelta(seconds=ttl)
        self.host = socket.gethostname()
        self.name = name or f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    # -- the worker row ------------------------------------------------------------------

    def register(self) -> None:
        """Add this worker to ``workers`` (heartbeat now)."""
        if not self.enabled:
            return
        with self._session() as s:
            s.execute(
                insert(Worker).values(
                    name=self.name,
                    host=self.host[:255],
                    pid=os.getpid(),
                    started_at=func.now(),
                    heartbeat_at=func.now(),
                )
            )
        log.info("worker_registered", worker=self.name)

    def unregister(self) -> None:
        """Release every lease and remove this worker (a clean stop)."""
        if not self.enabled:
            return
        with self._session() as s:
            s.execute(
                update(Folder)
                .where(Folder.lease_worker == self.name)
                .values(lease_worker="", lease_until=None)
            )
            s.execute(delete(Worker).where(Worker.name == self.name))
        log.info("worker_unregistered", worker=self.name)

    def heartbeat(self) -> tuple[set[int], int]:
        """Renew the heartbeat and every lease held.

        Returns:
            (ids of the folders this worker still holds, number of live workers).
        """
        if not self.enabled:
            return set(), 1
        with self._session() as s:
            until = func.now() + self.ttl
            s.execute(
                update(Worker)
                .where(Worker.name == self.name)
                .values(heartbeat_at=func.now())
                .execution_options(synchronize_session=False)
            )
            held = s.scalars(
                update(Folder)
                .where(Folder.lease_worker == self.name)
                .values(lease_until=until)
                .returning(Folder.id)
                .execution_options(synchronize_session=False)
            ).all()
            s.execute(
                delete(Worker)
                .where(Worker.heartbeat_at < func.now() - self.ttl * FORGET_AFTER)
                .execution_options(synchronize_session=False)
            )
            live = s.scalar(
                select(func.count())
                .select_from(Worker)
                .where(Worker.heartbeat_at > func.now() - self.ttl)
            )
        return set(held), max(1, int(live or 0))

    # -- leases ---------------------------------------------------------------------------

    def acquire(self, folder_id: int) -> str:
        """Take the lease of a folder unless a live holder has it.

        Returns:
            "" when this worker holds it now; else the holder's name.
        """
        if not self.enabled:
            return ""
        with self._session() as s:
            taken = s.execute(
                update(Folder)
                .where(
                    Folder.id == folder_id,
                    or_(
                        Folder.lease_worker.in_(("", self.name)),
                        Folder.lease_until.is_(None),
                        Folder.lease_until < func.now(),
                    ),
                )
                .values(lease_worker=self.name, lease_until=func.now() + self.ttl)
                .execution_options(synchronize_session=False)
            )
            if cast("CursorResult[Any]", taken).rowcount == 1:
                return ""
            holder = s.scalar(select(Folder.lease_worker).where(Folder.id == folder_id)) or ""
            if holder and self._died_here(holder):
                # a crashed process on this host (SIGKILL, OOM): no need to wait for its lease
                s.execute(
                    update(Folder)
                    .where(Folder.lease_worker == holder)
                    .values(lease_worker="", lease_until=None)
                    .execution_options(synchronize_session=False)
                )
                s.execute(delete(Worker).where(Worker.name == holder))
                log.warning("worker_found_dead", worker=holder, by=self.name)
                taken = s.execute(
                    update(Folder)
                    .where(Folder.id == folder_id, Folder.lease_worker == "")
                    .values(lease_worker=self.name, lease_until=func.now() + self.ttl)
                    .execution_options(synchronize_session=False)
                )
                if cast("CursorResult[Any]", taken).rowcount == 1:
                    return ""
        return holder or "?"

    def _died_here(self, holder: str) -> bool:
        """``holder`` (``host:pid:random``) ran on this host and its process is gone."""
        parts = holder.rsplit(":", 2)
        if len(parts) != 3 or parts[0] != self.host or not parts[1].isdigit():
            return False
        pid = int(parts[1])
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    def release(self, folder_id: int) -> None:
        """Give a folder's lease up (if this worker holds it)."""
        if not self.enabled:
            return
        with self._session() as s:
            s.execute(
                update(Folder)
                .where(Folder.id == folder_id, Folder.lease_worker == self.name)
                .values(lease_worker="", lease_until=None)
                .execution_options(synchronize_session=False)
            )

    @staticmethod
    def share(folders: int, live_workers: int) -> int:
        """The most folders one of ``live_workers`` should hold (at least 1)."""
        return max(1, math.ceil(folders / max(1, live_workers)))

    @contextmanager
    def _session(self) -> Iterator[Any]:
        try:
            with self.db.session() as s:
                yield s
        except DBAPIError as exc:
            raise StoreError(f"worker {self.name}: database unreachable: {exc.orig}") from None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker as ``triage status`` shows it.

    Attributes:
        name: ``host:pid:random``.
        started_at, heartbeat_at: UTC.
        alive: the heartbeat is within the lease TTL.
        folders: names of the folders it holds by lease.
    """

    name: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    alive: bool
    folders: tuple[str, ...]


def list_workers(
    db: Database, now: datetime, *, ttl: float = LEASE_TTL_SECONDS
) -> list[WorkerInfo]:
    """The registered workers and the folders each holds (empty on SQLite)."""
    if not _holder_key(db):
        return []
    with db.read_session() as s:
        held: dict[str, list[str]] = {}
        for name, holder, until in s.execute(
            select(Folder.name, Folder.lease_worker, Folder.lease_until).where(
                Folder.lease_worker != ""
            )
        ):
            if until is not None and until > now:
                held.setdefault(holder, []).append(name)
        return [
            WorkerInfo(
                name=w.name,
                host=w.host,
                pid=w.pid,
                started_at=w.started_at,
                heartbeat_at=w.heartbeat_at,
                alive=(now - w.heartbeat_at).total_seconds() < ttl,
                folders=tuple(sorted(held.get(w.name, ()))),
            )
            for w in s.scalars(select(Worker).order_by(Worker.started_at, Worker.id))
        ]


@contextmanager
def sqlite_daemon_lock(db: Database) -> Iterator[None]:
    """Hold the one-daemon lock of an SQLite database for the block (no-op elsewhere).

    The lock is ``flock`` on ``<database>.daemon.lock`` beside the file: the
    kernel drops it when the process dies, so a crash never leaves it stale.

    Raises:
        UserError: another ``triage run`` holds it (the message names its pid and
            points to PostgreSQL for several workers).
    """
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    path = Path(f"{url.database}.daemon.lock")
    handle = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            other = handle.read().strip() or "another process"
            raise UserError(
                f"another `triage run` ({other}) is already using {url.database}: SQLite"
                " takes one daemon per database; stop it first, or move to PostgreSQL"
                " (database.url = postgresql+psycopg://...) to run several workers"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        with suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


class LeaseKeeper:
    """Runs the heartbeat in a thread and tells each folder's runner when to let go.

    Used by :class:`~triage.services.intake.Poller`: ``run_folder`` loops "take the
    lease, watch until told to stop, release"; ``keep`` renews leases every
    ``renew`` seconds and sets a folder's stop event when its lease was lost or
    this worker holds more than its fair share.
    """

    def __init__(
        self, leases: WorkerLeases, folders: int, *, renew: float = LEASE_RENEW_SECONDS
    ) -> None:
        self.leases = leases
        self.folders = folders
        self.renew = renew
        self.live = 1
        self._running: dict[int, threading.Event] = {}
        self._order: list[int] = []
        self._lock = threading.Lock()

    def may_take(self) -> bool:
        """Whether this worker may take one more folder now."""
        with self._lock:
            return len(self._running) < self.leases.share(self.folders, self.live)

    def started(self, folder_id: int, stop: threading.Event) -> None:
        """A folder's watcher is running under a lease; ``stop`` ends it."""
        with self._lock:
            self._running[folder_id] = stop
            self._order.append(folder_id)

    def finished(self, folder_id: int) -> None:
        """The watcher of a folder returned."""
        with self._lock:
            self._running.pop(folder_id, None)
            if folder_id in self._order:
                self._order.remove(folder_id)

    def beat(self) -> None:
        """One heartbeat: renew, count live workers, stop lost and surplus folders."""
        held, self.live = self.leases.heartbeat()
        share = self.leases.share(self.folders, self.live)
        with self._lock:
            for fid, event in self._running.items():
                if fid not in held and not event.is_set():
                    log.warning("folder_lease_lost", folder_id=fid, worker=self.leases.name)
                    event.set()
            active = [fid for fid in self._order if not self._running[fid].is_set()]
            for fid in active[share:]:
                log.info(
                    "folder_lease_handed_over",
                    folder_id=fid,
                    worker=self.leases.name,
                    live_workers=self.live,
                )
                self._running[fid].set()

    def keep(self, stop: threading.Event) -> None:
        """Heartbeat until ``stop``; never raises (a failed beat is logged and retried)."""
        while not stop.wait(self.renew):
            try:
                self.beat()
            except StoreError as exc:
                log.warning("worker_heartbeat_failed", worker=self.leases.name, error=str(exc))
        with self._lock:
            for event in self._running.values():
                event.set()
