"""Saved replies (``[[web.saved_replies]]``) filled in for one ticket."""

from __future__ import annotations

from dataclasses import dataclass

from triage.config import SAVED_REPLY_VARIABLES, SavedReply, Settings
from triage.desk import TicketView
from triage.web.i18n import Translator, translator

__all__ = ["FilledReply", "saved_replies_for"]


@dataclass(frozen=True)
class FilledReply:
    """A saved reply with its variables filled in for one ticket."""

    name: str
    language: str
    text: str


class _Values(dict[str, str]):
    def __missing__(self, key: str) -> str:  # validated at config load; never reached
        return "{" + key + "}"


def saved_replies_for(
    settings: Settings, ticket: TicketView, *, assistant: str, t: Translator
) -> list[FilledReply]:
    """The saved replies offered on ``ticket`` (its queue's and the general ones), filled.

    Variables (:data:`~triage.config.SAVED_REPLY_VARIABLES`): the client's name (the
    address when there is none) and address, ``#ref``, the subject, the next
    deadline in the business's time zone, the assistant's name, the office's name.
    """
    due = ticket.next_deadline.due_at if ticket.next_deadline is not None else None

    def values(language: str) -> _Values:
        """The variables, the deadline written in the reply's own language."""
        filled = _Values(
            client_name=ticket.client.name or ticket.client.addr,
            client_address=ticket.client.addr,
            ref=f"#{ticket.ref}",
            subject=ticket.subject,
            deadline=translator(language, t.zone).local(due) if due is not None else "",
            assistant=assistant,
            team=settings.team.name,
        )
        assert set(filled) == set(SAVED_REPLY_VARIABLES)  # noqa: S101 - in step with config
        return filled

    offered: list[SavedReply] = [
        r for r in settings.web.saved_replies if not r.queues or ticket.queue in r.queues
    ]
    return [
        FilledReply(r.name, r.language, r.text.format_map(values(r.language or t.language)))
        for r in offered
    ]
