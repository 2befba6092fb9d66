"""Observers of log events: the structlog processor that lets metrics follow the logs.

The daemon's log events are a stable vocabulary (STYLE.md: ``message_stored``,
``imap_reconnecting`` ...). :func:`event_tap`, installed by
:func:`triage.logs.configure_logging` ahead of the level filter, hands every event
to the attached observers (:class:`triage.metrics.TriageMetrics`), so counters do
not depend on the log level and no intake, routing or dispatch code knows about
them. Kept free of heavy imports: every CLI command loads it.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Protocol

from structlog.typing import EventDict, WrappedLogger

__all__ = ["EventObserver", "attach", "detach", "event_tap"]


class EventObserver(Protocol):
    """Something that wants every log event (name and fields)."""

    def observe(self, event: str, fields: EventDict) -> None:
        """Take note of one event; must be quick and must not keep ``fields``."""
        ...


_LOCK = threading.Lock()
_OBSERVERS: tuple[EventObserver, ...] = ()


def attach(observer: EventObserver) -> None:
    """Hand ``observer`` every log event from now on."""
    global _OBSERVERS  # noqa: PLW0603 - one process-wide list, like structlog's own config
    with _LOCK:
        if observer not in _OBSERVERS:
            _OBSERVERS = (*_OBSERVERS, observer)


def detach(observer: EventObserver) -> None:
    """Stop handing events to ``observer``."""
    global _OBSERVERS  # noqa: PLW0603
    with _LOCK:
        _OBSERVERS = tuple(o for o in _OBSERVERS if o is not observer)


def event_tap(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: give the event to each observer; never raises, never changes it."""
    observers = _OBSERVERS
    event = event_dict.get("event")
    if observers and isinstance(event, str):
        for observer in observers:
            # a metrics bug must not cost a log line
            with contextlib.suppress(Exception):
                observer.observe(event, event_dict)
    return event_dict
