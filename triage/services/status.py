"""Health of a triage installation, read from the database (``triage status``).

Read-only: the last successful poll per folder (and its last error), the backlog
of tickets awaiting the team's answer, the outbox, open tickets per queue,
breached tickets and the active models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from triage.modelstore import active_model_info
from triage.outbox.status import OutboxSummary, outbox_summary
from triage.store.alerts import read_alerts
from triage.store.backups import BackupState, backup_state
from triage.store.models import Folder, Message, MissingUid, Ticket
from triage.store.tickets import QueueFilter, count_queue

__all__ = ["Alert", "FolderHealth", "Status", "read_status"]

STALE_POLL_SECONDS = 600.0
"""A folder not polled successfully for this long is unhealthy (the B28 alarm: 10 min)."""

STUCK_OUTBOX_SECONDS = 600.0
"""Outgoing mail still pending this long after it was queued is unhealthy (SMTP down,
a wrong SMTP password, no daemon sending)."""


OPEN_STATUSES = ("new", "open", "waiting")


@dataclass(frozen=True)
class Alert:
    """A standing problem a service reported (see :mod:`triage.store.alerts`).

    Attributes:
        name: the part (``smtp``).
        problem: what happened and what to do, one line.
        since: when it started (UTC).
    """

    name: str
    problem: str
    since: datetime


@dataclass(frozen=True)
class FolderHealth:
    """One watched folder: progress and the last successful pass (UTC).

    Attributes:
        missing: UIDs the server lists but has not delivered, still being retried
            (the high-water mark waits below them): unhealthy.
        undelivered: placeholders stored for UIDs never delivered whose ticket is
            not yet solved or closed (someone must read that mail in the mailbox
            itself): unhealthy until then.
    """

    name: str
    uidvalidity: int | None
    last_uid: int
    last_poll_at: datetime | None
    seconds_since_poll: float | None
    stale: bool
    last_error: str
    missing: int = 0
    undelivered: int = 0


@dataclass(frozen=True)
class Status:
    """Everything ``triage status`` shows.

    Attributes:
        now: when it was read (UTC).
        folders: every folder triage has polled.
        awaiting_answer: open tickets whose client waits for the team's answer.
        oldest_awaiting: when the longest-waiting of them arrived (UTC).
        open_by_queue: open (not solved or closed) tickets per queue.
        breached: open tickets past a running deadline.
        outbox: outgoing mail counts (pending, retrying, failed, sent) and the oldest pending.
        models: active model version per target (queue, priority), None when none.
        alerts: standing problems a service reported (``alerts`` table), e.g. the SMTP
            server refused the login and sending has stopped: each is a problem.
        backup: the newest ``triage backup`` run and the newest successful one (None
            when none ran); a failed newest run is a problem.
    """

    now: datetime
    folders: list[FolderHealth]
    awaiting_answer: int
    oldest_awaiting: datetime | None
    open_by_queue: dict[str, int]
    breached: int
    outbox: OutboxSummary
    models: dict[str, str | None] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    backup: BackupState | None = None

    @property
    def outbox_stuck(self) -> bool:
        """Outgoing mail has been pending for more than :data:`STUCK_OUTBOX_SECONDS`."""
        oldest = self.outbox.oldest_pending_at
        return oldest is not None and (self.now - oldest).total_seconds() > STUCK_OUTBOX_SECONDS

    @property
    def problems(self) -> list[str]:
        """Why the installation needs attention, one line each ([] when healthy).

        The one list of reasons: ``triage status`` (exit 1), the ``/health``
        endpoint (503) and the ``triage_healthy`` metric all come from it.
        """
        found = [f"{a.name}: {a.problem}" for a in self.alerts]
        if self.backup is not None and not self.backup.last_ok:
            at = self.backup.last_at.isoformat(timespec="seconds").replace("+00:00", "Z")
            found.append(f"backup: the last backup ({at}) failed: {self.backup.last_error}")
        for f in self.folders:
            if f.stale:
                since = (
                    "never polled"
                    if f.seconds_since_poll is None
                    else f"not polled for {f.seconds_since_poll / 60:.0f} minutes"
                )
                found.append(f"folder {f.name}: {since}")
            if f.last_error:
                found.append(f"folder {f.name}: {f.last_error}")
            if f.missing:
                found.append(
                    f"folder {f.name}: {f.missing} mail listed by the server but not delivered"
                    " yet (retried)"
                )
            if f.undelivered:
                found.append(
                    f"folder {f.name}: {f.undelivered} mail never delivered by the server,"
                    " stored as placeholders whose tickets are still open"
                )
        if self.outbox.failed:
            found.append(f"outbox: {self.outbox.failed} outgoing mail failed")
        if self.outbox_stuck and self.outbox.oldest_pending_at is not None:
            minutes = (self.now - self.outbox.oldest_pending_at).total_seconds() / 60
            error = f" (last error: {self.outbox.last_error})" if self.outbox.last_error else ""
            found.append(f"outbox: mail pending for {minutes:.0f} minutes{error}")
        return found

    @property
    def healthy(self) -> bool:
        """No folder stale, failing or missing mail, no failed outgoing mail, none stuck."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 UTC)."""

        def conv(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat().replace("+00:00", "Z")
            if isinstance(value, list):
                return [conv(v) for v in value]
            if isinstance(value, dict):
                return {k: conv(v) for k, v in value.items()}
            return value

        out: dict[str, Any] = conv(asdict(self))
        out["healthy"] = self.healthy
        out["problems"] = self.problems
        out["outbox_stuck"] = self.outbox_stuck
        return out


def read_status(session: Session, now: datetime, *, watched: Sequence[str] = ()) -> Status:
    """Read the installation's health as of ``now`` (UTC-aware) in ``session``.

    ``watched``: the folders the config says to watch; one never polled is listed
    as stale (unhealthy), so a daemon that never started is noticed.
    """
    folders = []
    missing = dict(
        session.execute(
            select(MissingUid.folder_id, func.count())
            .where(MissingUid.message_id.is_(None))
            .group_by(MissingUid.folder_id)
        ).all()
    )
    undelivered = dict(
        session.execute(
            select(MissingUid.folder_id, func.count())
            .join(Message, Message.id == MissingUid.message_id)
            .outerjoin(Ticket, Ticket.id == Message.ticket_id)
            .where((Ticket.id.is_(None)) | Ticket.status.in_(OPEN_STATUSES))
            .group_by(MissingUid.folder_id)
        ).all()
    )
    for folder in session.scalars(select(Folder).order_by(Folder.name)):
        age = (now - folder.last_poll_at).total_seconds() if folder.last_poll_at else None
        folders.append(
            FolderHealth(
                name=folder.name,
                uidvalidity=folder.uidvalidity,
                last_uid=folder.last_uid,
                last_poll_at=folder.last_poll_at,
                seconds_since_poll=age,
                stale=age is None or age > STALE_POLL_SECONDS,
                last_error=folder.last_error,
                missing=int(missing.get(folder.id, 0)),
                undelivered=int(undelivered.get(folder.id, 0)),
            )
        )
    known = {f.name for f in folders}
    folders.extend(
        FolderHealth(
            name=name,
            uidvalidity=None,
            last_uid=0,
            last_poll_at=None,
            seconds_since_poll=None,
            stale=True,
            last_error="",
        )
        for name in watched
        if name not in known
    )
    awaiting = session.execute(  # ix_tickets_awaiting alone
        select(func.count(), func.min(Ticket.awaiting_since)).where(
            Ticket.status.in_(("new", "open")), Ticket.awaiting_since.is_not(None)
        )
    ).one()
    by_queue = dict(  # in_queue: status new, open or waiting; ix_tickets_tally alone
        session.execute(
            select(Ticket.queue, func.count())
            .where(Ticket.in_queue.is_(True))
            .group_by(Ticket.queue)
            .order_by(Ticket.queue)
        ).all()
    )
    breached = count_queue(session, QueueFilter(), due_before=now)
    models = {}
    for target in ("queue", "priority"):
        info = active_model_info(session, target)
        models[target] = info.version if info else None
    return Status(
        now=now,
        folders=folders,
        awaiting_answer=int(awaiting[0]),
        oldest_awaiting=awaiting[1],
        open_by_queue={str(k): int(v) for k, v in by_queue.items()},
        breached=breached,
        outbox=outbox_summary(session),
        models=models,
        alerts=[Alert(n, p, t) for n, p, t in read_alerts(session)],
        backup=backup_state(session),
    )
