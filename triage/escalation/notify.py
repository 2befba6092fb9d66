"""The notifier seam: how people hear of escalations.

:func:`notify_escalations` reads the escalation rows nobody has been told of yet
(``notified_at IS NULL``) with their tickets, and hands them to a :class:`Notifier`
in the caller's transaction. The notifier tells whom it should (the rule is
:mod:`.recipients`), and sets ``notified_at`` on each row it has dealt with, in the
same transaction as what it wrote (outbox rows for the e-mail notifier), so a row
is told of once. A row it leaves un-notified (one an e-mail digest holds until its
period ends) comes back at the next pass.

The e-mail notifier (:class:`~triage.escalation.mail.EmailNotifier`) is the first
implementation; a chat notifier is one more class with this method, and a name in
:data:`NOTIFIERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.errors import ConfigError
from triage.store.models import Escalation, Ticket

__all__ = [
    "NOTIFIERS",
    "Notifier",
    "NotifyStats",
    "Pending",
    "make_notifier",
    "notify_escalations",
    "pending_escalations",
]


@dataclass(frozen=True, slots=True)
class NotifyStats:
    """What one notifier pass did.

    Attributes:
        mailed: escalation and warning rows told of in a message of their own.
        digested: owner escalations told of in a digest.
        skipped: rows marked notified without telling anyone (nobody to tell).
        outbox_ids: the outbox rows written (the e-mail notifier's).
    """

    mailed: int = 0
    digested: int = 0
    skipped: int = 0
    outbox_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Pending:
    """One escalation nobody has been told of yet, and its ticket (rows of the session)."""

    escalation: Escalation
    ticket: Ticket

    @property
    def is_warning(self) -> bool:
        """True for an SLA warning (for the assistants), False for a breach or a rule's
        escalation (for the owners)."""
        return self.escalation.kind.startswith("warning")


class Notifier(Protocol):
    """Tells people of escalations; one implementation per channel (e-mail first)."""

    name: str
    """The channel's name, as :data:`NOTIFIERS` knows it (``email``)."""

    def notify(self, session: Session, pending: Sequence[Pending], now: datetime) -> NotifyStats:
        """Tell of ``pending`` (oldest first) and set ``notified_at`` on the rows dealt with.

        Runs in the caller's transaction: flushes, never commits.

        Raises:
            ConfigError: the channel is not configured usably (a missing template, ...).
        """
        ...


def pending_escalations(session: Session) -> list[Pending]:
    """The escalation rows with ``notified_at IS NULL`` and their tickets, oldest first."""
    rows = session.execute(
        select(Escalation, Ticket)
        .join(Ticket, Ticket.id == Escalation.ticket_id)
        .where(Escalation.notified_at.is_(None))
        .order_by(Escalation.id)
    ).all()
    return [Pending(escalation, ticket) for escalation, ticket in rows]


def notify_escalations(session: Session, notifier: Notifier, now: datetime) -> NotifyStats:
    """Hand every un-notified escalation to ``notifier`` (see the module docstring).

    Raises:
        ConfigError: from the notifier.
    """
    return notifier.notify(session, pending_escalations(session), now)


def _email(settings: Settings) -> Notifier:
    from triage.escalation.mail import EmailNotifier  # noqa: PLC0415 - Jinja2 when used

    return EmailNotifier(settings)


NOTIFIERS: dict[str, Callable[[Settings], Notifier]] = {"email": _email}
"""The notifier of each channel name, built from the settings."""


def make_notifier(settings: Settings, name: str = "email") -> Notifier:
    """The notifier called ``name`` (:data:`NOTIFIERS`), built from ``settings``.

    Raises:
        ConfigError: no notifier has that name.
    """
    make = NOTIFIERS.get(name)
    if make is None:
        raise ConfigError(f"no escalation notifier called {name!r}; known: {', '.join(NOTIFIERS)}")
    return make(settings)
