"""Who hears of an escalation: the one rule for SLA warnings and for owner escalations. Pure.

- An SLA warning (``warning_<target>``) goes to the ticket's assignee when
  ``[team.assistants]`` gives that name an address; otherwise (nobody has the ticket,
  or the assignee has no address) to the queue's assistants (``queues.<q>.assistants``)
  who have one. Never to the owners.
- A breach and a rule's escalation go to ``[owners] addresses`` and nobody else.

Either list may be empty: then nobody is mailed and the escalation is recorded only.
"""

from __future__ import annotations

from collections.abc import Iterable

from triage.config import Settings
from triage.outbox.headers import parse_mailbox

__all__ = ["Recipient", "owner_recipients", "warning_recipients"]

Recipient = tuple[str, str]
"""(display name, bare address) of one person to tell."""


def addresses(texts: Iterable[str]) -> list[Recipient]:
    """``Name <addr>`` texts as (name, address) pairs: unusable ones and repeats
    (addresses compared without case) left out, order kept."""
    found: list[Recipient] = []
    seen: set[str] = set()
    for text in texts:
        name, addr = parse_mailbox(text)
        if addr and addr.lower() not in seen:
            seen.add(addr.lower())
            found.append((name, addr))
    return found


def warning_recipients(settings: Settings, *, assignee: str | None, queue: str) -> list[Recipient]:
    """Who gets an SLA warning of a ticket in ``queue`` assigned to ``assignee``.

    Args:
        settings: the configuration (``[team.assistants]``, ``queues.<q>.assistants``).
        assignee: the ticket's assignee (a name), None or "" when nobody has it.
        queue: the ticket's queue.

    Returns:
        The assignee's address when ``[team.assistants]`` has one; else those of the
        queue's assistants; possibly empty.
    """
    people = settings.team.assistants
    if assignee and assignee in people:
        return addresses([people[assignee]])
    queue_settings = settings.queues.get(queue)
    names = queue_settings.assistants if queue_settings is not None else []
    return addresses(people[name] for name in names if name in people)


def owner_recipients(settings: Settings) -> list[Recipient]:
    """Who gets a breach or a rule's escalation: ``[owners] addresses`` (possibly none)."""
    return addresses(settings.owners.addresses)
