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

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.escalation.history import history_reason
from triage.logs import get_logger
from triage.refs import format_ref
from triage.sla.calendar import BusinessCalendar
from triage.sla.deadlines import Deadline, SlaPolicy
from triage.sla.humanize import describe_due
from triage.store.models import Escalation, Ticket
from triage.tickets.deadlines import RUNNING_STATUSES, Cycles, cycles, running_deadlines
from triage.tickets.escalations import insert_escalation

__all__ = ["scan"]

log = get_logger(__name__)


def _local(calendar: BusinessCalendar, t: datetime) -> str:
    return t.astimezone(calendar.zone).strftime("%a %Y-%m-%d %H:%M %Z")


def _reason(ticket: Ticket, deadline: Deadline, calendar: BusinessCalendar, now: datetime) -> str:
    ref = format_ref(ticket.ref or 0)
    what = deadline.kind.label
    where = f"{ref} ({ticket.queue}, {ticket.priority}) from {ticket.client_addr}"
    due = _local(calendar, deadline.due)
    return f"{what} {describe_due(calendar, deadline.due, now)} (due {due}): {where}"


def scan(
    session: Session, settings: Settings, calendar: BusinessCalendar, now: datetime
) -> list[Escalation]:
    """Create the warning and breach rows due at ``now`` (aware); return the new ones.

    Safe to run as often as wanted and from several workers at once (on PostgreSQL);
    rows already raised are left alone. Does not commit.
    """
    policy = SlaPolicy(settings, calendar)
    running = Ticket.status.in_(RUNNING_STATUSES)
    tickets = session.scalars(select(Ticket).where(running).order_by(Ticket.id)).all()
    if not tickets:
        return []
    raised = {
        (ticket_id, kind, cycle)
        for ticket_id, kind, cycle in session.execute(
            select(Escalation.ticket_id, Escalation.kind, Escalation.cycle)
            .join(Ticket, Ticket.id == Escalation.ticket_id)
            .where(running)
        )
    }
    by_ticket = cycles(session, [t.id for t in tickets]) if len(tickets) < 5000 else cycles(session)
    created: list[Escalation] = []
    for ticket in tickets:
        try:
            deadlines = list(running_deadlines(ticket, policy, by_ticket.get(ticket.id, Cycles())))
        except ValueError as exc:  # e.g. a target longer than the calendar's working time
            log.error(  # noqa: TRY400 - one line per ticket, not a traceback
                "sla_deadline_failed", ticket=format_ref(ticket.ref or 0), error=str(exc)
            )
            continue
        for deadline in deadlines:
            breach = deadline.kind.value
            if (ticket.id, breach, deadline.cycle) in raised:
                continue
            if deadline.breached(now):
                kind = breach
            elif now >= deadline.warn_at:
                kind = deadline.kind.warning
                if (ticket.id, kind, deadline.cycle) in raised:
                    continue
            else:
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
                row.notified_at = now
                log.info(
                    "sla_breached_before_seen",
                    ticket=format_ref(ticket.ref or 0),
                    queue=ticket.queue,
                    kind=kind,
                    cycle=deadline.cycle,
                    due_at=deadline.due.isoformat(),
                )
                continue
            created.append(row)
            log.info(
                "sla_breached" if kind == breach else "sla_warning_raised",
                ticket=format_ref(ticket.ref or 0),
                queue=ticket.queue,
                kind=kind,
                cycle=deadline.cycle,
                due_at=deadline.due.isoformat(),
            )
    return created
