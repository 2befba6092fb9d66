"""Refused ticket forms kept for one redirect: POST-redirect-GET that keeps the typed text.

A reply or action refused (409: the ticket changed since the page was rendered;
422: a bad value) used to be answered by the POST itself, so reloading that page
posted the form again. Now the refusal (what changed or what was wrong, and the text
the person typed) is kept here under a random token, the POST answers ``303 See
Other`` to ``/t/REF?refused=TOKEN``, and that GET shows the ticket with the refusal
and the typed text, answering 200 (RFC 9110 section 15.4.4: the 303 makes the browser's reload a
GET). Only the login that was refused can read it back.

Kept in the process's memory only (the text typed for a client is not written to the
database), for :data:`KEEP` and at most :data:`MOST` refusals; a token that expired
or was never given shows the ticket without the refusal.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from triage.errors import ConflictError

__all__ = ["KEEP", "MOST", "Refusal", "Refusals"]

KEEP = timedelta(minutes=30)
"""How long a refusal can be shown again (reloaded) after its POST."""

MOST = 1000
"""The most refusals kept at once; the oldest go first."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused form on a ticket page.

    Attributes:
        ref: the ticket's reference.
        session_id: the login (``web_sessions`` row) that sent the form.
        status_code: the kind of refusal: 409 (changed meanwhile: ``conflict``) or 422
            (``error``); the page showing it answers 200 (no console error).
        conflict: who changed what since the page was rendered; None for a 422.
        error: why the value was refused ("" for a 409).
        typed: the text typed in the form (``body``, ``note``).
        at: when it was refused (aware).
    """

    ref: int
    session_id: int
    status_code: int
    conflict: ConflictError | None
    error: str
    typed: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    at: datetime | None = None


class Refusals:
    """Refusals by token (thread-safe: the handlers run in a thread pool)."""

    def __init__(self, *, keep: timedelta = KEEP, most: int = MOST) -> None:
        self.keep = keep
        self.most = most
        self._kept: OrderedDict[str, Refusal] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, refusal: Refusal) -> str:
        """Keep ``refusal`` (its ``at`` set) and return its token (URL-safe, 128 bits)."""
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._kept[token] = refusal
            while len(self._kept) > self.most:
                self._kept.popitem(last=False)
        return token

    def get(self, token: str, *, session_id: int, ref: int, now: datetime) -> Refusal | None:
        """The refusal under ``token`` if it is this login's, on this ticket, and not
        older than :attr:`keep`; else None. It stays (a second reload shows it too)."""
        with self._lock:
            refusal = self._kept.get(token)
            if refusal is not None and refusal.at is not None and now - refusal.at > self.keep:
                del self._kept[token]
                return None
        if refusal is None or refusal.session_id != session_id or refusal.ref != ref:
            return None
        return refusal
