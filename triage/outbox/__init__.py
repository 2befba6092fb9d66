"""The outbox: composing acknowledgments and escalation mail, and queueing it.

Pure parts (no I/O): :mod:`.policy` (whether to acknowledge), :mod:`.compose`
and :mod:`.headers` (the mail itself), :mod:`.dates`, :mod:`.templates`
(Jinja2, shipped English and Hungarian). Database part, always in the caller's
transaction: :mod:`.enqueue`. Delivery is :mod:`triage.services.dispatch`;
escalation mail is :mod:`triage.escalation`.

The intake pipeline, inside its per-message transaction::

    decision = decide_ack(session, message, settings, now=now, follow_up=..., rule_no_ack=...)
    if decision.send:
        mail = compose_ack(message, ticket_ref=ticket.ref, queue=ticket.queue,
                           due_at=ticket.first_response_due, settings=settings, now=now)
        enqueue(session, mail, kind="ack", now=now, dedupe_key=f"ack:{row.id}",
                ticket_id=ticket.id, cause_message_id=row.id)
"""

from triage.outbox.compose import ComposedMail, build_mail, compose_ack
from triage.outbox.enqueue import Enqueued, decide_ack, enqueue, recent_ack_count
from triage.outbox.headers import header_safe, reply_subject
from triage.outbox.policy import AckDecision, AckReason, plan_ack
from triage.outbox.status import OutboxSummary, outbox_summary
from triage.outbox.templates import MailTemplates, RenderedText

__all__ = [
    "AckDecision",
    "AckReason",
    "ComposedMail",
    "Enqueued",
    "MailTemplates",
    "OutboxSummary",
    "RenderedText",
    "build_mail",
    "compose_ack",
    "decide_ack",
    "enqueue",
    "header_safe",
    "outbox_summary",
    "plan_ack",
    "recent_ack_count",
    "reply_subject",
]
