"""Mentions: an assistant named with ``@name`` in an internal note is told by mail.

The desk records one :class:`~triage.store.models.Mention` row per name a note
mentions (:meth:`triage.desk.TicketDesk.note`); :func:`mail_mentions` turns each
un-notified row into one mail to that assistant's address in ``[team.assistants]``
and sets its ``notified_at`` in the same transaction, so nobody is told twice or
never. The mail says who wrote, on which ticket, the note itself, and the ticket's
address on the web page. An assistant without an address is marked notified without
mail and logged (``mention_not_mailed``): the note is on the ticket for them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.escalation.mail import compose_notice
from triage.logs import get_logger
from triage.outbox.enqueue import enqueue
from triage.outbox.headers import header_safe, parse_mailbox
from triage.outbox.templates import MailTemplates
from triage.store.models import Mention, Ticket, TicketNote, User

__all__ = ["MAX_MENTIONS_PER_PASS", "mail_mentions"]

MAX_MENTIONS_PER_PASS = 500
"""Rows handled per call (the rest wait for the next pass): a bounded transaction."""


def mail_mentions(
    session: Session,
    settings: Settings,
    now: datetime,
    *,
    templates: MailTemplates | None = None,
) -> int:
    """Queue one mail per un-notified mention and mark it notified, in ``session``.

    Runs in the caller's transaction (flushes, never commits): the outbox rows and
    the ``notified_at`` marks commit together. Outbox kind ``mention``, dedupe key
    ``mention:<mentions.id>``. The mail is in the assistant's page language (their
    setting, else ``[web] default_language``), ``Auto-Submitted: auto-generated``
    (RFC 3834 section 5).

    Args:
        session: the caller's session.
        settings: the configuration ([team], [web], [smtp]).
        now: the current time (UTC-aware): notified_at and the Date header.
        templates: the template set (built from settings when None).

    Returns:
        The number of mails queued.

    Raises:
        ConfigError: no [smtp] section, or a template is missing or broken.
    """
    rows = session.execute(
        select(Mention, TicketNote, Ticket)
        .join(TicketNote, TicketNote.id == Mention.note_id)
        .join(Ticket, Ticket.id == Mention.ticket_id)
        .where(Mention.notified_at.is_(None))
        .order_by(Mention.id)
        .limit(MAX_MENTIONS_PER_PASS)
    ).all()
    if not rows:
        return 0
    t = templates if templates is not None else MailTemplates.from_settings(settings)
    names = {m.assistant for m, _, _ in rows}
    found = session.execute(select(User.name, User.language).where(User.name.in_(names)))
    languages: dict[str, str] = {row.name: row.language for row in found}
    queued = 0
    for mention, note, ticket in rows:
        mention.notified_at = now
        _, address = parse_mailbox(settings.team.assistants.get(mention.assistant, ""))
        if not address:
            get_logger("triage.outbox").warning(
                "mention_not_mailed",
                ticket=ticket.ref,
                assistant=mention.assistant,
                reason="no address in [team.assistants]",
            )
            continue
        language = languages.get(mention.assistant) or settings.web.default_language
        variables: dict[str, Any] = {
            "ticket": f"#{ticket.ref}",
            "author": note.author,
            "assistant": mention.assistant,
            "subject": header_safe(ticket.subject or "", limit=200),
            "note": note.body,
            "link": f"{settings.web.origin()}/t/{ticket.ref}",
        }
        mail = compose_notice(
            settings,
            t,
            "mention",
            variables,
            [(mention.assistant, address)],
            kind="mention",
            ref=ticket.ref,
            now=now,
            language=language,
        )
        enqueue(
            session,
            mail,
            kind="mention",
            now=now,
            dedupe_key=f"mention:{mention.id}",
            ticket_id=ticket.id,
        )
        queued += 1
    session.flush()
    return queued
