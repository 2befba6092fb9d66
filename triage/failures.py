"""A failure that repeats, logged as one episode: a line when it starts, one when it ends.

A periodic job (the SLA watch every 30 s, the model check every minute) that fails
while the disk is full or the database is away used to log a full traceback on every
attempt (56 in a one-minute disk-full episode). :class:`RepeatedFailure` logs the
first failure with its traceback, counts the rest silently (a different error is
logged once too, without traceback), and logs ``<job>_recovered`` with the count and
the duration when the job succeeds again.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["RepeatedFailure"]


class RepeatedFailure:
    """One episode of a job's failures (not thread-safe: one per loop).

    Args:
        logger: a structlog logger.
        job: the job's name; events are ``<job>_failed`` and ``<job>_recovered``.
        fields: context logged with both (``folder=...``).
    """

    def __init__(self, logger: Any, job: str, **fields: Any) -> None:
        self.logger = logger
        self.job = job
        self.fields = fields
        self._failed_event = f"{job}_failed"
        self._recovered_event = f"{job}_recovered"
        self.failures = 0
        self._since = 0.0
        self._errors: set[str] = set()

    def failed(self, exc: BaseException) -> None:
        """Count a failure (call in the ``except`` block): the first of an episode is
        logged with its traceback, a new kind of error once as a line, the rest only
        counted."""
        self.failures += 1
        error = f"{type(exc).__name__}: {exc}"
        if self.failures == 1:
            self._since = time.monotonic()
            self._errors = {error}
            self.logger.error(self._failed_event, exc_info=exc, **self.fields)
        elif error not in self._errors and len(self._errors) < 10:
            self._errors.add(error)
            self.logger.error(
                self._failed_event, error=error, failures=self.failures, **self.fields
            )

    def succeeded(self) -> None:
        """The job worked: ends an episode (``<job>_recovered`` with its count)."""
        if self.failures:
            self.logger.info(
                self._recovered_event,
                failures=self.failures,
                seconds=round(time.monotonic() - self._since, 1),
                **self.fields,
            )
        self.failures = 0
