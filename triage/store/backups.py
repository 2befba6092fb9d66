"""The record of ``triage backup`` runs (``backup_runs``), read by ``triage status``.

Each run, successful or not, adds one row (the newest :data:`KEEP_RUNS` are kept).
:func:`backup_state` gives the newest run and the newest successful one, which
:class:`~triage.services.status.Status` shows (a failed newest run is a problem)
and ``/metrics`` exports. Each function runs in the caller's session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from triage.store.models import BackupRun

__all__ = ["KEEP_RUNS", "BackupState", "backup_state", "record_backup_run"]

KEEP_RUNS = 100
"""Rows kept in ``backup_runs`` (older ones are deleted when a run is recorded)."""
MAX_ERROR = 2000
"""Characters of an error kept."""


@dataclass(frozen=True)
class BackupState:
    """The newest backup run and the newest successful one.

    Attributes:
        last_at: when the newest run finished or failed (UTC).
        last_ok: whether it worked.
        last_error: why it failed ("" when it worked).
        last_archive: its archive ("" when it failed).
        last_ok_at: when the newest successful run finished (UTC), None if none did.
    """

    last_at: datetime
    last_ok: bool
    last_error: str
    last_archive: str
    last_ok_at: datetime | None


def record_backup_run(
    session: Session, *, ok: bool, at: datetime, archive: str = "", error: str = ""
) -> None:
    """Add one run (``at`` UTC-aware) and drop all but the newest :data:`KEEP_RUNS`."""
    session.add(BackupRun(at=at, ok=ok, archive=archive, error=" ".join(error.split())[:MAX_ERROR]))
    session.flush()
    cutoff = session.scalar(
        select(BackupRun.id).order_by(BackupRun.id.desc()).offset(KEEP_RUNS).limit(1)
    )
    if cutoff is not None:
        session.execute(delete(BackupRun).where(BackupRun.id <= cutoff))


def backup_state(session: Session) -> BackupState | None:
    """The newest run and the newest successful one; None when no backup ever ran."""
    last = session.scalars(select(BackupRun).order_by(BackupRun.id.desc()).limit(1)).first()
    if last is None:
        return None
    last_ok_at = (
        last.at
        if last.ok
        else session.scalar(
            select(BackupRun.at)
            .where(BackupRun.ok.is_(True))
            .order_by(BackupRun.id.desc())
            .limit(1)
        )
    )
    return BackupState(last.at, last.ok, last.error, last.archive, last_ok_at)
