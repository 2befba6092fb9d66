"""The page's seam to the ticket functions: show a ticket, act on it, with version checks.

Every action calls the same :mod:`triage.tickets` functions as the CLI, in one
transaction. An action carries the ticket version the page was rendered with:
when the ticket changed since, the action is refused with :class:`Stale`, which
names who changed what (the audit events after the page's last one).

(The core's ticket desk, issue 14, takes this module's place once it is on main.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.domain import TicketStatus
from triage.errors import ConflictError, NotFoundError, UserError
from triage.modelstore import active_model_info
from triage.sla.deadlines import SlaPolicy
from triage.store import Database
from triage.store.models import Message, RoutingDecision, Ticket, TicketEvent, TrainingLabel
from triage.tickets import assign, claim, get_ticket, move, queue_reply, set_status

__all__ = ["ACTIONS", "Correction", "Stale", "TicketData", "act", "load"]

ACTIONS = ("claim", "assign", "move", "wait", "done", "reopen", "reply")


class Stale(ConflictError):  # noqa: N818 - a conflict, named for what the page shows
    """The ticket changed since the page was rendered.

    Attributes:
        events: the changes since, oldest first.
    """

    def __init__(self, ref: int, events: list[TicketEvent]) -> None:
        who = ", ".join(sorted({e.actor for e in events})) or "someone"
        super().__init__(f"#{ref} was changed by {who} since you opened it")
        self.events = events


@dataclass(frozen=True)
class Correction:
    """A queue correction of the ticket, stored as a training label.

    Attributes:
        used_by: the active queue model trained after the correction was stored
            (so trained with it), or "" while none is.
    """

    queue: str
    actor: str
    at: datetime
    used_by: str


@dataclass(frozen=True)
class TicketData:
    """A ticket as the page shows it (rows detached from their session)."""

    ticket: Ticket
    messages: list[Message]
    decisions: list[RoutingDecision]
    events: list[TicketEvent]
    corrections: list[Correction]

    @property
    def last_event(self) -> int:
        """Id of the newest audit event (the page sends it back with an action)."""
        return self.events[-1].id if self.events else 0


def _read(session: Session, ticket: Ticket) -> TicketData:
    messages = list(
        session.scalars(
            select(Message)
            .where(Message.ticket_id == ticket.id)
            .order_by(Message.received_at.desc(), Message.id.desc())
        )
    )
    conditions = [RoutingDecision.ticket_id == ticket.id]
    if messages:
        conditions.append(RoutingDecision.message_id.in_([m.id for m in messages]))
    decisions = list(
        session.scalars(
            select(RoutingDecision).where(or_(*conditions)).order_by(RoutingDecision.id)
        )
    )
    events = list(
        session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        )
    )
    return TicketData(
        ticket=ticket,
        messages=messages,
        decisions=decisions,
        events=events,
        corrections=_corrections(session, [m.id for m in messages]),
    )


def _corrections(session: Session, message_ids: list[int]) -> list[Correction]:
    if not message_ids:
        return []
    labels = session.scalars(
        select(TrainingLabel)
        .where(TrainingLabel.message_id.in_(message_ids), TrainingLabel.source == "correction")
        .order_by(TrainingLabel.id)
    ).all()
    if not labels:
        return []
    model = active_model_info(session, "queue")
    return [
        Correction(
            queue=label.queue,
            actor=label.actor,
            at=label.created_at,
            used_by=model.version if model and model.trained_at > label.created_at else "",
        )
        for label in labels
    ]


def load(db: Database, ref: int) -> TicketData:
    """The ticket ``ref`` with its messages (newest first), routing and audit trail.

    Raises:
        NotFoundError: no such ticket.
    """
    with db.read_session() as session:
        data = _read(session, get_ticket(session, ref))
        session.expunge_all()
    return data


def act(
    db: Database,
    settings: Settings,
    policy: SlaPolicy,
    ref: int,
    action: str,
    *,
    actor: str,
    version: int | None,
    seen: int,
    now: datetime,
    value: str = "",
) -> bool:
    """Do ``action`` on ticket ``ref`` for ``actor``; False when it changed nothing.

    Args:
        version: the ticket version the page was rendered with (None: no check).
        seen: the newest audit event id the page showed (to name what changed).
        value: the assignee (assign), queue (move) or reply text (reply).

    Raises:
        Stale: the ticket changed since ``version``.
        ConflictError: someone else claimed it first.
        NotFoundError, UserError: unknown ticket, queue, assistant; an empty reply.
    """
    if action not in ACTIONS:
        raise UserError(f"no action {action!r}")
    with db.session() as session:
        ticket = get_ticket(session, ref)
        if version is not None and ticket.version != version:
            later = list(
                session.scalars(
                    select(TicketEvent)
                    .where(TicketEvent.ticket_id == ticket.id, TicketEvent.id > seen)
                    .order_by(TicketEvent.id)
                )
            )
            session.expunge_all()
            raise Stale(ref, later)
        if action == "claim":
            return claim(session, ticket, actor, now=now)
        if action == "assign":
            if value not in settings.team.assistants:
                raise NotFoundError(f"no assistant {value!r} in [team.assistants]")
            return assign(session, ticket, value, actor=actor, now=now)
        if action == "move":
            return move(session, ticket, value, actor=actor, policy=policy, now=now)
        if action == "reply":
            queue_reply(
                session, ticket, value, actor=actor, settings=settings, policy=policy, now=now
            )
            return True
        status = {
            "wait": TicketStatus.WAITING,
            "done": TicketStatus.SOLVED,
            "reopen": TicketStatus.NEW if ticket.assignee is None else TicketStatus.OPEN,
        }[action]
        return set_status(session, ticket, status, actor=actor, policy=policy, now=now)
