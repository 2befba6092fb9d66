"""SLA watch: warn before deadlines pass, escalate when they do.

:func:`scan` looks at every ticket whose SLA clock runs (``new`` and ``open``;
``waiting`` tickets are paused and never breach) and creates escalation rows:

- ``warning_<target>`` once the target's ``warn_at`` share of business time has
  elapsed (who is told: :func:`triage.escalation.warning_recipients`);
- ``<target>`` (``first_response``, ``next_response``, ``resolution``) once it is
  past due (for the owners).

Exactly one row per (ticket, kind, cycle), whatever the number of scans or
workers: the unique constraint and ``INSERT ... ON CONFLICT DO NOTHING`` see to it.
A ticket first seen already past due gets the breach only, not a late warning;
and when that deadline had passed before the ticket was even created (old mail
found at the first start against a full inbox, ``triage import --open-tickets``
of history), the breach row is stored already marked notified: the queue shows
it as breached, the owners get no mail for what triage never had a chance to do.
The outbox turns rows with ``notified_at IS NULL`` into mail; this module only
creates rows and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.escalation.history import history_reason
from triage.logs import get_logger
from triage.refs import format_ref
from triage.sla.calendar import BusinessCalendar
from triage.sla.deadlines import Deadline, SlaPolicy
from triage.sla.humanize import describe_due
from triage.store.models import NO_DUE, Escalation, Ticket
from triage.tickets.deadlines import RUNNING_STATUSES, Cycles, cycles, running_deadlines
from triage.tickets.escalations import insert_escalation

__all__ = ["SCAN_BATCH", "ScanBatch", "scan", "scan_batch"]

log = get_logger(__name__)


def _local(calendar: BusinessCalendar, t: datetime) -> str:
    return t.astimezone(calendar.zone).strftime("%a %Y-%m-%d %H:%M %Z")


def _reason(ticket: Ticket, deadline: Deadline, calendar: BusinessCalendar, now: datetime) -> str:
    ref = format_ref(ticket.ref or 0)
    what = deadline.kind.label
    where = f"{ref} ({ticket.queue}, {ticket.priority}) from {ticket.client_addr}"
    due = _local(calendar, deadline.due)
    return f"{what} {describe_due(calendar, deadline.due, now)} (due {due}): {where}"


SCAN_BATCH = 500
"""Tickets read, decided and committed together by one :func:`scan_batch`."""

RETRY_FAILED = timedelta(hours=1)
"""When a ticket whose deadlines cannot be computed is looked at again."""


@dataclass(frozen=True, slots=True)
class ScanBatch:
    """What one :func:`scan_batch` did.

    Attributes:
        created: the new escalation rows to mail (not those recorded as already notified).
        looked_at: tickets read (running or not).
        before_seen: breaches recorded as notified: past due before triage had the ticket.
        failed: tickets whose deadlines could not be computed (retried after
            :data:`RETRY_FAILED`).
        after: where the next batch starts (``(sla_check_at, id)`` of the last ticket
            read); None when this batch was the last of the pass.
    """

    created: list[Escalation] = field(default_factory=list)
    looked_at: int = 0
    before_seen: int = 0
    failed: int = 0
    after: tuple[datetime, int] | None = None


def scan(
    session: Session, settings: Settings, calendar: BusinessCalendar, now: datetime
) -> list[Escalation]:
    """Create the warning and breach rows due at ``now`` (aware); return the new ones.

    Every batch in the caller's transaction (for callers with few tickets: the demo,
    tests); the daemon commits each :func:`scan_batch` on its own. Does not commit.
    """
    created: list[Escalation] = []
    after: tuple[datetime, int] | None = None
    while True:
        batch = scan_batch(session, settings, calendar, now, after=after)
        created += batch.created
        if batch.after is None:
            return created
        after = batch.after


def scan_batch(
    session: Session,
    settings: Settings,
    calendar: BusinessCalendar,
    now: datetime,
    *,
    after: tuple[datetime, int] | None = None,
    limit: int = SCAN_BATCH,
) -> ScanBatch:
    """Look at up to ``limit`` tickets due for a look at ``now`` (``sla_check_at <= now``).

    Creates the warning and breach rows due (in ``session``, never committed) and sets
    each ticket's ``sla_check_at`` to the next moment something can fall due: its
    next warning time or deadline, :data:`NO_DUE` once everything was raised or no
    clock runs. A change to a ticket's deadlines sets it back to "now" (the model's
    update hook), so a pass reads only the tickets with something due, through an
    index, however many tickets there are. ``after``: the previous batch's
    :attr:`ScanBatch.after`.

    Safe to run as often as wanted and from several workers at once (on PostgreSQL);
    rows already raised are left alone.
    """
    stmt = (
        select(Ticket)
        .where(Ticket.sla_check_at <= now)
        .order_by(Ticket.sla_check_at, Ticket.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(tuple_(Ticket.sla_check_at, Ticket.id) > tuple_(*after))
    tickets = session.scalars(stmt).all()
    if not tickets:
        return ScanBatch()
    last = (tickets[-1].sla_check_at, tickets[-1].id)
    running = [t for t in tickets if t.status in RUNNING_STATUSES]
    ids = [t.id for t in running]
    raised = (
        {
            (ticket_id, kind, cycle)
            for ticket_id, kind, cycle in session.execute(
                select(Escalation.ticket_id, Escalation.kind, Escalation.cycle).where(
                    Escalation.ticket_id.in_(ids)
                )
            )
        }
        if ids
        else set()
    )
    by_ticket = cycles(session, ids)
    policy = SlaPolicy(settings, calendar)
    created: list[Escalation] = []
    before_seen = failed = 0
    next_check: dict[int, tuple[int, datetime]] = {}
    for ticket in tickets:
        check = NO_DUE
        try:
            deadlines = list(running_deadlines(ticket, policy, by_ticket.get(ticket.id, Cycles())))
        except ValueError as exc:  # e.g. a target longer than the calendar's working time
            log.error(  # noqa: TRY400 - one line per ticket and hour, not a traceback
                "sla_deadline_failed", ticket=format_ref(ticket.ref or 0), error=str(exc)
            )
            failed += 1
            next_check[ticket.id] = (ticket.version, now + RETRY_FAILED)
            continue
        for deadline in deadlines:
            breach = deadline.kind.value
            if (ticket.id, breach, deadline.cycle) in raised:
                continue
            warned = (ticket.id, deadline.kind.warning, deadline.cycle) in raised
            if deadline.breached(now):
                kind = breach
            elif now >= deadline.warn_at:
                check = min(check, deadline.due)
                if warned:
                    continue
                kind = deadline.kind.warning
            else:
                check = min(check, deadline.due if warned else deadline.warn_at)
                continue
            row = insert_escalation(
                session,
                ticket_id=ticket.id,
                kind=kind,
                cycle=deadline.cycle,
                reason=_reason(ticket, deadline, calendar, now),
                due_at=deadline.due,
                now=now,
            )
            if row is None:
                continue
            if history_reason(seen_at=ticket.created_at, due_at=deadline.due):
                # Past due before triage ever saw the ticket (old mail found at the
                # first start, an import of history): recorded, shown as breached,
                # but not mailed to the owners -- nothing was missed while watched.
                # Counted in the pass's summary line, not logged one by one.
                row.notified_at = now
                before_seen += 1
                continue
            created.append(row)
            log.info(  # one line per escalation raised (the metrics count them)
                "ticket_escalated",
                ticket=format_ref(ticket.ref or 0),
                queue=ticket.queue,
                kind=kind,
                cycle=deadline.cycle,
                due_at=deadline.due.isoformat(),
            )
        next_check[ticket.id] = (ticket.version, check)
    # Core, not the ORM: the ticket's version stays (no audit row for bookkeeping), and a
    # ticket changed meanwhile by another transaction (version moved on) keeps "now".
    table = cast("Table", Ticket.__table__)
    session.connection().execute(
        update(table)
        .where(table.c.id == bindparam("p_id"), table.c.version == bindparam("p_version"))
        .values(sla_check_at=bindparam("p_check")),
        [
            {"p_id": ticket_id, "p_version": version, "p_check": check}
            for ticket_id, (version, check) in next_check.items()
        ],
    )
    return ScanBatch(
        created=created,
        looked_at=len(tickets),
        before_seen=before_seen,
        failed=failed,
        after=last if len(tickets) == limit else None,
    )
