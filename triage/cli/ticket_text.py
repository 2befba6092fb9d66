"""A ticket as readable text (``triage show``), rendered from the desk's :class:`TicketView`.

Sections: the header (reference, subject, queue, priority, status, assignee,
client), deadlines in business time, the routing explanation, escalations,
internal notes, the messages newest first (quoted history folded unless asked
for), and the audit trail. Times are shown in the business's time zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from triage.desk import AttachmentView, MessageView, RoutingView, TicketView
from triage.sla.humanize import describe_left

__all__ = ["render_ticket"]


def _local(zone: ZoneInfo, t: datetime | None) -> str:
    if t is None:
        return "-"
    return t.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def _attachment(item: AttachmentView) -> str:
    name = item.filename or "(no name)"
    kind = item.content_type or "?"
    if item.size is not None:
        return f"{name} ({kind}, {item.size_text})"
    return f"{name} ({kind})"


def _indent(text: str, prefix: str = "    ") -> list[str]:
    return [f"{prefix}{line}".rstrip() for line in text.strip("\n").splitlines()] or [prefix]


def _deadline_lines(view: TicketView) -> list[str]:
    by_kind = {d.kind.value: d for d in view.deadlines}
    out = ["Deadlines (business time):"]
    first = by_kind.get("first_response")
    out.append(f"  first response  {first.text if first else '-'}")
    following = by_kind.get("next_response")
    if following is not None:
        out.append(f"  next response   {following.text}")
    resolution = by_kind.get("resolution")
    out.append(f"  resolution      {resolution.text if resolution else '-'}")
    nxt = view.next_deadline
    if nxt is not None and nxt.seconds is not None:
        out.append(
            f"  next deadline   {nxt.label}, {describe_left(abs(nxt.seconds), overdue=nxt.overdue)}"
        )
    return out


def _routing_lines(view: TicketView) -> list[str]:
    out = ["Routing:"]
    if not view.routing:
        out.append(f"  decided by {view.decided_by} (no routing record stored)")
        return out
    for d in view.routing:
        out.extend(_decision_lines(d))
    return out


def _decision_lines(d: RoutingView) -> list[str]:
    confidence = f", confidence {d.confidence:.2f}" if d.confidence is not None else ""
    model = f", model {d.model_version}" if d.model_version else ""
    out = [f"  {d.queue} / {d.priority}: decided by {d.decided_by}{confidence}{model}"]
    if d.rules_matched:
        out.append(f"    rules matched: {', '.join(d.rules_matched)}")
    out.extend(f"    {line}" for line in d.explanation)
    if d.probabilities:
        top = ", ".join(f"{label} {p:.2f}" for label, p in d.probabilities[:3])
        out.append(f"    classes: {top}")
    if d.escalate:
        out.append(f"    escalated: {'; '.join(d.escalate)}")
    if d.ack_reason:
        out.append(f"    no acknowledgment: {d.ack_reason}")
    return out


def _message_lines(message: MessageView, zone: ZoneInfo, *, quoted: bool) -> list[str]:
    arrow = "from" if message.direction == "in" else "sent"
    who = str(message.sender) if message.sender.addr else ""
    to = ", ".join(str(a) for a in message.to)
    tag = "" if message.kind == "normal" else f" [{message.kind}]"
    out = [f"--- {_local(zone, message.received_at)}  {arrow} {who or '(unknown)'}{tag}"]
    if message.direction == "out" and to:
        out.append(f"    To: {to}")
    out.append(f"    Subject: {message.subject}")
    if message.parse_error:
        out.append(f"    (parse problem: {message.parse_error})")
    if message.failed_recipients or message.delivery_status:
        failed = ", ".join(message.failed_recipients) or "(address not given)"
        status = message.delivery_status or "no status code"
        out.append(f"    Delivery failed: {failed} ({status}, RFC 3464)")
    out.extend(f"    (defect: {d})" for d in message.defects)
    out.append("")
    body = message.body.strip()
    out.extend(_indent(body) if body else ["    (no text)"])
    signature = [line.strip() for line in message.signature.strip().splitlines() if line.strip()]
    if signature and set(signature[0]) <= {"-", "_", "=", "*"}:  # the "-- " separator
        signature = signature[1:]
    if signature:  # folded onto one line: who wrote it stays visible, without the noise
        folded = " · ".join(signature)
        cut = folded if len(folded) <= 100 else folded[:99] + "…"
        out.append(f"    -- {cut}  [signature, {len(signature)} lines folded]")
    if message.quoted.strip():
        if quoted:
            out.append("")
            out.extend(_indent(message.quoted, "    > "))
        else:
            n = len(message.quoted.strip().splitlines())
            out.append(f"    [quoted history: {n} lines folded; --quoted shows it]")
    if message.attachments:
        out.append("    Attachments:")
        out.extend(f"      - {_attachment(a)}" for a in message.attachments)
    if message.inline_parts:
        out.append("    Inline in the text (not attachments):")
        out.extend(f"      - {_attachment(a)}" for a in message.inline_parts)
    out.append("")
    return out


def _detail(detail: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items() if v not in (None, "", [], {}))


def render_ticket(view: TicketView, zone: ZoneInfo, *, quoted: bool = False) -> str:
    """The whole ticket as plain text in time zone ``zone``; ``quoted`` unfolds quoted history."""
    lines = [
        f"{view.ref_text}  {view.subject}",
        (
            f"  queue {view.queue} · priority {view.priority} · status {view.status}"
            f" · assignee {view.assignee or '-'} · decided by {view.decided_by}"
        ),
        f"  client {view.client}",
        f"  opened {_local(zone, view.opened_at)}",
    ]
    if view.wait_until is not None:
        lines.append(
            f"  waiting until {_local(zone, view.wait_until)} (or a reply from the client)"
        )
    if view.tags:
        lines.append(f"  tags {', '.join(view.tags)}")
    lines.append("")
    lines.extend(_deadline_lines(view))
    lines.append("")
    lines.extend(_routing_lines(view))
    if view.escalations:
        lines.append("")
        lines.append("Escalations:")
        lines.extend(
            f"  {_local(zone, e.created_at)}  {e.kind} (cycle {e.cycle}): {e.reason}"
            for e in view.escalations
        )
    if view.notes:
        lines.append("")
        lines.append(f"Internal notes ({len(view.notes)}, newest first; never mailed):")
        for note in view.notes:
            lines.append(f"  {_local(zone, note.created_at)}  {note.author}:")
            lines.extend(_indent(note.body))
    lines.append("")
    lines.append(f"Messages ({len(view.messages)}, newest first):")
    for message in view.messages:
        lines.extend(_message_lines(message, zone, quoted=quoted))
    lines.append("Audit trail:")
    lines.extend(
        f"  {_local(zone, e.at)}  {e.actor}: {e.action}"
        + (f" ({_detail(e.detail)})" if _detail(e.detail) else "")
        for e in view.events
    )
    return "\n".join(lines)
