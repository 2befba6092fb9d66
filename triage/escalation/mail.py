"""Escalation and warning mail: from un-notified Escalation rows to outbox mail.

The SLA watch (and rules) write :class:`~triage.store.models.Escalation` rows;
:func:`mail_escalations` turns each un-notified one into mail and sets its
``notified_at`` in the same transaction, so a row is mailed exactly once:

- breaches (``first_response``, ``next_response``, ``resolution``) and rule
  escalations (``rule``) go to ``[owners] addresses`` and nobody else: one mail
  per row, or, with ``[owners] digest = "hourly" | "daily"``, one digest per
  period listing every owner escalation of the periods that have ended;
- warnings (``warning_<target>``) go to the ticket's assignee
  (``[team.assistants]`` maps the name to an address), else (nobody has it, or the
  assignee has no address) to the queue's assistants; never to owners
  (:mod:`triage.escalation.recipients`). A warning for a ticket already solved or closed
  is dropped.

A row nobody can receive (no owners configured; no assistant address) is marked
notified without mail and logged as ``escalation_not_mailed`` (one line per reason,
with the count and the first tickets).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.escalation.notify import NotifyStats, Pending, notify_escalations
from triage.escalation.recipients import owner_recipients, warning_recipients
from triage.logs import get_logger
from triage.outbox.compose import ComposedMail, build_mail, our_mailbox
from triage.outbox.dates import format_business_duration, format_local, to_local
from triage.outbox.enqueue import enqueue
from triage.outbox.headers import header_safe, make_message_id, message_id_domain
from triage.outbox.templates import MailTemplates
from triage.sla.calendar import BusinessCalendar
from triage.store.models import Escalation, Message, Ticket

__all__ = [
    "BREACH_KINDS",
    "EmailNotifier",
    "compose_notice",
    "digest_period_start",
    "mail_escalations",
]


def log() -> Any:
    """The module's logger, bound at each call so it follows the logging configuration.

    (A logger bound once at import keeps the processors of that moment, and misses a
    later configure_logging or structlog.testing.capture_logs.)
    """
    return get_logger("triage.outbox")


BREACH_KINDS = frozenset({"first_response", "next_response", "resolution"})
"""Escalation kinds that are SLA breaches; ``rule`` is an escalation by a rule."""

EXCERPT_LINES = 8
"""Lines of the client's latest message quoted in escalation mail."""

_TARGETS = {
    "en": {
        "first_response": "first response",
        "next_response": "next response",
        "resolution": "resolution",
    },
    "hu": {
        "first_response": "első válasz",
        "next_response": "következő válasz",
        "resolution": "megoldás",
    },
}


def digest_period_start(now: datetime, settings: Settings) -> datetime:
    """The start (UTC) of the digest period ``now`` is in, in calendar.timezone.

    Hourly periods start on the hour; daily ones at ``[owners] digest_time``
    local time. Escalations created before this moment go into the digest.
    """
    local = to_local(now, settings.calendar.timezone)
    if settings.owners.digest == "hourly":
        start = local.replace(minute=0, second=0, microsecond=0)
    else:
        hour, minute = (int(p) for p in settings.owners.digest_time.split(":"))
        start = datetime.combine(local.date(), time(hour, minute), tzinfo=local.tzinfo)
        if start > local:
            start = datetime.combine(
                local.date() - timedelta(days=1), time(hour, minute), tzinfo=local.tzinfo
            )
    return start.astimezone(now.tzinfo)


def _target(kind: str) -> str:
    return kind.removeprefix("warning_") if kind.startswith("warning_") else kind


def _excerpt(session: Session, ticket_id: int) -> list[str]:
    message = session.scalars(
        select(Message)
        .where(Message.ticket_id == ticket_id, Message.direction == "in")
        .order_by(Message.received_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if message is None:
        return []
    lines: list[str] = []
    for raw_line in message.body_text.splitlines():
        line = header_safe(raw_line, limit=200)
        if not line and (not lines or not lines[-1]):
            continue
        lines.append(line)
        if len(lines) >= EXCERPT_LINES:
            break
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _item(  # noqa: PLR0917 - private; the row in hand and its context
    session: Session,
    escalation: Escalation,
    ticket: Ticket,
    settings: Settings,
    calendar: BusinessCalendar,
    now: datetime,
) -> dict[str, Any]:
    """The template variables of one escalation; durations in business time."""
    language = settings.owners.language
    timezone = settings.calendar.timezone
    target = _target(escalation.kind)
    due = escalation.due_at
    client = header_safe(ticket.client_name, limit=200)
    client = f"{client} <{ticket.client_addr}>" if client else ticket.client_addr
    return {
        "ticket": f"#{ticket.ref}" if ticket.ref is not None else f"id {ticket.id}",
        "ref": ticket.ref,
        "queue": ticket.queue,
        "priority": ticket.priority,
        "status": ticket.status,
        "client": client,
        "subject": header_safe(ticket.subject) or "(no subject)",
        "assignee": ticket.assignee or "",
        "kind": "warning" if escalation.kind.startswith("warning_") else escalation.kind,
        "target": target if target in BREACH_KINDS else "",
        "target_text": _TARGETS.get(language, _TARGETS["en"]).get(target, target),
        "due_text": format_local(due, timezone, language) if due else "",
        "overdue_text": (
            format_business_duration(calendar.elapsed(due, now), language)
            if due and now > due
            else ""
        ),
        "remaining_text": (
            format_business_duration(calendar.elapsed(now, due), language)
            if due and due > now
            else ""
        ),
        "reason": header_safe(escalation.reason, limit=500),
        "excerpt": _excerpt(session, ticket.id),
        "cycle": escalation.cycle,
    }


def compose_notice(
    settings: Settings,
    templates: MailTemplates,
    template: str,
    variables: dict[str, Any],
    to: list[tuple[str, str]],
    *,
    kind: str,
    ref: int | None,
    now: datetime,
    language: str | None = None,
) -> ComposedMail:
    """One mail triage writes to the team: ``escalation/<template>.<language>.j2``
    (English when that language has none), ``Auto-Submitted: auto-generated`` (RFC 3834
    section 5), a new Message-ID of kind ``kind`` naming ticket ``ref``.

    Args:
        to: (display name, address) pairs, addresses already checked.
        language: ``hu`` | ``en``; None is ``[owners] language``.

    Raises:
        ConfigError: no [smtp] section, or the template is missing or broken.
    """
    sender = our_mailbox(settings)
    language = language or settings.owners.language
    name = templates.pick([f"escalation/{template}.{language}.j2", f"escalation/{template}.en.j2"])
    rendered = templates.render(name, {"team_name": settings.team.name, **variables})
    domain = message_id_domain(settings.team.message_id_domain, sender[1])
    message_id = make_message_id(domain, kind, ref)
    raw = build_mail(
        message_id=message_id,
        sender=sender,
        to=to,
        subject=rendered.subject,
        body=rendered.body,
        now=now,
        auto_submitted="auto-generated",
    )
    return ComposedMail(
        message_id=message_id,
        mail_from=sender[1],
        rcpt_to=tuple(addr for _, addr in to),
        raw=raw,
        subject=header_safe(rendered.subject),
        template=name,
    )


def mail_escalations(
    session: Session,
    settings: Settings,
    now: datetime,
    *,
    templates: MailTemplates | None = None,
    calendar: BusinessCalendar | None = None,
) -> NotifyStats:
    """Queue mail for every un-notified escalation and set its notified_at, in ``session``
    (:func:`~triage.escalation.notify.notify_escalations` with an :class:`EmailNotifier`).

    Raises:
        ConfigError: no [smtp] section, or a template is missing or broken.
    """
    notifier = EmailNotifier(settings, templates=templates, calendar=calendar)
    return notify_escalations(session, notifier, now)


class EmailNotifier:
    """The e-mail :class:`~triage.escalation.notify.Notifier`: escalation mail via the outbox.

    Args:
        settings: the configuration ([owners], [team], [calendar], [smtp]).
        templates: the template set (built from settings when None).
        calendar: the business calendar for overdue and remaining times (built from
            ``settings.calendar`` when None).
    """

    name = "email"

    def __init__(
        self,
        settings: Settings,
        *,
        templates: MailTemplates | None = None,
        calendar: BusinessCalendar | None = None,
    ) -> None:
        self.settings = settings
        self.templates = templates
        self.calendar = calendar or BusinessCalendar.from_settings(settings.calendar)

    def notify(self, session: Session, pending: Sequence[Pending], now: datetime) -> NotifyStats:
        """Queue mail for ``pending`` and set each row's notified_at, in ``session``.

        Runs in the caller's transaction (flushes, never commits): the outbox rows
        and the notified_at marks commit together, so no escalation is mailed twice
        or lost. Outbox kinds: ``escalation`` (dedupe ``escalation:<id>``),
        ``warning`` (``warning:<id>``), ``digest`` (``digest:<first escalation id>``).
        Owner escalations a digest holds stay un-notified until their period ends.

        Raises:
            ConfigError: no [smtp] section, or a template is missing or broken.
        """
        settings, calendar = self.settings, self.calendar
        if self.templates is None:
            self.templates = MailTemplates.from_settings(settings)
        t = self.templates
        owners = owner_recipients(settings)
        digest = settings.owners.digest != "off"
        period_start = digest_period_start(now, settings) if digest else now
        rows = [(p.escalation, p.ticket) for p in pending]
        mailed = skipped = 0
        outbox_ids: list[int] = []
        batch: list[tuple[Escalation, Ticket]] = []
        unmailed: dict[str, list[int | None]] = {}
        for escalation, ticket in rows:
            is_warning = escalation.kind.startswith("warning")
            if is_warning:
                to = warning_recipients(settings, assignee=ticket.assignee, queue=ticket.queue)
                reason = "no assignee or queue assistant address in [team.assistants]"
                if ticket.status in {"solved", "closed"}:
                    to, reason = [], f"ticket is {ticket.status}"
            else:
                to, reason = owners, "no [owners] addresses"
            if not to:
                escalation.notified_at = now
                skipped += 1
                unmailed.setdefault(reason, []).append(ticket.ref)
                continue
            if digest and not is_warning:
                if escalation.created_at < period_start:
                    batch.append((escalation, ticket))
                continue
            item = _item(session, escalation, ticket, settings, calendar, now)
            outbox_kind = "warning" if is_warning else "escalation"
            mail = compose_notice(
                settings,
                t,
                "warning" if is_warning else "breach",
                {"item": item},
                to,
                kind=outbox_kind,
                ref=ticket.ref,
                now=now,
            )
            queued = enqueue(
                session,
                mail,
                kind=outbox_kind,
                now=now,
                dedupe_key=f"{outbox_kind}:{escalation.id}",
                ticket_id=ticket.id,
            )
            escalation.notified_at = now
            mailed += 1
            outbox_ids.append(queued.row.id)
            log().info(
                "escalation_mailed",
                ticket=ticket.ref,
                kind=escalation.kind,
                escalation=escalation.id,
                outbox=queued.row.id,
                message_id=queued.row.message_id,
            )
        for reason, refs in unmailed.items():  # one line per reason, not one per row
            log().warning(
                "escalation_not_mailed", reason=reason, count=len(refs), tickets=refs[:20]
            )
        if batch:
            items = [_item(session, e, tk, settings, calendar, now) for e, tk in batch]
            period_text = format_local(
                period_start, settings.calendar.timezone, settings.owners.language
            )
            mail = compose_notice(
                settings,
                t,
                "digest",
                {"items": items, "period_text": period_text},
                owners,
                kind="digest",
                ref=None,
                now=now,
            )
            queued = enqueue(
                session, mail, kind="digest", now=now, dedupe_key=f"digest:{batch[0][0].id}"
            )
            for escalation, _ticket in batch:
                escalation.notified_at = now
            outbox_ids.append(queued.row.id)
            log().info(
                "escalation_digest_mailed",
                escalations=len(batch),
                outbox=queued.row.id,
                message_id=queued.row.message_id,
            )
        session.flush()
        return NotifyStats(
            mailed=mailed, digested=len(batch), skipped=skipped, outbox_ids=tuple(outbox_ids)
        )
