"""Reconnection delays: exponential back-off with jitter (pure; the randomness is injected)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays in seconds before reconnect attempts: 1, 2, 4 ... capped at ``maximum``.

    Attempt ``n`` (1-based) waits a random time in ``[d/2, d]`` where
    ``d = min(maximum, initial * 2**(n-1))`` ("equal jitter"), so many clients
    dropped at once by the same server do not come back in lock-step.

    Attributes:
        initial: delay of the first attempt before jitter, seconds (> 0).
        maximum: cap of the delay before jitter, seconds.
        uniform: the random source ``uniform(a, b)``; tests pass a fixed one.
        attempt: attempts made since the last :meth:`reset`.
    """

    initial: float = 1.0
    maximum: float = 300.0
    uniform: Callable[[float, float], float] = field(default=random.uniform, repr=False)
    attempt: int = 0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError("need 0 < initial <= maximum")

    def ceiling(self, attempt: int) -> float:
        """The delay before jitter for a 1-based ``attempt``, seconds."""
        exponent = min(attempt - 1, 64)  # 2**64 * initial is past any sane maximum
        return min(self.maximum, self.initial * 2.0**exponent)

    def next_delay(self) -> float:
        """Count one more attempt and return how long to wait before it, seconds."""
        self.attempt += 1
        ceiling = self.ceiling(self.attempt)
        return self.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from ``initial`` (call after a successful round trip)."""
        self.attempt = 0
