"""Is each long-running loop of the daemon still making progress? (the watchdog's question)

Every loop of the daemon already polls its stop signal between two steps: the
intake watchers between IDLE slices, fetched messages and back-off sleeps; the
dispatcher between outbox rows and sleeps; the SLA watch between passes. A loop
that no longer polls its stop signal is stuck (a hung socket read, a deadlock)
and could not be stopped gracefully either. So the stop signals handed to the
loops are :class:`ProgressEvent` / :class:`ThreadProgressEvent`: each poll
records a beat for the polling loop, named by its asyncio task (``dispatch``,
``sla-watch``) or its thread (``imap-INBOX``). :meth:`Liveness.stalled` lists
the expected loops whose last beat is older than their limit; the daemon sends
systemd's ``WATCHDOG=1`` only while that list is empty.

The clock is ``time.monotonic`` (immune to wall-clock jumps), in seconds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "Liveness",
    "ProgressEvent",
    "Stall",
    "ThreadProgressEvent",
    "child_event",
    "current_loop_name",
]

WAIT_SLICE = 1.0
"""Seconds: a thread waiting on its stop event beats at least this often."""


def current_loop_name() -> str:
    """The name of the running asyncio task, else of the current thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop in this thread
        task = None
    if task is not None:
        return task.get_name()
    return threading.current_thread().name


@dataclass(frozen=True, slots=True)
class Stall:
    """An expected loop without progress for longer than its limit.

    Attributes:
        loop: its name (``imap-INBOX``, ``dispatch``, ``sla-watch``).
        silent_for: seconds since its last beat (or since it was expected).
        limit: the seconds it was allowed.
    """

    loop: str
    silent_for: float
    limit: float

    def describe(self) -> str:
        """``imap-INBOX: no progress for 312 s (limit 300 s)``."""
        return f"{self.loop}: no progress for {self.silent_for:.0f} s (limit {self.limit:.0f} s)"


class Liveness:
    """The last beat of each loop, and which expected loops have gone silent.

    Thread-safe: loops beat from their own threads and tasks.

    Args:
        clock: monotonic seconds (``time.monotonic``; tests pass their own).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._beats: dict[str, float] = {}
        self._limits: dict[str, float] = {}

    def expect(self, loop: str, limit: float) -> None:
        """Watch ``loop``: it must beat at least every ``limit`` seconds from now on."""
        with self._lock:
            self._limits[loop] = limit
            self._beats[loop] = self._clock()

    def beat(self, loop: str | None = None) -> None:
        """Record progress of ``loop`` (default: the calling task or thread)."""
        name = loop if loop is not None else current_loop_name()
        now = self._clock()
        with self._lock:
            self._beats[name] = now

    def silence(self) -> dict[str, float]:
        """Seconds since the last beat of each expected loop."""
        now = self._clock()
        with self._lock:
            return {loop: now - self._beats[loop] for loop in self._limits}

    def stalled(self) -> list[Stall]:
        """The expected loops silent for longer than their limit, by name."""
        now = self._clock()
        with self._lock:
            return [
                Stall(loop, now - self._beats[loop], limit)
                for loop, limit in sorted(self._limits.items())
                if now - self._beats[loop] > limit
            ]

    def async_event(self) -> ProgressEvent:
        """A new asyncio stop event whose polls beat for the polling task."""
        return ProgressEvent(self)

    def thread_event(self) -> ThreadProgressEvent:
        """A new threading stop event whose polls and waits beat for the polling thread."""
        return ThreadProgressEvent(self)


class ProgressEvent(asyncio.Event):
    """An :class:`asyncio.Event` used as a stop signal; ``is_set()`` beats for the caller."""

    def __init__(self, liveness: Liveness) -> None:
        super().__init__()
        self.liveness = liveness

    def is_set(self) -> bool:
        """Whether the event is set; records a beat for the calling task."""
        self.liveness.beat()
        return super().is_set()


class ThreadProgressEvent(threading.Event):
    """A :class:`threading.Event` used as a stop signal by loops in threads.

    ``is_set()`` beats for the calling thread; ``wait()`` waits in slices of at
    most :data:`WAIT_SLICE` seconds and beats after each, so a loop sleeping
    through a long back-off still counts as alive.
    """

    def __init__(self, liveness: Liveness) -> None:
        super().__init__()
        self.liveness = liveness

    def is_set(self) -> bool:
        """Whether the event is set; records a beat for the calling thread."""
        self.liveness.beat()
        return super().is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set or ``timeout`` seconds (None: forever), beating every slice."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            self.liveness.beat()
            left = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - time.monotonic())
            if left <= 0:
                return super().is_set()
            if super().wait(left):
                return True


def child_event(parent: threading.Event) -> threading.Event:
    """A new stop event for a loop run on behalf of the loop that polls ``parent``.

    E.g. the intake's per-folder thread runs a watcher with its own stop event
    while it holds the folder's worker lease: polls of that event must count as
    the thread's progress too. Returns a :class:`ThreadProgressEvent` on the same
    :class:`Liveness` when ``parent`` is one, else a plain event.
    """
    if isinstance(parent, ThreadProgressEvent):
        return ThreadProgressEvent(parent.liveness)
    return threading.Event()
