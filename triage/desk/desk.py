"""The ticket desk: every ticket action a person takes, one call and one transaction each.

Both front ends call it — the CLI (``triage queue``, ``show``, ``claim``, ...) and
the web page — so the business rules live here once:

- who acts: every action names its ``actor`` (recorded in the audit trail);
  only assistants (``[team.assistants]``, when configured) can be given a ticket,
  by claiming or by assignment;
- a solved or closed ticket cannot be claimed (a new message from the client
  reopens it); a claim is one conditional UPDATE, so of two at once one wins;
- ``expected_version``: an action on what a person saw is refused with a
  :class:`~triage.errors.ConflictError` naming who changed what since then,
  when the ticket changed meanwhile (a claim, a client's new message, ...);
- a queue or priority correction is a training label; a reply goes to the
  client through the outbox; an internal note never leaves the team, and the
  assistants it names with ``@name`` are recorded to be told.

Reads (:meth:`TicketDesk.queue`, :meth:`~TicketDesk.counts`, :meth:`~TicketDesk.show`)
run in a read-only transaction and return frozen values (:mod:`triage.desk.values`).
Actions return an :class:`~triage.desk.values.ActionResult`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from triage.clock import Clock, SystemClock
from triage.config import Settings
from triage.desk.cursor import decode_cursor, encode_cursor
from triage.desk.show import event_view, local_time, ticket_view
from triage.desk.values import (
    ActionResult,
    AttachmentContent,
    CorrectionView,
    QueueCount,
    QueueCounts,
    QueuePage,
    TicketView,
    View,
)
from triage.domain import Priority, TicketStatus
from triage.errors import Change, ConflictError, NotFoundError, UserError
from triage.mail.parts import attachment_data, html_body, part_by_content_id
from triage.modelstore import active_model_info
from triage.refs import format_ref, parse_ref
from triage.sla.calendar import BusinessCalendar
from triage.sla.deadlines import SlaPolicy
from triage.store import Database
from triage.store.models import Mention, Message, Ticket, TicketEvent, TicketNote
from triage.store.tickets import (
    QueueFilter,
    QueueKey,
    QueueTally,
    count_queue,
    due_snoozes,
    events_since,
    queue_listing,
    queue_page,
    queue_tally,
    ticket_by_ref,
    ticket_corrections,
    ticket_message,
)
from triage.tickets.audit import SERVICE_ACTOR, record_event
from triage.tickets.queue import QueueListing, QueueRow, queue_row

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PAGE",
    "MAX_SNOOZE",
    "TicketDesk",
    "check_body_size",
    "mentioned",
    "unknown_mentions",
]

MAX_SNOOZE = timedelta(days=366)
"""The furthest a ticket may be snoozed: a year (a date in 9999 is a typing slip)."""

MAX_PAGE = 500
"""The most tickets one page may hold."""

MAX_BODY_BYTES = 1024 * 1024
"""The most a reply or an internal note may hold: 1 MiB of UTF-8 text (1,048,576
bytes). The CLI (``reply --body-file``, ``note``) and the web page both call the desk,
so both refuse a longer text with the same :class:`~triage.errors.UserError`."""


def check_body_size(body: str, what: str) -> None:
    """Refuse a reply or note (``what``: "reply" or "note") over :data:`MAX_BODY_BYTES`.

    Raises:
        UserError: the text's UTF-8 size is over the limit (the message names both).
    """
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise UserError(
            f"the {what} is {size:,} bytes, over the limit of {MAX_BODY_BYTES:,} bytes"
            f" (1 MiB): nothing was {'sent' if what == 'reply' else 'added'}"
        )


_CLOSED = (TicketStatus.SOLVED.value, TicketStatus.CLOSED.value)
_MENTION = re.compile(r"(?<![\w@.+-])@([\w][\w.-]*)")
"""``@name``: not inside an address (``anna@example.com``), ends before punctuation."""


def mentioned(text: str, assistants: Sequence[str]) -> tuple[str, ...]:
    """The assistants named as ``@name`` in ``text`` (case-insensitive), in order, once each.

    Unknown names and e-mail addresses are not mentions (:func:`unknown_mentions` lists
    the unknown names, so that the writer can be told nobody was).
    """
    return _mentions(text, assistants)[0]


def unknown_mentions(text: str, assistants: Sequence[str]) -> tuple[str, ...]:
    """The ``@name`` words in ``text`` that name no assistant (as written, without ``@``,
    in order, once each, case-insensitive): ``"ask @nobody"`` -> ``("nobody",)``.
    E-mail addresses are not mentions at all."""
    return _mentions(text, assistants)[1]


def _mentions(text: str, assistants: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    known = {name.lower(): name for name in assistants}
    found: list[str] = []
    unknown: dict[str, str] = {}
    for match in _MENTION.finditer(text):
        word = match.group(1).rstrip(".-")
        name = known.get(word.lower())
        if name is None:
            unknown.setdefault(word.lower(), word)
        elif name not in found:
            found.append(name)
    return tuple(found), tuple(unknown.values())


_Apply = Callable[[Session, Ticket, datetime], "_Done"]


class _Done:
    """What an action's body reports besides its audit rows."""

    __slots__ = ("mentions", "note_id", "recipient", "unknown_mentions")

    def __init__(
        self,
        *,
        recipient: str = "",
        note_id: int | None = None,
        mentions: tuple[str, ...] = (),
        unknown_mentions: tuple[str, ...] = (),
    ) -> None:
        self.recipient = recipient
        self.note_id = note_id
        self.mentions = mentions
        self.unknown_mentions = unknown_mentions


class TicketDesk:
    """The one API for working tickets (see the module docstring).

    Args:
        db: the store.
        settings: the configuration (queues, assistants, SLA, ``[smtp]`` for replies).
        clock: the current time.
        calendar: the business calendar (built from ``settings.calendar`` when omitted).

    Every method that names a ticket takes its reference as ``1042``, ``"1042"`` or
    ``"#1042"`` and raises :class:`~triage.errors.NotFoundError` for an unknown one.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Clock | None = None,
        calendar: BusinessCalendar | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.policy = SlaPolicy(settings, calendar)

    # -- who ------------------------------------------------------------------------

    def check_assistant(self, name: str) -> str:
        """``name`` if it may hold tickets: one of ``[team.assistants]`` (any name when
        none are configured).

        Raises:
            NotFoundError: not an assistant (the message lists them).
        """
        known = self.settings.team.assistants
        if not name or (known and name not in known):
            raise NotFoundError(
                f"no assistant {name!r} in [team.assistants] ({', '.join(sorted(known))})"
            )
        return name

    @staticmethod
    def _actor(actor: str) -> str:
        actor = actor.strip()
        if not actor:
            raise UserError("who is acting? an action needs the actor's name")
        if actor == SERVICE_ACTOR:
            raise UserError(f"{SERVICE_ACTOR!r} is the service's own name, not a person's")
        return actor

    # -- reading ----------------------------------------------------------------------

    def _filter(self, view: View, queue: str | None, actor: str | None) -> QueueFilter:
        if queue is not None and queue not in self.settings.queues:
            raise NotFoundError(
                f"no queue {queue!r} (queues: {', '.join(sorted(self.settings.queues))})"
            )
        if view is View.MINE and not actor:
            raise UserError("the view 'mine' needs the actor's name")
        return QueueFilter(
            queue=queue,
            assignee=actor if view is View.MINE else None,
            unassigned=view is View.UNASSIGNED,
            waiting=view is View.WAITING,
            escalated=view is View.ESCALATED,
        )

    def queue(
        self,
        *,
        view: View | str = View.ALL,
        queue: str | None = None,
        actor: str | None = None,
        cursor: str | None = None,
        limit: int | None = 50,
    ) -> QueuePage:
        """One page of a queue view in urgency order: breached first (most overdue
        first), then due time, priority and age — the order of ``triage queue``.

        Args:
            view: which tickets (:class:`~triage.desk.values.View`); ``mine`` needs ``actor``.
            queue: only this configured queue.
            actor: who is looking (for ``mine``).
            cursor: ``next_cursor`` of the previous page; None for the first.
            limit: tickets per page (1..:data:`MAX_PAGE`); None for all of them.

        Raises:
            NotFoundError: an unknown queue. UserError: a bad view, limit or cursor.
        """
        try:
            chosen = View(view)
        except ValueError:
            names = ", ".join(v.value for v in View)
            raise UserError(f"no view {view!r} (views: {names})") from None
        if limit is not None and not 1 <= limit <= MAX_PAGE:
            raise UserError(f"a page holds 1 to {MAX_PAGE} tickets, not {limit}")
        where = self._filter(chosen, queue, actor)
        after = decode_cursor(cursor) if cursor else None
        now = self.clock.now()
        with self.db.read_session() as session:
            tickets = queue_page(
                session, where, after=after, limit=None if limit is None else limit + 1
            )
            more = limit is not None and len(tickets) > limit
            tickets = tickets[:limit] if limit is not None else tickets
            tally = queue_tally(session, now)
            rows = tuple(queue_row(t, self.policy, now) for t in tickets)
            last = QueueKey.of(tickets[-1]) if more and tickets else None
        listed = _count(tally, where)
        return QueuePage(
            view=chosen,
            queue=queue,
            rows=rows,
            total=listed.total,
            breached=listed.breached,
            next_cursor=encode_cursor(last) if last is not None else None,
            counts=self._counts(tally, actor),
        )

    def queue_stream(
        self,
        *,
        view: View | str = View.ALL,
        queue: str | None = None,
        actor: str | None = None,
        limit: int | None = None,
    ) -> Iterator[QueueRow]:
        """Every ticket of a queue view in urgency order (the first ``limit`` when given),
        read in batches as it is consumed.

        The order and rows of :meth:`queue`; memory stays flat however long the
        queue (``triage queue`` of 100,000 tickets). One read transaction for the
        whole listing (a consistent snapshot) that never takes the write lock.

        Raises:
            NotFoundError: an unknown queue. UserError: a bad view.
        """
        listing, rows = self._listing(view, queue, actor, limit)
        return (listing.row(r) for r in rows)

    def queue_json_lines(
        self,
        *,
        view: View | str = View.ALL,
        queue: str | None = None,
        actor: str | None = None,
        limit: int | None = None,
    ) -> Iterator[str]:
        """:meth:`queue_stream`'s rows as JSON objects, one string each (no newline):
        ``json.dumps(row.to_json(), ensure_ascii=False)`` of each, without building
        the rows (``triage queue --json``; about a tenth of the cost per ticket).

        Raises:
            NotFoundError: an unknown queue. UserError: a bad view.
        """
        listing, rows = self._listing(view, queue, actor, limit)
        return (listing.json_line(r) for r in rows)

    def queue_total(
        self, *, view: View | str = View.ALL, queue: str | None = None, actor: str | None = None
    ) -> int:
        """How many tickets the view lists (one indexed count).

        Raises:
            NotFoundError: an unknown queue. UserError: a bad view.
        """
        where = self._filter(_view(view), queue, actor)
        with self.db.read_session() as session:
            return count_queue(session, where)

    def _listing(
        self, view: View | str, queue: str | None, actor: str | None, limit: int | None
    ) -> tuple[QueueListing, Iterator[tuple[Any, ...]]]:
        where = self._filter(_view(view), queue, actor)
        if limit is not None and limit < 0:
            raise UserError(f"a listing holds 0 or more tickets, not {limit}")
        listing = QueueListing(self.policy, self.clock.now())

        def rows() -> Iterator[tuple[Any, ...]]:
            with self.db.read_session() as session:
                yield from queue_listing(session, where, limit=limit)

        return listing, rows()

    def counts(self, *, actor: str | None = None) -> QueueCounts:
        """How many tickets each view lists, and per configured queue (with breaches).

        One grouped query (:func:`~triage.store.tickets.queue_tally`); the same
        figures as :attr:`QueuePage.counts <triage.desk.values.QueuePage.counts>`.
        """
        now = self.clock.now()
        with self.db.read_session() as session:
            tally = queue_tally(session, now)
        return self._counts(tally, actor)

    def _counts(self, tally: Sequence[QueueTally], actor: str | None) -> QueueCounts:
        views: dict[View, QueueCount] = {}
        for view in View:
            if view is View.MINE and not actor:
                views[view] = QueueCount(0, 0)
                continue
            views[view] = _count(tally, self._filter(view, None, actor))
        queues = {name: QueueCount(0, 0) for name in self.settings.queues}
        # a queue removed from the config meanwhile still shows its tickets
        for name in sorted({t.queue for t in tally}):
            queues[name] = _count(tally, QueueFilter(queue=name))
        return QueueCounts(views=views, queues=queues)

    def attachment(self, ref: int | str, message_id: int, index: int) -> AttachmentContent:
        """The bytes of attachment ``index`` (:attr:`AttachmentView.index`) of message
        ``message_id`` of the ticket.

        Raises:
            NotFoundError: no such ticket, message of it, or attachment.
        """
        number = _number(ref)
        with self.db.read_session() as session:
            message = self._message(session, number, message_id)
            items = list(message.attachments or ())
            meta = items[index] if 0 <= index < len(items) else None
            digest = str(meta.get("sha256") or "") if isinstance(meta, dict) else ""
            data = attachment_data(message.raw, digest) if digest else None
            if meta is None or data is None:
                raise NotFoundError(
                    f"no attachment {index} in message {message_id} of {format_ref(number)}"
                )
            return AttachmentContent(
                filename=str(meta.get("filename") or ""),
                content_type=str(meta.get("content_type") or "application/octet-stream"),
                data=data,
            )

    def inline_part(self, ref: int | str, message_id: int, content_id: str) -> AttachmentContent:
        """The part a ``cid:`` URL in message ``message_id``'s HTML names (RFC 2392).

        Raises:
            NotFoundError: no such ticket, message of it, or part.
        """
        number = _number(ref)
        with self.db.read_session() as session:
            message = self._message(session, number, message_id)
            found = part_by_content_id(message.raw, content_id)
        if found is None:
            raise NotFoundError(f"no part cid:{content_id[:80]} in message {message_id}")
        return AttachmentContent(filename="", content_type=found[0], data=found[1])

    def html(self, ref: int | str, message_id: int) -> str | None:
        """The HTML body of message ``message_id`` of the ticket as sent (None when it
        has none). Unsanitized: sanitize it before showing it.

        Raises:
            NotFoundError: no such ticket or message of it.
        """
        number = _number(ref)
        with self.db.read_session() as session:
            raw = self._message(session, number, message_id).raw
        return html_body(raw)

    @staticmethod
    def _message(session: Session, number: int, message_id: int) -> Message:
        ticket = _get(session, number)
        message = ticket_message(session, ticket.id, message_id)
        if message is None:
            raise NotFoundError(f"no message {message_id} in {format_ref(number)}")
        return message

    def corrections(self, ref: int | str) -> tuple[CorrectionView, ...]:
        """The ticket's routing corrections (training labels), oldest first, each with
        the active queue model that learned from it ("" while none has).

        Raises:
            NotFoundError: no such ticket.
        """
        number = _number(ref)
        with self.db.read_session() as session:
            ticket = _get(session, number)
            labels = ticket_corrections(session, ticket.id)
            model = active_model_info(session, "queue") if labels else None
            return tuple(
                CorrectionView(
                    queue=label.queue,
                    priority=label.priority,
                    actor=label.actor,
                    at=label.created_at,
                    used_by=model.version if model and model.trained_at > label.created_at else "",
                )
                for label in labels
            )

    def show(self, ref: int | str) -> TicketView:
        """The whole ticket: messages newest first, routing explanation, deadlines in
        business time, escalations, internal notes, audit trail and its version."""
        number = _number(ref)
        with self.db.read_session() as session:
            ticket = _get(session, number)
            return ticket_view(session, ticket, self.policy, self.clock.now())

    # -- actions ----------------------------------------------------------------------

    def claim(
        self, ref: int | str, *, actor: str, expected_version: int | None = None
    ) -> ActionResult:
        """Take the ticket for ``actor`` (an assistant); ``changed`` False when already theirs.

        Raises:
            ConflictError: someone else has it, it is solved or closed, or it changed
                since ``expected_version``.
        """
        me = self.check_assistant(self._actor(actor))

        def apply(session: Session, ticket: Ticket, now: datetime) -> _Done:
            from triage.tickets.assignment import claim  # noqa: PLC0415 - the write side loads on use

            claim(session, ticket, me, now=now, expected_version=expected_version)
            return _Done()

        return self._act(ref, expected_version, apply)

    def assign(
        self,
        ref: int | str,
        assignee: str,
        *,
        actor: str,
        expected_version: int | None = None,
    ) -> ActionResult:
        """Give the ticket to ``assignee`` (an assistant), replacing anyone."""
        me = self._actor(actor)
        who = self.check_assistant(assignee)

        def apply(session: Session, ticket: Ticket, now: datetime) -> _Done:
            from triage.tickets.assignment import assign  # noqa: PLC0415 - the write side loads on use

            assign(session, ticket, who, actor=me, now=now)
            return _Done()

        return self._act(ref, expected_version, apply)

    def move(
        self,
        ref: int | str,
        *,
        actor: str,
        queue: str | None = None,
        priority: str | None = None,
        expected_version: int | None = None,
    ) -> ActionResult:
        """Correct the queue and/or the priority; stored as a training label.

        Raises:
            UserError: neither given. NotFoundError: an unknown queue or priority.
        """
        me = self._actor(actor)
        if queue is None and priority is None:
            raise UserError("move needs a queue or a priority")
        if priority is not None and priority not in {p.value for p in Priority}:
            known = ", ".join(p.value for p in Priority)
            raise NotFoundError(f"no priority {priority!r} (priorities: {known})")

        def apply(session: Session, ticket: Ticket, now: datetime) -> _Done:
            from triage.tickets.assignment import move  # noqa: PLC0415 - the write side loads on use

            move(
                session,
                ticket,
                queue,
                priority=priority,
                actor=me,
                policy=self.policy,
                now=now,
            )
            return _Done()

        return self._act(ref, expected_version, apply)

    def wait(
        self,
        ref: int | str,
        *,
        actor: str,
        until: datetime | None = None,
        expected_version: int | None = None,
    ) -> ActionResult:
        """Wait on the client: the SLA clock pauses. With ``until`` (aware, in the
        future) the ticket wakes then, or earlier when the client writes.

        Raises:
            UserError: ``until`` is naive or not in the future; the ticket is solved
                or closed (reopen it first).
        """
        me = self._actor(actor)
        if until is not None:
            if until.tzinfo is None:
                raise UserError("the time to wait until needs a time zone")
            if until <= self.clock.now():
                raise UserError("the time to wait until has already passed")
            if until > self.clock.now() + MAX_SNOOZE:
                raise UserError(
                    f"a ticket waits at most {MAX_SNOOZE.days} days: choose an earlier time"
                )

        def apply(session: Session, ticket: Ticket, now: datetime) -> _Done:
            from triage.tickets.lifecycle import set_status  # noqa: PLC0415 - the write side loads on use

            if ticket.status in _CLOSED:
                raise UserError(
                    f"{format_ref(ticket.ref or 0)} is {ticket.status}: reopen it before"
                    " waiting on the client"
                )
            set_status(
                session,
                ticket,
                TicketStatus.WAITING,
                actor=me,
                policy=self.policy,
                now=now,
                until=until,
            )
            return _Done()

        return self._act(ref, expected_version, apply)

    def done(
        self, ref: int | str, *, actor: str, expected_version: int | None = None
    ) -> ActionResult:
        """Mark the ticket solved: its clocks stop."""
        me = self._actor(actor)

        def apply(session: Session, ticket: Ticket, now: datetime) -> _Done:
            from triage.tickets.lifecycle import set_status  # noqa: PLC0415 - the write side loads on use

            set_status(session, ticket, TicketStatus.SOLVED, actor=me, policy=self.policy, now=now)
            return _Done()

        return self._act(ref, expected_version, apply)

    def reopen(
        self, ref: int | str, *, actor: str, expected_version: int | None = None
    ) -> ActionResult:
        """Reopen a solved or closed ticket (``open`` when someone has it, else ``new``)
        with a new resolution deadline; ``changed`` False when it is not solved or closed."""
        me = self._actor(actor)

        def apply(session: Session, ticket: Ticket, now: datetime) -> _Done:
            from triage.tickets.lifecycle import set_status, status_after_reopen  # noqa: PLC0415

            if ticket.status in _CLOSED:
                set_status(
                    session,
                    ticket,
                    status_after_reopen(ticket),
                    actor=me,
                    policy=self.policy,
                    now=now,
                )
            return _Done()

        return self._act(ref, expected_version, apply)

    def reply(
        self,
        ref: int | str,
        body: str,
        *,
        actor: str,
        expected_version: int | None = None,
    ) -> ActionResult:
        """Answer the client through the outbox (sent by the dispatcher), as the
        shared address, threaded to the client's latest message, ``[#ref]`` in the
        subject; the response clock stops. ``recipient`` of the result is the address.

        Raises:
            UserError: an empty body, a body over :data:`MAX_BODY_BYTES`, no ``[smtp]``
                section, no client address.
        """
        me = self._actor(actor)
        check_body_size(body, "reply")

        def apply(session: Session, ticket: Ticket, now: datetime) -> _Done:
            from triage.tickets.reply import queue_reply  # noqa: PLC0415 - the write side loads on use

            row = queue_reply(
                session,
                ticket,
                body,
                actor=me,
                settings=self.settings,
                policy=self.policy,
                now=now,
            )
            return _Done(recipient=row.rcpt_to[0])

        return self._act(ref, expected_version, apply)

    def note(
        self,
        ref: int | str,
        body: str,
        *,
        actor: str,
        expected_version: int | None = None,
    ) -> ActionResult:
        """Add an internal note (never mailed to the client). Assistants named with
        ``@name`` are recorded in ``mentions``, each to be told once by a notifier;
        ``@name`` words that name no assistant come back in ``unknown_mentions`` (the note
        is added all the same: the writer is told that nobody was notified).

        Raises:
            UserError: an empty note, or one over :data:`MAX_BODY_BYTES`.
        """
        me = self._actor(actor)
        check_body_size(body, "note")
        text = body.strip()
        if not text:
            raise UserError("the note is empty: nothing was added")
        names, unknown = _mentions(text, list(self.settings.team.assistants))

        def apply(session: Session, ticket: Ticket, now: datetime) -> _Done:
            note = TicketNote(
                ticket_id=ticket.id, author=me, body=text, mentions=list(names), created_at=now
            )
            session.add(note)
            session.flush()
            session.add_all(
                Mention(note_id=note.id, ticket_id=ticket.id, assistant=name, created_at=now)
                for name in names
            )
            record_event(
                session,
                ticket,
                actor=me,
                action="note_written",
                at=now,
                note_id=note.id,
                mentions=list(names),
            )
            session.flush()
            return _Done(note_id=note.id, mentions=names, unknown_mentions=unknown)

        return self._act(ref, expected_version, apply)

    # -- the service's own changes ----------------------------------------------------

    def wake_snoozed(self) -> list[int]:
        """Wake waiting tickets whose alarm has come (one transaction); their references."""
        from triage.tickets.lifecycle import wake  # noqa: PLC0415 - write side, on use

        now = self.clock.now()
        with self._change() as session:
            return [
                ticket.ref or 0
                for ticket in due_snoozes(session, now)
                if wake(session, ticket, policy=self.policy, now=now)
            ]

    # -- machinery --------------------------------------------------------------------

    @contextmanager
    def _change(self) -> Iterator[Session]:
        """One transaction; a concurrent change to a ticket becomes a ConflictError."""
        try:
            with self.db.session() as session:
                yield session
        except StaleDataError:
            raise ConflictError(
                "the ticket was changed by someone else meanwhile; try again"
            ) from None

    def _act(
        self,
        ref: int | str,
        expected_version: int | None,
        apply: _Apply,
    ) -> ActionResult:
        number = _number(ref)
        now = self.clock.now()
        with self._change() as session:
            ticket = _get(session, number, lock=True)
            if expected_version is not None and ticket.version != expected_version:
                raise self._conflict(session, ticket, expected_version)
            before = ticket.version
            done = apply(session, ticket, now)
            session.flush()
            written = events_since(session, ticket.id, before)
            return ActionResult(
                ref=ticket.ref or 0,
                version=ticket.version,
                changed=bool(written),
                events=tuple(event_view(e) for e in written),
                recipient=done.recipient,
                note_id=done.note_id,
                mentions=done.mentions,
                unknown_mentions=done.unknown_mentions,
            )
        raise AssertionError("unreachable")  # pragma: no cover - the block returns or raises

    def _conflict(self, session: Session, ticket: Ticket, expected: int) -> ConflictError:
        shown = format_ref(ticket.ref or 0)
        events = events_since(session, ticket.id, expected)
        changes = [
            Change(actor=e.actor, action=e.action, at=e.at, version=e.version or 0, detail=e.detail)
            for e in events
        ]
        said = "; ".join(self._describe(e) for e in events) or "it was changed"
        return ConflictError(
            f"{shown} changed since you saw it (version {expected}, now {ticket.version}): {said}",
            current_version=ticket.version,
            changes=changes,
        )

    def _describe(self, event: TicketEvent) -> str:
        d = event.detail or {}
        what = {
            "opened": "opened it",
            "claimed": "claimed it",
            "assigned": f"assigned it to {d.get('to')}",
            "moved": _moved(d),
            "status_changed": f"set it {d.get('to')}",
            "reopened": "reopened it",
            "replied": "replied to the client",
            "message_added": "added the client's new message",
            "resumed": "added the client's new message (it no longer waits)",
            "note_added": "added an automatic reply or bounce",
            "note_written": "wrote a note",
            "snoozed": f"set it to wait until {d.get('until')}",
            "escalated": "escalated it to the owners",
            "duplicate_added": "added a second copy of a message",
        }.get(event.action, event.action)
        return f"{event.actor} {what} ({local_time(self.policy.calendar, event.at)})"


def _moved(detail: dict[str, object]) -> str:
    parts = []
    if "to" in detail:
        parts.append(f"moved it from {detail.get('from')} to {detail.get('to')}")
    if "priority_to" in detail:
        old, new = detail.get("priority_from"), detail.get("priority_to")
        parts.append(f"changed its priority from {old} to {new}")
    return " and ".join(parts) or "moved it"


def _view(view: View | str) -> View:
    try:
        return View(view)
    except ValueError:
        names = ", ".join(v.value for v in View)
        raise UserError(f"no view {view!r} (views: {names})") from None


def _count(tally: Sequence[QueueTally], where: QueueFilter) -> QueueCount:
    """The tickets (and breached ones) of ``tally`` that ``where`` lists."""
    listed = [t for t in tally if where.lists(t)]
    return QueueCount(sum(t.tickets for t in listed), sum(t.breached for t in listed))


def _number(ref: int | str) -> int:
    return ref if isinstance(ref, int) else parse_ref(ref)


def _get(session: Session, number: int, *, lock: bool = False) -> Ticket:
    ticket = ticket_by_ref(session, number, lock=lock)
    if ticket is None:
        raise NotFoundError(f"no ticket {format_ref(number)}")
    return ticket
