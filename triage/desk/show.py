"""Building the frozen :class:`~triage.desk.values.TicketView` of a stored ticket.

Reads inside the caller's session (a handful of indexed queries: messages,
routing decisions, escalations, notes, audit rows of this one ticket) and turns
the rows into values; deadlines are explained in business time with the
business's calendar.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy.orm import Session

from triage.desk.values import (
    AttachmentView,
    DeadlineState,
    DeadlineView,
    EscalationView,
    EventView,
    MessageView,
    NoteView,
    RoutingView,
    TicketView,
)
from triage.domain import Address, TicketStatus
from triage.sla.calendar import BusinessCalendar
from triage.sla.deadlines import SlaKind, SlaPolicy
from triage.sla.humanize import business_seconds_left, describe_left
from triage.store.models import (
    Escalation,
    Message,
    RoutingDecision,
    Ticket,
    TicketEvent,
    TicketNote,
)
from triage.store.tickets import (
    ticket_decisions,
    ticket_escalations,
    ticket_events,
    ticket_messages,
    ticket_notes,
)
from triage.tickets.deadlines import earliest_due
from triage.tickets.stored import addresses

__all__ = ["event_view", "local_time", "ticket_view"]

_STOPPED = (TicketStatus.SOLVED.value, TicketStatus.CLOSED.value)


def local_time(calendar: BusinessCalendar, t: datetime | None) -> str:
    """``t`` on the business's clock, ``Mon 2026-03-09 14:00 CET`` ("-" for None)."""
    if t is None:
        return "-"
    return t.astimezone(calendar.zone).strftime("%a %Y-%m-%d %H:%M %Z")


def _deadline(  # noqa: PLR0917 - private; a deadline's facts in reading order
    kind: SlaKind,
    due: datetime,
    done_at: datetime | None,
    ticket: Ticket,
    calendar: BusinessCalendar,
    now: datetime,
) -> DeadlineView:
    local = local_time(calendar, due)
    seconds: float | None = None
    if done_at is not None:
        state = DeadlineState.LATE if done_at > due else DeadlineState.MET
        late = " (late)" if state is DeadlineState.LATE else ""
        text = f"due {local}; met {local_time(calendar, done_at)}{late}"
    elif ticket.status == TicketStatus.WAITING.value:
        state = DeadlineState.PAUSED
        text = f"due {local}; paused while waiting on the client"
    elif ticket.status in _STOPPED:
        state = DeadlineState.STOPPED
        text = f"due {local}; not met before the ticket was {ticket.status}"
    else:
        state = DeadlineState.RUNNING
        seconds = business_seconds_left(calendar, due, now)
        text = f"due {local}; {describe_left(abs(seconds), overdue=now > due)}"
    return DeadlineView(
        kind=kind,
        due_at=due,
        state=state,
        seconds=seconds,
        overdue=state is DeadlineState.RUNNING and now > due,
        done_at=done_at,
        local_due=local,
        text=text,
    )


def _deadlines(
    ticket: Ticket, calendar: BusinessCalendar, now: datetime
) -> tuple[tuple[DeadlineView, ...], DeadlineView | None]:
    out: list[DeadlineView] = []
    if ticket.first_response_due is not None:
        out.append(
            _deadline(
                SlaKind.FIRST_RESPONSE,
                ticket.first_response_due,
                ticket.first_response_at,
                ticket,
                calendar,
                now,
            )
        )
    if ticket.next_response_due is not None:
        out.append(
            _deadline(SlaKind.NEXT_RESPONSE, ticket.next_response_due, None, ticket, calendar, now)
        )
    if ticket.resolution_due is not None:
        solved = ticket.solved_at if ticket.status in _STOPPED else None
        out.append(
            _deadline(SlaKind.RESOLUTION, ticket.resolution_due, solved, ticket, calendar, now)
        )
    running = earliest_due(ticket)
    following = None
    if running is not None:
        kind, due = running
        following = next(
            (d for d in out if d.kind is kind and d.due_at == due),
            _deadline(kind, due, None, ticket, calendar, now),
        )
    return tuple(out), following


def _attachments(items: Iterable[Any], *, inline: bool = False) -> tuple[AttachmentView, ...]:
    out = []
    for n, item in enumerate(items or ()):
        if isinstance(item, dict):
            size = item.get("size")
            disposition = str(item.get("disposition") or "").lower()
            content_id = str(item.get("content_id") or "").strip().strip("<>")
            out.append(
                AttachmentView(
                    index=n,
                    filename=str(item.get("filename") or ""),
                    content_type=str(item.get("content_type") or ""),
                    size=int(size) if isinstance(size, int | float) else None,
                    inline=inline or (disposition == "inline" and bool(content_id)),
                    content_id=content_id,
                )
            )
        else:
            out.append(AttachmentView(index=n, filename=str(item), content_type="", size=None))
    return tuple(out)


def _message(m: Message) -> MessageView:
    report = m.delivery_report if isinstance(m.delivery_report, dict) else {}
    return MessageView(
        id=m.id,
        direction=m.direction,
        source=m.source,
        kind=m.kind,
        sender=Address(name=m.from_name, addr=m.from_addr),
        to=tuple(addresses(m.to_addrs)),
        cc=tuple(addresses(m.cc_addrs)),
        subject=m.subject,
        received_at=m.received_at,
        body=m.body_text,
        quoted=m.quoted_text,
        signature=m.signature,
        attachments=_attachments(m.attachments),
        inline_parts=_attachments(m.inline_parts, inline=True),
        language=m.language,
        parse_error=m.parse_error,
        defects=tuple(str(d) for d in m.defects or ()),
        delivery_status=str(report.get("status") or ""),
        failed_recipients=tuple(str(a) for a in report.get("failed_recipients") or ()),
        has_html=m.has_html,
    )


def _pairs(items: Iterable[Any]) -> tuple[tuple[str, float], ...]:
    return tuple(
        (str(p[0]), float(p[1])) for p in items or () if isinstance(p, list | tuple) and len(p) == 2
    )


def _routing(d: RoutingDecision) -> RoutingView:
    return RoutingView(
        message_id=d.message_id,
        queue=d.queue,
        priority=d.priority,
        decided_by=d.decided_by,
        confidence=d.confidence,
        model_version=d.model_version,
        rules_matched=tuple(str(r) for r in d.rules_matched or ()),
        probabilities=_pairs(d.probabilities),
        explanation=tuple(str(e) for e in d.explanation or ()),
        tags=tuple(str(t) for t in d.tags or ()),
        escalate=tuple(str(e) for e in d.escalate or ()),
        acknowledged=not d.ack,
        ack_reason=d.ack,
        ack_template=d.ack_template,
        assignee=d.assignee,
    )


def _escalation(e: Escalation) -> EscalationView:
    return EscalationView(
        kind=e.kind,
        cycle=e.cycle,
        reason=e.reason,
        due_at=e.due_at,
        created_at=e.created_at,
        notified_at=e.notified_at,
    )


def _note(n: TicketNote) -> NoteView:
    return NoteView(
        id=n.id,
        author=n.author,
        body=n.body,
        mentions=tuple(str(m) for m in n.mentions or ()),
        created_at=n.created_at,
    )


def _frozen(detail: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(detail or {}))


def event_view(e: TicketEvent) -> EventView:
    """One audit row as a value."""
    return EventView(
        id=e.id,
        at=e.at,
        actor=e.actor,
        action=e.action,
        version=e.version,
        detail=_frozen(e.detail),
    )


def ticket_view(session: Session, ticket: Ticket, policy: SlaPolicy, now: datetime) -> TicketView:
    """The whole of ``ticket`` as a frozen value, deadlines explained at ``now`` (aware)."""
    calendar = policy.calendar
    messages: Sequence[Message] = ticket_messages(session, ticket.id)
    deadlines, following = _deadlines(ticket, calendar, now)
    return TicketView(
        id=ticket.id,
        ref=ticket.ref or 0,
        subject=ticket.subject,
        queue=ticket.queue,
        priority=ticket.priority,
        status=ticket.status,
        assignee=ticket.assignee,
        client=Address(name=ticket.client_name, addr=ticket.client_addr),
        decided_by=ticket.decided_by,
        tags=tuple(str(t) for t in ticket.tags or ()),
        opened_at=ticket.opened_at,
        updated_at=ticket.updated_at,
        wait_until=ticket.wait_until,
        version=ticket.version,
        deadlines=deadlines,
        next_deadline=following,
        routing=tuple(
            _routing(d) for d in ticket_decisions(session, ticket.id, [m.id for m in messages])
        ),
        escalations=tuple(_escalation(e) for e in ticket_escalations(session, ticket.id)),
        messages=tuple(_message(m) for m in messages),
        notes=tuple(_note(n) for n in ticket_notes(session, ticket.id)),
        events=tuple(event_view(e) for e in ticket_events(session, ticket.id)),
    )
