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

from classifiers.features import example_from_message
from classifiers.prediction import Prediction
from rules import RuleSet
from rules.model import RuleDecision
from triage.clock import Clock, SystemClock
from triage.config import Settings
from triage.domain import InboundMessage, ParseStatus
from triage.escalation.history import history_reason
from triage.handling import (
    Acknowledge,
    AckReason,
    Action,
    Decision,
    EarlierCopy,
    Facts,
    Predictions,
    SentAck,
    ThreadFact,
    TicketFact,
    decide,
)
from triage.handling.checks import our_addresses
from triage.outbox import compose_ack, recent_ack_count
from triage.outbox.enqueue import ACK_WINDOW, answered_ack, earlier_repeat, enqueue_row
from triage.outbox.templates import MailTemplates
from triage.routing import Route, routing_threshold
from triage.services.contract import ModelAnswer
from triage.sla.deadlines import SlaPolicy
from triage.store.committed_log import log_after_commit
from triage.store.models import Message, OutboxMail, Ticket
from triage.store.rows import NewMessage, insert_decision
from triage.tickets import (
    add_client_message,
    format_ref,
    record_rule_escalation,
    record_sent_reply,
)
from triage.tickets.audit import SERVICE_ACTOR, record_event
from triage.tickets.lifecycle import OpenedTicket, open_ticket_row
from triage.tickets.matching import ThreadHit, find_thread_for

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
        self._ours = our_addresses(settings)

    # -- the BatchPipeline protocol ----------------------------------------------------

    def prepare(self, messages: Sequence[InboundMessage]) -> list[ModelAnswer | None]:
        """Classify a fetched batch in one call: one :class:`ModelAnswer` per message,
        in order, which the caller hands back to :meth:`process` with its message."""
        models = (self.models.queue, self.models.priority)
        return [
            ModelAnswer(queue, priority, models)
            for queue, priority in self.models.predict_many(messages)
        ]

    def predict_one(self, message: InboundMessage, answer: ModelAnswer | None) -> _Answer:
        """The prepared ``answer`` while the models that gave it are active, else ask."""
        if answer is not None and answer.models == (self.models.queue, self.models.priority):
            return answer.queue, answer.priority
        return self.models.predict(message)

    # -- the MessagePipeline protocol ------------------------------------------------

    def facts(
        self,
        session: Session,
        row: Message | NewMessage,
        message: InboundMessage,
        *,
        answer: ModelAnswer | None = None,
        now: datetime,
    ) -> Facts:
        """The :class:`~triage.handling.Facts` about ``message`` (stored as ``row``, or
        about to be), read from ``session`` lazily: each lookup runs only when a row of
        the tables needs it (:class:`_StoreFacts`)."""
        return Facts(
            message=message,
            settings=self.settings,
            now=now,
            source=_StoreFacts(self, session, row, message, answer, now),
            imported=row.source == "import",
            acknowledge_imports=self.acknowledge_imports,
            open_import_tickets=self.open_import_tickets,
            can_send=self.settings.smtp is not None and self.templates is not None,
            model_note=self.models.note,
            threshold=routing_threshold(self.settings.routing, self.models.queue)[0],
            ours=self._ours,
        )

    def process(
        self,
        session: Session,
        row: Message,
        message: InboundMessage,
        *,
        answer: ModelAnswer | None = None,
    ) -> None:
        """Decide what becomes of ``message`` (stored as ``row``; :func:`triage.handling.decide`)
        and write it: join, open, escalate, acknowledge. ``answer`` is the models' answer
        prepared for its batch (:meth:`prepare`).

        Adds rows to ``session``; never commits. An exception rolls the message back
        (the intake then stores it raw with the error, and calls this again for the
        error record, which goes to the fallback queue). The intake calls
        :meth:`store` instead, which inserts the message's row itself.
        """
        self._apply(session, row, message, answer)

    def store(
        self,
        session: Session,
        row: NewMessage,
        message: InboundMessage,
        *,
        answer: ModelAnswer | None = None,
    ) -> None:
        """:meth:`process` for a message whose row is not inserted yet (the
        :class:`~triage.services.contract.RowPipeline` protocol): decides first, then
        inserts the row once, with its ticket and kind (``row.insert``), and the
        ticket's, the decision's and the outbox's rows, all with SQLAlchemy Core (no
        ORM object, except the ticket a follow-up joins). Sets ``row.id``; never
        commits; an exception rolls the message back, as for :meth:`process`."""
        self._apply(session, row, message, answer)

    def _apply(
        self,
        session: Session,
        row: Message | NewMessage,
        message: InboundMessage,
        answer: ModelAnswer | None,
    ) -> None:
        now = self.clock.now()
        facts = self.facts(session, row, message, answer=answer, now=now)
        decision = decide(facts)
        source = facts.source
        assert isinstance(source, _StoreFacts)  # noqa: S101 - made just above
        if decision.action is Action.OPEN:
            self._open(session, row, message, decision, now)
        elif decision.action is Action.JOIN:
            assert source.match is not None  # noqa: S101 - the decision joined it
            ticket = session.get_one(Ticket, source.match.ticket.id)
            self._join(session, row, message, ticket, decision, now)
        elif decision.action is Action.DUPLICATE:
            original = source.original_ticket
            earlier = session.get_one(Ticket, original.id) if original is not None else None
            self._duplicate(session, row, earlier, decision, now)
        else:
            if decision.ack_reason is not AckReason.IMPORT:
                self.stats.no_ticket += 1
                self._suppressed(decision)
            row_id = _save(session, row)
            self._record(session, row_id, None, decision, decision.route)

    # -- applying the decision -------------------------------------------------------

    def _suppressed(self, decision: Decision) -> None:
        reason = decision.ack_reason
        if reason is not None:
            self.stats.suppressed(reason)

    def _open(
        self,
        session: Session,
        row: Message | NewMessage,
        message: InboundMessage,
        decision: Decision,
        now: datetime,
    ) -> None:
        routed = decision.route
        ticket = open_ticket_row(
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
        row.ticket_id = ticket.id
        row_id = _save(session, row)
        if decision.escalate:
            self._escalate(
                session, session.get_one(Ticket, ticket.id), decision.escalate, row, message, now
            )
        if isinstance(decision.ack, Acknowledge):
            line = self._acknowledge(session, row_id, message, ticket, decision.ack, now)
            if line:  # shown on the ticket (show, the web page) with the explanation
                routed = replace(routed, explanation=(*routed.explanation, line))
        else:
            self._suppressed(decision)
        self._record(session, row_id, ticket.id, decision, routed)
        self.stats.routed[str(routed.decided_by)] += 1
        ack = decision.ack_reason
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

    def _escalate(  # noqa: PLR0917 - private step; the arguments are the message in hand
        self,
        session: Session,
        ticket: Ticket,
        reasons: Sequence[str],
        row: Message | NewMessage,
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

    def _duplicate(
        self,
        session: Session,
        row: Message | NewMessage,
        ticket: Ticket | None,
        decision: Decision,
        now: datetime,
    ) -> None:
        """File a second copy with its ticket: no new ticket, no acknowledgment."""
        self._suppressed(decision)
        if ticket is not None:
            row.ticket_id = ticket.id
            record_event(
                session,
                ticket,
                actor=SERVICE_ACTOR,
                action="duplicate_added",
                at=now,
                message_id=row.message_id,
                duplicate_of=decision.duplicate_of,
            )
            session.flush()
        row_id = _save(session, row)
        self._record(
            session, row_id, ticket.id if ticket is not None else None, decision, decision.route
        )
        log_after_commit(
            session,
            log,
            "message_duplicate_delivery",
            message_id=row.message_id,
            duplicate_of=decision.duplicate_of,
            ticket=ticket.ref if ticket is not None else None,
        )

    def _join(  # noqa: PLR0917 - private step; the arguments are the message in hand
        self,
        session: Session,
        row: Message | NewMessage,
        message: InboundMessage,
        ticket: Ticket,
        decision: Decision,
        now: datetime,
    ) -> None:
        if decision.kind is not None:  # issue 12.4: a machine's answer to our ack, a note
            row.kind = decision.kind.value
        joined = add_client_message(session, ticket, row, policy=self.policy, now=now)
        row_id = _save(session, row)
        if decision.undeliverable is not None:
            address, status = decision.undeliverable
            if "undeliverable" not in (ticket.tags or []):
                ticket.tags = [*(ticket.tags or []), "undeliverable"]
            record_event(
                session,
                ticket,
                actor=SERVICE_ACTOR,
                action="address_undeliverable",
                at=now,
                address=address,
                status=status,
            )
        if decision.escalate:
            self._escalate(session, ticket, decision.escalate, row, message, now)
        self.stats.joined += 1
        self._suppressed(decision)
        line = f"joined ticket {format_ref(ticket.ref or 0)} by {decision.via} ({joined})"
        routed = decision.route
        self._record(
            session,
            row_id,
            ticket.id,
            decision,
            replace(routed, explanation=(line, *routed.explanation)),
        )
        log_after_commit(
            session,
            log,
            "message_joined",
            ticket=ticket.ref,
            message_id=row.message_id,
            via=decision.via,
            joined=str(joined),
            kind=str(message.kind),
        )

    def _acknowledge(  # noqa: PLR0917 - private step; the arguments are the message in hand
        self,
        session: Session,
        row_id: int,
        message: InboundMessage,
        ticket: OpenedTicket,
        ack: Acknowledge,
        now: datetime,
    ) -> str:
        """Queue the acknowledgment with ``ack.template`` (the queue's when ""); the
        sentence to show when that template does not exist (the queue's is used), ""."""
        assert self.templates is not None  # noqa: S101 - the table's no_smtp row said so
        mail = compose_ack(
            message,
            ticket_ref=ticket.ref,
            queue=ticket.queue,
            due_at=ticket.first_response_due,
            settings=self.settings,
            now=now,
            templates=self.templates,
            template=ack.template,
        )
        enqueue_row(
            session,
            mail,
            kind="ack",
            now=now,
            dedupe_key=f"ack:{row_id}",
            ticket_id=ticket.id,
            cause_message_id=row_id,
        )
        self.stats.acks_queued += 1
        chosen = ack.template
        if chosen and not mail.template.startswith(f"ack/{chosen}."):
            return f"acknowledgment template {chosen} not found: acknowledged with {mail.template}"
        return ""

    def _record(
        self,
        session: Session,
        message_id: int,
        ticket_id: int | None,
        decision: Decision,
        routed: Route,
    ) -> None:
        """Insert the message's ``routing_decisions`` row (``routed``: the decision's route
        with what applying it added to the explanation), dated by the pipeline's clock:
        the time the facts were read (``triage rules test`` replays them as of then)."""
        now = self.clock.now()
        reason = decision.ack_reason
        insert_decision(
            session,
            {
                "message_id": message_id,
                "ticket_id": ticket_id,
                "queue": routed.queue,
                "priority": str(routed.priority),
                "decided_by": str(routed.decided_by),
                "confidence": routed.confidence,
                "model_version": routed.model_version,
                "rules_matched": list(routed.rules_matched),
                "probabilities": [list(p) for p in routed.probabilities],
                "explanation": list(routed.explanation),
                "tags": list(routed.tags),
                "escalate": list(routed.escalate),
                "ack": reason.value if reason is not None else "",
                "ack_template": routed.ack_template or "",
                "assignee": routed.assignee or "",
                "checks": decision.checks,
                "created_at": now,
            },
        )


def _save(session: Session, row: Message | NewMessage) -> int:
    """The message's id: a :class:`NewMessage` is inserted now (once, with the ticket and
    kind set on it); a stored row's changes are flushed with the session."""
    if isinstance(row, NewMessage):
        return row.insert(session)
    session.flush()
    return row.id


_messages = Message.__table__.c
_outbox = OutboxMail.__table__.c
_tickets = Ticket.__table__.c


class _StoreFacts:
    """The :class:`~triage.handling.FactSource` of a message being stored: each answer
    read from the message's own transaction when a row of the tables asks for it. Keeps
    the rows it found (the ticket to join, the earlier copy's ticket) for the apply."""

    def __init__(  # noqa: PLR0917 - private; the arguments are the message in hand
        self,
        pipeline: RoutingPipeline,
        session: Session,
        row: Message | NewMessage,
        message: InboundMessage,
        answer: ModelAnswer | None,
        now: datetime,
    ) -> None:
        self.pipeline = pipeline
        self.session = session
        self.row = row
        self.message = message
        self.answer = answer
        self.now = now
        self.match: ThreadHit | None = None
        self.original_ticket: TicketFact | None = None

    def earlier_copy(self) -> EarlierCopy | None:
        """An inbound message stored before this row with the same Message-ID and sender.

        The same mail delivered twice (two routes, a resend by the client's server, an
        import of mail the poller also fetched) carries the same Message-ID (RFC 5322
        section 3.6.4). The sender must match too, so that a stranger reusing a
        client's Message-ID cannot slip into her ticket. Synthesized Message-IDs and
        unparsable mail are never matched.
        """
        message, row, session = self.message, self.row, self.session
        if message.message_id_synthetic or message.parse_status == ParseStatus.ERROR:
            return None
        if not row.message_id or not row.from_addr:
            return None
        # SQLAlchemy Core on the session's connection: no ORM objects, no autoflush
        # (issue 18.2); the intake has flushed everything before this message
        m = _messages
        connection = session.connection()
        stored = (m.id != row.id,) if row.id is not None else ()  # not the row itself
        original = connection.execute(
            select(m.id, m.ticket_id)
            .where(
                m.message_id == row.message_id,
                *stored,
                m.direction == "in",
                func.lower(m.from_addr) == row.from_addr.lower(),
            )
            .order_by(m.id)
            .limit(1)
        ).first()
        if original is None:
            return None
        ticket = None
        if original.ticket_id is not None:
            t = _tickets
            found = connection.execute(
                select(t.id, t.ref, t.queue, t.priority, t.decided_by, t.client_addr).where(
                    t.id == original.ticket_id
                )
            ).first()
            if found is not None:
                ticket = TicketFact(
                    id=found.id,
                    ref=found.ref,
                    queue=found.queue,
                    priority=found.priority,
                    decided_by=found.decided_by,
                    client_addr=found.client_addr or "",
                )
        self.original_ticket = ticket
        return EarlierCopy(original.id, ticket)

    def thread(self) -> ThreadFact | None:
        """:func:`~triage.tickets.matching.find_thread_for` (SQLAlchemy Core)."""
        self.match = find_thread_for(self.session, self.message)
        if self.match is None:
            return None
        return ThreadFact(self.match.ticket, self.match.via, self.match.matched)

    def sent_ack(self, message_id: str) -> SentAck | None:
        """Our acknowledgment with ``message_id``, when it is one."""
        o = _outbox
        ack = (
            self.session.connection()
            .execute(select(o.sent_at).where(o.message_id == message_id, o.kind == "ack"))
            .first()
        )
        return SentAck(ack.sent_at) if ack is not None else None

    def rules(self) -> RuleDecision | None:
        """The current rules' decision."""
        return self.pipeline.rules.evaluate(self.message)

    def predictions(self) -> Predictions:
        """The batch's prepared answer while its models are active, else the models'."""
        return self.pipeline.predict_one(self.message, self.answer)

    def recent_acks(self) -> int:
        """:func:`~triage.outbox.recent_ack_count` for the reply address, last hour."""
        recipient = self.message.reply_address
        if recipient is None:
            return 0
        return recent_ack_count(self.session, recipient.addr, self.now - ACK_WINDOW)

    def answered_ack(self) -> str:
        """:func:`~triage.outbox.enqueue.answered_ack`."""
        return answered_ack(self.session, self.message)

    def repeat_of(self) -> str:
        """:func:`~triage.outbox.enqueue.earlier_repeat` within the last hour."""
        return earlier_repeat(self.session, self.message, self.now - ACK_WINDOW)


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
