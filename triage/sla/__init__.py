"""Business time: the working calendar, SLA deadlines and how to say them.

Pure (no I/O, no clock): every function takes the current time as a parameter.

- :class:`BusinessCalendar`: working hours in an IANA zone with holidays; business-time
  arithmetic (``add``, ``elapsed``, ``is_open``, ``next_open``).
- :class:`SlaPolicy`, :class:`SlaKind`, :class:`Deadline`: targets per queue and priority,
  due and warning times, pauses.
- :func:`describe_due`: ``"due in 2h 10m"`` / ``"overdue by 35m"``.
"""

from triage.sla.calendar import BusinessCalendar
from triage.sla.deadlines import Deadline, SlaKind, SlaPolicy
from triage.sla.humanize import describe_due, format_business_seconds

__all__ = [
    "BusinessCalendar",
    "Deadline",
    "SlaKind",
    "SlaPolicy",
    "describe_due",
    "format_business_seconds",
]
