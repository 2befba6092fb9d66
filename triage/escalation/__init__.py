"""Escalation: detection, who hears of what, and telling them, in one package.

- :mod:`.sla`: the SLA watch, which raises warning and breach rows.
  (A rule's escalation is raised by the pipeline through
  :func:`triage.tickets.record_rule_escalation`.)
- :mod:`.history` (pure): the one rule for "history is not escalated".
- :mod:`.recipients` (pure): the one rule for who is told.
- :mod:`.notify`: the :class:`Notifier` seam and the pass over un-notified rows.
- :mod:`.mail`: the e-mail notifier, the first one.
- :mod:`.mentions`: an assistant named with ``@name`` in a note is told by mail.
"""

from triage.escalation.history import history_reason
from triage.escalation.mail import EmailNotifier, mail_escalations
from triage.escalation.mentions import mail_mentions
from triage.escalation.notify import (
    NOTIFIERS,
    Notifier,
    NotifyStats,
    Pending,
    make_notifier,
    notify_escalations,
    pending_escalations,
)
from triage.escalation.recipients import Recipient, owner_recipients, warning_recipients
from triage.escalation.sla import scan

__all__ = [
    "NOTIFIERS",
    "EmailNotifier",
    "Notifier",
    "NotifyStats",
    "Pending",
    "Recipient",
    "history_reason",
    "mail_escalations",
    "mail_mentions",
    "make_notifier",
    "notify_escalations",
    "owner_recipients",
    "pending_escalations",
    "scan",
    "warning_recipients",
]
