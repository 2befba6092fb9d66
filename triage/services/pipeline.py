"""The routing pipeline: what happens to each stored message inside its transaction.

Called by :class:`~triage.services.intake.Intake` after the message row is added,
in the same transaction as the row and the folder's progress (DESIGN.md: steps
2-4 of one message, its outbox rows and the new last UID commit together):

0. A second copy of a mail already stored (same Message-ID and sender: delivered
   twice, or imported and then fetched) is filed with the first copy's ticket;
   nothing else happens (no new ticket, no acknowledgment).
1. A reply on an existing ticket (In-Reply-To/References to mail we stored or
   sent, else the ``[#ref]`` in the subject) joins it: auto-replies and bounces
   as notes (RFC 3834, RFC 3464; also feedback reports, read receipts,
   notifications, and an auto-responder's answer to our acknowledgment), client
   mail as a follow-up that reopens a waiting or solved ticket. No acknowledgment.
2. Machine mail about nothing we know opens no ticket: a bounce, a feedback report
   (RFC 5965), a read receipt (RFC 8098), a no-reply sender's notification (the
   last only unless a rule sends it to a queue: a bank's payment notice).
3. Anything else is routed (rules, mailing lists, the classifier, the fallback
   queue; :mod:`triage.routing`), opens a ticket with SLA deadlines, is escalated
   at once when a rule says so, and is acknowledged unless the acknowledgment
   policy says no (:mod:`triage.outbox.policy`).

Every message gets a ``routing_decisions`` row with its explanation, including
those that join a ticket or open none.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from classifiers.features import example_from_message
from classifiers.prediction import Prediction
from rules import RuleSet
from rules.model import RuleDecision
from triage.clock import Clock, SystemClock
from triage.config import Settings
from triage.domain import DecidedBy, InboundMessage, MessageKind, ParseStatus
from triage.escalation.history import history_reason
from triage.outbox import compose_ack, decide_ack, enqueue
from triage.outbox.policy import AckReason, responder_sign
from triage.outbox.templates import MailTemplates
from triage.routing import Route, route, routing_threshold
from triage.services.contract import ModelAnswer
from triage.sla.deadlines import SlaPolicy
from triage.store.committed_log import log_after_commit
from triage.store.models import Message, OutboxMail, RoutingDecision, Ticket
from triage.tickets import (
    add_client_message,
    find_ticket_for,
    format_ref,
    open_ticket,
    record_rule_escalation,
    record_sent_reply,
)
from triage.tickets.audit import SERVICE_ACTOR, record_event
from triage.tickets.lifecycle import STORED_ONLY_KINDS
from triage.tickets.matching import ThreadMatch

if TYPE_CHECKING:  # scikit-learn: imported when a model is loaded, not with the pipeline
    from classifiers.cascade import Encoder
    from classifiers.model import TrainedModel

__all__ = ["ModelHolder", "RoutingPipeline", "RulesHolder", "SentPipeline"]

log = structlog.get_logger("triage.pipeline")


@dataclass
class RulesHolder:
    """The rule set in use; the daemon swaps it on SIGHUP (a failed reload keeps the old)."""

    rules: RuleSet | None = None
    paths: tuple[Path, ...] = ()
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def evaluate(self, message: InboundMessage) -> RuleDecision | None:
        """The current rules' decision, None when no rules are loaded."""
        current = self.rules
        return current.evaluate(message) if current is not None else None


@dataclass
class ModelHolder:
    """The active classifier models (queue and, optionally, priority).

    Attributes:
        queue: the queue model, None when none is active or it was refused.
        priority: the priority model, when ``classifier.predict_priority`` is on.
        note: why there is no queue model (shown in routing explanations).
    """

    queue: TrainedModel | None = None
    priority: TrainedModel | None = None
    note: str = ""
    encoder: Encoder | None = None
    """The second stage's sentence encoder, when the queue model has a second stage and
    the optional package is installed (:func:`triage.embeddings.load_encoder`)."""
    second_stage_max_batch: int = 10
    """Batches of more messages than this (a backlog) are answered by the first stage
    alone (``classifier.second_stage_max_batch``)."""

    def predict(self, message: InboundMessage) -> tuple[Prediction | None, Prediction | None]:
        """(queue prediction, priority prediction) for one message; None where no model."""
        return self.predict_many([message])[0]

    def predict_many(
        self, messages: Sequence[InboundMessage]
    ) -> list[tuple[Prediction | None, Prediction | None]]:
        """:meth:`predict` for many messages in one call per model (same order).

        One call for a batch costs about a tenth per message of one call each.
        """
        queue_model, priority_model = self.queue, self.priority
        out: list[tuple[Prediction | None, Prediction | None]] = [(None, None)] * len(messages)
        if queue_model is None and priority_model is None:
            return out
        usable = [i for i, m in enumerate(messages) if m.parse_status != ParseStatus.ERROR]
        if not usable:
            return out
        examples = [example_from_message(messages[i]) for i in usable]
        # A backlog batch skips the second stage: it costs a tenth of a second or more
        # per unsure mail, and the backlog must keep its speed; live mail arrives in
        # small batches and gets it.
        encoder = self.encoder if len(examples) <= self.second_stage_max_batch else None
        queue = queue_model.predict(examples, encoder=encoder) if queue_model is not None else None
        priority = priority_model.predict(examples) if priority_model is not None else None
        for n, i in enumerate(usable):
            out[i] = (
                queue[n] if queue is not None else None,
                priority[n] if priority is not None else None,
            )
        return out


_Answer = tuple[Prediction | None, Prediction | None]
"""(queue prediction, priority prediction) of one message."""


@dataclass
class PipelineStats:
    """Counts since start (read by the demo's summary and by ``triage status``)."""

    routed: dict[str, int] = field(default_factory=lambda: {"rule": 0, "model": 0, "fallback": 0})
    joined: int = 0
    no_ticket: int = 0
    acks_queued: int = 0
    acks_suppressed: dict[str, int] = field(default_factory=dict)

    def suppressed(self, reason: str) -> None:
        """Count one acknowledgment not sent, by reason."""
        self.acks_suppressed[reason] = self.acks_suppressed.get(reason, 0) + 1


class RoutingPipeline:
    """The :class:`~triage.services.intake.MessagePipeline` for inbound mail.

    Args:
        settings: the configuration.
        rules: the rule set holder (shared with the daemon's reload).
        models: the active models.
        clock: the current time (UTC).
        acknowledge_imports: acknowledge mail stored by ``triage import`` too (the
            demo does; a backfill of history must not).
        open_import_tickets: open tickets for imported mail (False: store only).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        rules: RulesHolder | None = None,
        models: ModelHolder | None = None,
        clock: Clock | None = None,
        acknowledge_imports: bool = False,
        open_import_tickets: bool = True,
    ) -> None:
        self.settings = settings
        self.rules = rules or RulesHolder()
        self.models = models or ModelHolder()
        self.clock: Clock = clock or SystemClock()
        self.policy = SlaPolicy(settings)
        self.templates = (
            MailTemplates.from_settings(settings) if settings.smtp is not None else None
        )
        self.acknowledge_imports = acknowledge_imports
        self.open_import_tickets = open_import_tickets
        self.stats = PipelineStats()

    # -- the BatchPipeline protocol ----------------------------------------------------

    def prepare(self, messages: Sequence[InboundMessage]) -> list[ModelAnswer | None]:
        """Classify a fetched batch in one call: one :class:`ModelAnswer` per message,
        in order, which the caller hands back to :meth:`process` with its message."""
        models = (self.models.queue, self.models.priority)
        return [
            ModelAnswer(queue, priority, models)
            for queue, priority in self.models.predict_many(messages)
        ]

    def _predict(self, message: InboundMessage, answer: ModelAnswer | None) -> _Answer:
        """The prepared ``answer`` while the models that gave it are active, else ask."""
        if answer is not None and answer.models == (self.models.queue, self.models.priority):
            return answer.queue, answer.priority
        return self.models.predict(message)

    # -- the MessagePipeline protocol ------------------------------------------------

    def process(
        self,
        session: Session,
        row: Message,
        message: InboundMessage,
        *,
        answer: ModelAnswer | None = None,
    ) -> None:
        """Join, route, open, escalate and acknowledge ``message`` (stored as ``row``);
        ``answer`` is the models' answer prepared for its batch (:meth:`prepare`).

        Adds rows to ``session``; never commits. An exception rolls the message back
        (the intake then stores it raw with the error, and calls this again for the
        error record, which goes to the fallback queue).
        """
        now = self.clock.now()
        # The row was inserted in this transaction, so it has no routing decision yet
        # (this pipeline adds it last). Saying so spares open_ticket() an UPDATE of
        # routing_decisions that would match nothing (a round trip per message).
        set_committed_value(row, "decision", None)
        if row.source == "import" and not self.open_import_tickets:
            self._decision(
                session, row, None, self._stored_only("imported history"), ack=AckReason.IMPORT
            )
            return
        original = self._earlier_copy(session, row, message)
        if original is not None:
            self._duplicate(session, row, original, now)
            return
        decision = self.rules.evaluate(message)
        match = find_ticket_for(session, message) if message.parse_status != "error" else None
        if match is not None:
            responder = self._responder(session, message, match)
            if responder:  # issue 12.4: a machine's answer to our ack, filed as a note
                row.kind = MessageKind.AUTO_REPLY.value
            via = f"{match.via}" + (f"; {responder}" if responder else "")
            self._join(session, row, message, match.ticket, via, decision, now)
            return
        ruled = decision is not None and bool(decision.queue)
        if message.kind in STORED_ONLY_KINDS and not (
            ruled and message.kind == MessageKind.NOTIFICATION
        ):  # a rule may still send a no-reply sender's mail to a queue (a bank's notice)
            self._machine_without_ticket(session, row, message)
            return
        queue_prediction, priority_prediction = self._predict(message, answer)
        routed = route(
            message,
            settings=self.settings.routing,
            queues=self.settings.queues.keys(),
            rules=decision,
            prediction=queue_prediction,
            priority_prediction=priority_prediction,
            model_note=self.models.note,
            threshold=routing_threshold(self.settings.routing, self.models.queue)[0],
        )
        ticket = open_ticket(
            session,
            row,
            policy=self.policy,
            queue=routed.queue,
            priority=routed.priority,
            decided_by=routed.decided_by,
            now=now,
            tags=routed.tags,
            assignee=routed.assignee,
        )
        if routed.escalate:
            self._escalate(session, ticket, routed.escalate, row, message, now)
        ack, why = self._acknowledge(session, row, message, ticket, routed, now)
        if why:  # shown on the ticket (show, the web page) with the routing explanation
            line = f"no acknowledgment: {why}" if ack is not None else why
            routed = replace(routed, explanation=(*routed.explanation, line))
        self._decision(session, row, ticket, routed, ack=ack)
        self.stats.routed[str(routed.decided_by)] += 1
        log_after_commit(  # once, when stored: not again for every retry of the transaction
            session,
            log,
            "message_routed",
            # an import of thousands of messages logs its counts, not every message
            level="debug" if row.source == "import" else "info",
            ticket=ticket.ref,
            message_id=row.message_id,
            queue=routed.queue,
            priority=str(routed.priority),
            decided_by=str(routed.decided_by),
            confidence=round(routed.confidence, 3) if routed.confidence is not None else None,
            rules=list(routed.rules_matched),
            ack=str(ack) if ack else "queued",
        )

    # -- steps -------------------------------------------------------------------------

    def _escalate(  # noqa: PLR0917 - private step; the arguments are the message in hand
        self,
        session: Session,
        ticket: Ticket,
        reasons: Sequence[str],
        row: Message,
        message: InboundMessage,
        now: datetime,
    ) -> None:
        """A rule's escalation; for history (:func:`triage.escalation.history_reason`)
        recorded but not notified."""
        escalation = record_rule_escalation(session, ticket, reasons, now=now)
        if escalation is None:
            return
        history = history_reason(
            seen_at=now,
            imported=row.source == "import",
            received_at=message.received_at,
            max_age=self.settings.acknowledgments.max_age,
        )
        if history:
            escalation.notified_at = now
            log.info("rule_escalation_not_mailed", ticket=ticket.ref, reason=history)

    @staticmethod
    def _earlier_copy(session: Session, row: Message, message: InboundMessage) -> Message | None:
        """An inbound message stored before ``row`` with the same Message-ID and sender.

        The same mail delivered twice (two routes, a resend by the client's
        server, an import of mail the poller also fetched) carries the same
        Message-ID (RFC 5322 section 3.6.4). The sender must match too, so that a
        stranger reusing a client's Message-ID cannot slip into her ticket.
        Synthesized Message-IDs and unparsable mail are never matched.
        """
        if message.message_id_synthetic or message.parse_status == ParseStatus.ERROR:
            return None
        if not row.message_id or not row.from_addr:
            return None
        return session.scalars(
            select(Message)
            .where(
                Message.message_id == row.message_id,
                Message.id != row.id,
                Message.direction == "in",
                func.lower(Message.from_addr) == row.from_addr.lower(),
            )
            .order_by(Message.id)
            .limit(1)
        ).first()

    def _duplicate(self, session: Session, row: Message, original: Message, now: datetime) -> None:
        """File a second copy of ``original`` with its ticket: no new ticket, no acknowledgment."""
        ticket = session.get(Ticket, original.ticket_id) if original.ticket_id else None
        self.stats.suppressed(AckReason.DUPLICATE)
        if ticket is None:
            self._decision(
                session,
                row,
                None,
                self._stored_only(
                    f"a second copy of message {original.id} (same Message-ID and sender),"
                    " which has no ticket: kept without one"
                ),
                ack=AckReason.DUPLICATE,
            )
        else:
            row.ticket_id = ticket.id
            record_event(
                session,
                ticket,
                actor=SERVICE_ACTOR,
                action="duplicate_added",
                at=now,
                message_id=row.message_id,
                duplicate_of=original.id,
            )
            explanation = (
                f"a second copy of message {original.id} (same Message-ID and sender):"
                f" filed with ticket {format_ref(ticket.ref or 0)}, nothing else changes"
            )
            self._decision(
                session, row, ticket, _ticket_route(ticket, (explanation,)), ack=AckReason.DUPLICATE
            )
        log_after_commit(
            session,
            log,
            "message_duplicate_delivery",
            message_id=row.message_id,
            duplicate_of=original.id,
            ticket=ticket.ref if ticket is not None else None,
        )

    @staticmethod
    def _responder(session: Session, message: InboundMessage, match: ThreadMatch) -> str:
        """Why a normal-looking reply threaded by one of our acknowledgments' Message-ID
        is an auto-responder's (:func:`~triage.outbox.policy.responder_sign`); ""."""
        if message.kind != MessageKind.NORMAL or match.via not in {"in_reply_to", "references"}:
            return ""
        ack = session.scalars(
            select(OutboxMail).where(
                OutboxMail.message_id == match.matched, OutboxMail.kind == "ack"
            )
        ).first()
        if ack is None:
            return ""
        return responder_sign(message, ack_ref=match.ticket.ref, ack_sent_at=ack.sent_at)

    @staticmethod
    def _undeliverable(
        session: Session, ticket: Ticket, message: InboundMessage, now: datetime
    ) -> list[str]:
        """Mark the ticket when a bounce says the client's address cannot be delivered to
        (RFC 3464): the tag ``undeliverable`` and an ``address_undeliverable`` audit row
        with the address and status; the explanation lines saying so."""
        report = message.delivery_report
        if message.kind != MessageKind.BOUNCE or report is None:
            return []
        client = (ticket.client_addr or "").lower()
        failed = [a for a in report.failed_recipients if a.lower() == client]
        if not failed:
            return []
        if "undeliverable" not in (ticket.tags or []):
            ticket.tags = [*(ticket.tags or []), "undeliverable"]
        status = report.status or "no status code"
        record_event(
            session,
            ticket,
            actor=SERVICE_ACTOR,
            action="address_undeliverable",
            at=now,
            address=failed[0],
            status=report.status,
        )
        return [f"the client's address {failed[0]} is undeliverable ({status}, RFC 3464)"]

    def _join(  # noqa: PLR0917 - private step; the arguments are the message in hand
        self,
        session: Session,
        row: Message,
        message: InboundMessage,
        ticket: Ticket,
        via: str,
        decision: RuleDecision | None,
        now: datetime,
    ) -> None:
        joined = add_client_message(session, ticket, row, policy=self.policy, now=now)
        explanation = [f"joined ticket {format_ref(ticket.ref or 0)} by {via} ({joined})"]
        explanation.extend(self._undeliverable(session, ticket, message, now))
        escalate: Sequence[str] = ()
        if decision is not None:
            explanation.extend(decision.explanation)
            if joined != "note" and decision.escalate:
                escalate = decision.escalate
                self._escalate(session, ticket, escalate, row, message, now)
        reason = AckReason.of_note(row.kind) if joined == "note" else AckReason.FOLLOW_UP
        self.stats.joined += 1
        self.stats.suppressed(reason)
        self._decision(
            session,
            row,
            ticket,
            _ticket_route(
                ticket,
                tuple(explanation),
                rules_matched=decision.matched if decision else (),
                escalate=tuple(escalate),
            ),
            ack=reason,
        )
        log_after_commit(
            session,
            log,
            "message_joined",
            ticket=ticket.ref,
            message_id=row.message_id,
            via=via,
            joined=str(joined),
            kind=str(message.kind),
        )

    def _acknowledge(  # noqa: PLR0917 - private step; the arguments are the message in hand
        self,
        session: Session,
        row: Message,
        message: InboundMessage,
        ticket: Ticket,
        routed: Route,
        now: datetime,
    ) -> tuple[AckReason | None, str]:
        """Queue the acknowledgment; return (None, "") when queued, else (why not, the
        sentence a person reads). Queued with the queue's template although a rule chose
        one that does not exist: (None, the sentence saying so)."""
        detail = ""
        reason: AckReason | None = None
        if self.settings.smtp is None or self.templates is None:
            reason = AckReason.NO_SMTP
        elif row.source == "import" and not self.acknowledge_imports:
            reason = AckReason.IMPORT
        elif message.parse_status == ParseStatus.ERROR:
            reason = AckReason.PARSE_ERROR
        else:
            plan = decide_ack(
                session,
                message,
                self.settings,
                now=now,
                follow_up=False,
                rule_no_ack=routed.suppress_ack,
            )
            reason = None if plan.send else AckReason(plan.reason)
            detail = plan.detail
        if reason is not None:
            self.stats.suppressed(reason)
            return reason, detail
        # plan_ack answered no_address for a reply address compose_ack could not use.
        mail = compose_ack(
            message,
            ticket_ref=ticket.ref or 0,
            queue=ticket.queue,
            due_at=ticket.first_response_due,
            settings=self.settings,
            now=now,
            templates=self.templates,
            template=routed.ack_template or "",
        )
        enqueue(
            session,
            mail,
            kind="ack",
            now=now,
            dedupe_key=f"ack:{row.id}",
            ticket_id=ticket.id,
            cause_message_id=row.id,
        )
        self.stats.acks_queued += 1
        chosen = routed.ack_template
        if chosen and not mail.template.startswith(f"ack/{chosen}."):
            return None, (
                f"acknowledgment template {chosen} not found: acknowledged with {mail.template}"
            )
        return None, ""

    def _machine_without_ticket(
        self, session: Session, row: Message, message: InboundMessage
    ) -> None:
        """Machine mail about no ticket we know (a bounce, a feedback report, a read
        receipt, a no-reply notification): stored, no ticket, no acknowledgment."""
        report = message.delivery_report
        what = {
            MessageKind.BOUNCE: "a bounce (RFC 3464)",
            MessageKind.FEEDBACK_REPORT: "a feedback report (RFC 5965)",
            MessageKind.READ_RECEIPT: "a read receipt (RFC 8098)",
        }.get(message.kind, f"machine mail ({message.kind_reason})")
        failed = (
            f" (failed: {', '.join(report.failed_recipients)})"
            if report is not None and report.failed_recipients
            else ""
        )
        reason = {
            MessageKind.BOUNCE: AckReason.BOUNCE,
            MessageKind.FEEDBACK_REPORT: AckReason.FEEDBACK_REPORT,
            MessageKind.READ_RECEIPT: AckReason.READ_RECEIPT,
        }.get(message.kind, AckReason.NO_REPLY_SENDER)
        self.stats.no_ticket += 1
        self.stats.suppressed(reason)
        self._decision(
            session,
            row,
            None,
            self._stored_only(f"{what} about mail no ticket knows{failed}: kept without a ticket"),
            ack=reason,
        )

    def _stored_only(self, why: str) -> Route:
        """The decision of a message that opens no ticket: no queue ("")."""
        return Route(
            queue="",
            priority=self.settings.routing.default_priority,
            decided_by=DecidedBy.FALLBACK,
            explanation=(why,),
        )

    @staticmethod
    def _decision(
        session: Session,
        row: Message,
        ticket: Ticket | None,
        routed: Route,
        *,
        ack: AckReason | None = None,
    ) -> None:
        """Add the message's ``routing_decisions`` row; ``ack`` None when one was queued."""
        decision = RoutingDecision(
            message_id=row.id,
            ticket_id=ticket.id if ticket is not None else None,
            queue=routed.queue,
            priority=str(routed.priority),
            decided_by=str(routed.decided_by),
            confidence=routed.confidence,
            model_version=routed.model_version,
            rules_matched=list(routed.rules_matched),
            probabilities=[list(p) for p in routed.probabilities],
            explanation=list(routed.explanation),
            tags=list(routed.tags),
            escalate=list(routed.escalate),
            ack=ack.value if ack is not None else "",
            ack_template=routed.ack_template or "",
            assignee=routed.assignee or "",
        )
        session.add(decision)
        row.decision = decision


def _ticket_route(
    ticket: Ticket,
    explanation: tuple[str, ...],
    *,
    rules_matched: Sequence[str] = (),
    escalate: tuple[str, ...] = (),
) -> Route:
    """The decision of a message filed with an existing ``ticket``: its queue and priority."""
    return Route(
        queue=ticket.queue,
        priority=ticket.priority,  # type: ignore[arg-type]
        decided_by=DecidedBy(ticket.decided_by),
        rules_matched=tuple(rules_matched),
        explanation=explanation,
        escalate=escalate,
    )


class SentPipeline:
    """The pipeline for a watched Sent folder: the team's replies stop SLA clocks."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.policy = SlaPolicy(settings)
        self.clock: Clock = clock or SystemClock()

    def process(
        self,
        session: Session,
        row: Message,
        message: InboundMessage,
        *,
        answer: ModelAnswer | None = None,  # noqa: ARG002 - the MessagePipeline protocol
    ) -> None:
        """Record ``message`` as the team's reply on the ticket it answers, if any."""
        ticket = record_sent_reply(
            session, message, policy=self.policy, now=self.clock.now(), stored=row
        )
        fields: dict[str, Any] = {"message_id": row.message_id}
        if ticket is not None:
            log.info("team_reply_recorded", ticket=ticket.ref, via="sent_folder", **fields)
        else:
            log.info("sent_mail_unmatched", **fields)
