"""The daemon's watchdog: ``WATCHDOG=1`` to systemd only while every loop makes progress.

Each check asks :class:`~triage.liveness.Liveness` which expected loops (the
intake watchers, the dispatcher, the SLA watch) have gone silent for longer than
their limit. None: ``WATCHDOG=1`` (when systemd's watchdog is on). Some: the ping
is withheld, ``STATUS=`` names the stalled loops and ``loop_stalled`` is logged
once per stall; systemd then kills and restarts the service once ``WatchdogSec``
passes without a ping (``Restart=on-failure`` in deploy/triage.service). A loop
that resumes is logged ``loop_recovered`` and the pings start again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from triage.liveness import Liveness, Stall
from triage.systemd import SystemdNotifier

__all__ = ["Watchdog"]

log = structlog.get_logger("triage.watchdog")

CHECK_INTERVAL = 5.0
"""Seconds between checks when systemd's watchdog is off (stalls are still logged)."""


class Watchdog:
    """Pings systemd while all loops progress; withholds the ping and says why otherwise.

    Args:
        liveness: the loops' beats and limits.
        notifier: where ``WATCHDOG=1`` and ``STATUS=`` go.
        interval: seconds between pings (half ``WatchdogSec``); 0 when systemd's
            watchdog is off, then checks run every :data:`CHECK_INTERVAL` seconds
            and only log.
        running_status: the ``STATUS=`` text while everything is fine (restored
            after a stall ends).
        attention: returns what needs a person while no loop is stalled (a folder's
            login refused, the SMTP login refused ...), "" when nothing does; it
            replaces ``running_status`` in ``STATUS=`` while non-empty. Called at
            each check; it must not raise.
    """

    def __init__(
        self,
        liveness: Liveness,
        notifier: SystemdNotifier,
        *,
        interval: float,
        running_status: str = "running",
        attention: Callable[[], str] | None = None,
    ) -> None:
        self.liveness = liveness
        self.notifier = notifier
        self.interval = interval
        self.running_status = running_status
        self.attention = attention
        self._status = running_status  # what READY=1 came with
        self._stalled: frozenset[str] = frozenset()
        self.pings = 0
        """WATCHDOG=1 messages sent (for tests and metrics)."""

    def check(self) -> list[Stall]:
        """One check: ping when no loop is stalled, else withhold it. Returns the stalls."""
        stalls = self.liveness.stalled()
        names = frozenset(s.loop for s in stalls)
        for stall in stalls:
            if stall.loop not in self._stalled:
                log.error(
                    "loop_stalled",
                    loop=stall.loop,
                    silent_for=round(stall.silent_for, 1),
                    limit=stall.limit,
                    watchdog=self.interval > 0,
                )
        for loop in sorted(self._stalled - names):
            log.warning("loop_recovered", loop=loop)
        if stalls:
            self._status = ""
            if names != self._stalled:
                self.notifier.status(
                    "stalled: "
                    + "; ".join(s.describe() for s in stalls)
                    + (" (watchdog withheld)" if self.interval > 0 else "")
                )
        else:
            text = (self.attention() if self.attention is not None else "") or (self.running_status)
            if self._stalled or text != self._status:
                self.notifier.status(text)
                self._status = text
            if self.interval > 0 and self.notifier.watchdog():
                self.pings += 1
        self._stalled = names
        return stalls

    async def run(self, stop: asyncio.Event) -> None:
        """Check every ``interval`` (or :data:`CHECK_INTERVAL`) seconds until ``stop`` is set."""
        period = self.interval if self.interval > 0 else CHECK_INTERVAL
        while not stop.is_set():
            self.check()
            try:
                await asyncio.wait_for(stop.wait(), timeout=period)
            except TimeoutError:
                continue
