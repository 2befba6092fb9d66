"""triage: a shared inbox sorted into assistant queues, with SLA deadlines and acknowledgments."""

__version__ = "0.1.0"
