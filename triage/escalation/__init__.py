"""Escalation: who hears of SLA warnings, breaches and rules' escalations, and the mail.

- :mod:`.recipients` (pure): the one rule for who is told.
- :mod:`.mail`: un-notified escalation rows to outbox mail, in the caller's transaction.
- :mod:`.mentions`: an assistant named with ``@name`` in a note is told by mail.
"""

from triage.escalation.mail import EscalationMailStats, mail_escalations
from triage.escalation.mentions import mail_mentions
from triage.escalation.recipients import Recipient, owner_recipients, warning_recipients

__all__ = [
    "EscalationMailStats",
    "Recipient",
    "mail_escalations",
    "mail_mentions",
    "owner_recipients",
    "warning_recipients",
]
