"""A ticket as readable text (``triage show``).

Sections: the header (reference, subject, queue, priority, status, assignee,
client), deadlines in business time, the routing explanation, escalations, the
messages newest first (quoted history folded unless asked for), and the audit
trail. Times are shown in the business's time zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from triage.refs import format_ref
from triage.sla.calendar import BusinessCalendar
from triage.sla.deadlines import SlaKind, SlaPolicy
from triage.sla.humanize import describe_due
from triage.store.models import Escalation, Message, RoutingDecision, Ticket, TicketEvent
from triage.tickets.deadlines import earliest_due
from triage.tickets.stored import addresses

__all__ = ["render_ticket"]


def _local(calendar: BusinessCalendar, t: datetime | None) -> str:
    if t is None:
        return "-"
    return t.astimezone(calendar.zone).strftime("%a %Y-%m-%d %H:%M %Z")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _attachment(item: Any) -> str:
    if isinstance(item, dict):
        name = item.get("filename") or "(no name)"
        kind = item.get("content_type") or "?"
        size = item.get("size")
        return f"{name} ({kind}, {_size(int(size))})" if size is not None else f"{name} ({kind})"
    if isinstance(item, list | tuple) and item:
        return " ".join(str(part) for part in item[:3])
    return str(item)


def _indent(text: str, prefix: str = "    ") -> list[str]:
    return [f"{prefix}{line}".rstrip() for line in text.strip("\n").splitlines()] or [prefix]


def _deadline_lines(ticket: Ticket, policy: SlaPolicy, now: datetime) -> list[str]:
    cal = policy.calendar
    running = earliest_due(ticket)
    paused = ticket.status == "waiting"
    stopped = ticket.status in ("solved", "closed")
    out = ["Deadlines (business time):"]

    def state(due: datetime | None, done_at: datetime | None) -> str:
        if due is None:
            return "-"
        if done_at is not None:
            late = " (late)" if done_at > due else ""
            return f"due {_local(cal, due)}; met {_local(cal, done_at)}{late}"
        if paused:
            return f"due {_local(cal, due)}; paused while waiting on the client"
        if stopped:
            return f"due {_local(cal, due)}; not met before the ticket was {ticket.status}"
        return f"due {_local(cal, due)}; {describe_due(cal, due, now)}"

    out.append(f"  first response  {state(ticket.first_response_due, ticket.first_response_at)}")
    if ticket.next_response_due is not None:
        out.append(f"  next response   {state(ticket.next_response_due, None)}")
    resolution_done = ticket.solved_at if ticket.status in ("solved", "closed") else None
    out.append(f"  resolution      {state(ticket.resolution_due, resolution_done)}")
    if running is not None and not paused:
        kind, due = running
        label = SlaKind(kind).label
        out.append(f"  next deadline   {label}, {describe_due(cal, due, now)}")
    return out


def _routing_lines(session: Session, ticket: Ticket, message_ids: list[int]) -> list[str]:
    conditions = [RoutingDecision.ticket_id == ticket.id]
    if message_ids:
        conditions.append(RoutingDecision.message_id.in_(message_ids))
    decisions = session.scalars(
        select(RoutingDecision).where(or_(*conditions)).order_by(RoutingDecision.id)
    ).all()
    out = ["Routing:"]
    if not decisions:
        out.append(f"  decided by {ticket.decided_by} (no routing record stored)")
        return out
    for d in decisions:
        confidence = f", confidence {d.confidence:.2f}" if d.confidence is not None else ""
        model = f", model {d.model_version}" if d.model_version else ""
        out.append(f"  {d.queue} / {d.priority}: decided by {d.decided_by}{confidence}{model}")
        if d.rules_matched:
            out.append(f"    rules matched: {', '.join(str(r) for r in d.rules_matched)}")
        out.extend(f"    {line}" for line in d.explanation or ())
        if d.probabilities:
            top = ", ".join(
                f"{p[0]} {float(p[1]):.2f}"
                for p in d.probabilities[:3]
                if isinstance(p, list | tuple) and len(p) == 2
            )
            if top:
                out.append(f"    classes: {top}")
        if d.escalate:
            out.append(f"    escalated: {'; '.join(str(r) for r in d.escalate)}")
        if d.ack:
            out.append(f"    no acknowledgment: {d.ack}")
    return out


def _message_lines(message: Message, calendar: BusinessCalendar, *, quoted: bool) -> list[str]:
    arrow = "from" if message.direction == "in" else "sent"
    who = f"{message.from_name} <{message.from_addr}>" if message.from_name else message.from_addr
    to = ", ".join(str(a) for a in addresses(message.to_addrs))
    tag = "" if message.kind == "normal" else f" [{message.kind}]"
    out = [f"--- {_local(calendar, message.received_at)}  {arrow} {who or '(unknown)'}{tag}"]
    if message.direction == "out" and to:
        out.append(f"    To: {to}")
    out.append(f"    Subject: {message.subject}")
    if message.parse_error:
        out.append(f"    (parse problem: {message.parse_error})")
    out.append("")
    body = message.body_text.strip()
    out.extend(_indent(body) if body else ["    (no text)"])
    if message.quoted_text.strip():
        if quoted:
            out.append("")
            out.extend(_indent(message.quoted_text, "    > "))
        else:
            n = len(message.quoted_text.strip().splitlines())
            out.append(f"    [quoted history: {n} lines folded; --quoted shows it]")
    if message.attachments:
        out.append("    Attachments:")
        out.extend(f"      - {_attachment(a)}" for a in message.attachments)
    if message.inline_parts:
        out.append("    Inline in the text (not attachments):")
        out.extend(f"      - {_attachment(a)}" for a in message.inline_parts)
    out.append("")
    return out


def _event_line(event: TicketEvent, calendar: BusinessCalendar) -> str:
    detail = ", ".join(
        f"{k}={v}" for k, v in (event.detail or {}).items() if v not in (None, "", [], {})
    )
    return f"  {_local(calendar, event.at)}  {event.actor}: {event.action}" + (
        f" ({detail})" if detail else ""
    )


def render_ticket(
    session: Session,
    ticket: Ticket,
    policy: SlaPolicy,
    now: datetime,
    *,
    quoted: bool = False,
) -> str:
    """The whole ticket as plain text; ``quoted`` unfolds quoted history."""
    cal = policy.calendar
    client = (
        f"{ticket.client_name} <{ticket.client_addr}>"
        if ticket.client_name
        else (ticket.client_addr)
    )
    lines = [
        f"{format_ref(ticket.ref or 0)}  {ticket.subject}",
        (
            f"  queue {ticket.queue} · priority {ticket.priority} · status {ticket.status}"
            f" · assignee {ticket.assignee or '-'} · decided by {ticket.decided_by}"
        ),
        f"  client {client}",
        f"  opened {_local(cal, ticket.opened_at)}",
    ]
    if ticket.tags:
        lines.append(f"  tags {', '.join(str(t) for t in ticket.tags)}")
    lines.append("")
    lines.extend(_deadline_lines(ticket, policy, now))
    messages = session.scalars(
        select(Message)
        .where(Message.ticket_id == ticket.id)
        .order_by(Message.received_at.desc(), Message.id.desc())
    ).all()
    lines.append("")
    lines.extend(_routing_lines(session, ticket, [m.id for m in messages]))
    escalations = session.scalars(
        select(Escalation).where(Escalation.ticket_id == ticket.id).order_by(Escalation.id)
    ).all()
    if escalations:
        lines.append("")
        lines.append("Escalations:")
        lines.extend(
            f"  {_local(cal, e.created_at)}  {e.kind} (cycle {e.cycle}): {e.reason}"
            for e in escalations
        )
    lines.append("")
    lines.append(f"Messages ({len(messages)}, newest first):")
    for message in messages:
        lines.extend(_message_lines(message, cal, quoted=quoted))
    events = session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
    ).all()
    lines.append("Audit trail:")
    lines.extend(_event_line(e, cal) for e in events)
    return "\n".join(lines)
