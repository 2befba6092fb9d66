"""The intake contract: the values passed between the poller, the intake and a pipeline.

The poller fetches, the :class:`~triage.services.intake.Intake` parses and stores, and
a :class:`MessagePipeline` adds what one stored message means (routing, ticket,
outbox rows) inside the same transaction. Work that is cheaper for a whole fetched
batch (classifying) is done by :meth:`BatchPipeline.prepare`, which *returns* one
:class:`ModelAnswer` per message; the intake keeps each with its parsed message as a
:class:`Prepared` value and hands it back explicitly to :meth:`MessagePipeline.process`
(``answer=``). Nothing is passed through thread-local caches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session

from classifiers.prediction import Prediction
from triage.domain import InboundMessage
from triage.store.models import Message
from triage.store.rows import NewMessage

__all__ = [
    "BatchPipeline",
    "MessagePipeline",
    "ModelAnswer",
    "NoPipeline",
    "Prepared",
    "RowPipeline",
]


@dataclass(frozen=True, slots=True)
class ModelAnswer:
    """The classifier models' answer for one message, worked out ahead for its batch.

    Attributes:
        queue: the queue model's prediction, None when there is no queue model or the
            message could not be parsed.
        priority: the priority model's prediction, likewise.
        models: the identity of the (queue, priority) models that answered: an answer
            is used only while the same models are active (``triage train`` may
            activate another between the batch's prediction and a message's turn).
    """

    queue: Prediction | None
    priority: Prediction | None
    models: tuple[object, object]


@dataclass(frozen=True, slots=True)
class Prepared:
    """One fetched message worked out ahead: parsed, and the pipeline's answer for it.

    Attributes:
        message: the parsed message (:func:`triage.mail.parse_message`).
        answer: the :class:`BatchPipeline`'s answer, None when the pipeline does no
            batch work or its ``prepare`` failed (then ``process`` works it out alone).
    """

    message: InboundMessage
    answer: ModelAnswer | None = None


class MessagePipeline(Protocol):
    """What happens to a stored message inside its transaction (routing, ticket, outbox).

    ``process`` runs after ``row`` was added and flushed (``row.id`` is set) in
    the same ``session``; whatever it adds commits or rolls back together with
    the message and the folder's progress. It must not commit. It is called for
    every new row, imported ones too (``row.source == "import"``: no
    acknowledgment for history), and for rows stored with ``parse_status ==
    "error"`` (route those to the fallback queue). It is NOT called for a
    message recognized as already stored.
    """

    def process(
        self,
        session: Session,
        row: Message,
        message: InboundMessage,
        *,
        answer: ModelAnswer | None = None,
    ) -> None:
        """Add this message's rows to ``session``; ``answer`` is the batch's head start
        for this very message (:meth:`BatchPipeline.prepare`), passed only when there
        is one (a pipeline without batch work may leave the parameter out). Any
        exception rolls the message back."""
        ...


@runtime_checkable
class RowPipeline(Protocol):
    """A :class:`MessagePipeline` that inserts the message's row itself (issue 18.2).

    The intake calls ``store`` instead of ``process`` (except for a placeholder, whose
    row something else links to): ``row`` holds the message's column values, not yet
    inserted; the pipeline decides first and then inserts it once, with its ticket
    (``row.insert(session)``, which sets ``row.id``), so the new row is never updated.
    The same rules as ``process``: inside the message's transaction, never commits,
    any exception rolls the message back. A pipeline that leaves ``row.id`` None gets
    the row inserted by the intake afterwards.
    """

    def store(
        self,
        session: Session,
        row: NewMessage,
        message: InboundMessage,
        *,
        answer: ModelAnswer | None = None,
    ) -> None:
        """Add this message's rows to ``session``, its own included."""
        ...


@runtime_checkable
class BatchPipeline(Protocol):
    """A :class:`MessagePipeline` that can do part of its work for a whole fetched batch.

    ``prepare`` gets the parsed messages of a batch before each is stored in its
    own transaction (e.g. to classify them all in one call, much cheaper than one
    call per message) and returns one answer per message, in order; the caller
    passes each back to ``process`` with its message. It must not touch the
    database, and a failure only loses the head start.
    """

    def prepare(self, messages: Sequence[InboundMessage]) -> Sequence[ModelAnswer | None]:
        """The head start for each of ``messages`` (same order and length)."""
        ...


class NoPipeline:
    """The default pipeline: store the message, nothing more."""

    def process(
        self,
        session: Session,
        row: Message,
        message: InboundMessage,
        *,
        answer: ModelAnswer | None = None,
    ) -> None:
        """Do nothing."""
