"""The health verdict: the one answer ``triage status``, ``/health`` and ``/metrics`` share.

:func:`read_health` reads :class:`~triage.services.status.Status` exactly as
``triage status`` does (the same watched folders, the same SLA policy); the
verdict and its reasons are :attr:`Status.problems`. A database that cannot be
read is unhealthy too, with that as the reason.

For a web app: ``Health.http()`` gives the status code (200 healthy, 503 not)
and the JSON body; :func:`health_asgi_app` is a plain ASGI app serving it, to
mount at ``/health`` (no web framework needed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from triage.clock import utcnow
from triage.config import Settings
from triage.errors import StoreError
from triage.services.status import Status, read_status
from triage.store import Database
from triage.store.db import describe_error

__all__ = ["Health", "health_asgi_app", "read_health", "watched_folders"]


def watched_folders(settings: Settings) -> list[str]:
    """The folders the config says to watch (``imap.folders`` and ``imap.sent_folder``)."""
    if settings.imap is None:
        return []
    return [*settings.imap.folders, *filter(None, [settings.imap.sent_folder])]


@dataclass(frozen=True)
class Health:
    """The verdict at one moment.

    Attributes:
        status: what ``triage status`` shows; None when the database could not be read.
        error: why it could not be read ("" when it was).
    """

    status: Status | None
    error: str = ""

    @property
    def problems(self) -> list[str]:
        """The reasons for attention ([] when healthy)."""
        if self.status is None:
            return [f"database: {self.error}"]
        return self.status.problems

    @property
    def healthy(self) -> bool:
        """True when there is no problem."""
        return not self.problems

    def http(self) -> tuple[int, dict[str, Any]]:
        """``(200 or 503, JSON body)``: the body is ``triage status --json`` (with
        ``healthy`` and ``problems``), or just those two when the database is down."""
        body: dict[str, Any] = (
            self.status.to_json()
            if self.status is not None
            else {"healthy": False, "problems": self.problems}
        )
        return (200 if self.healthy else 503), body


def read_health(db: Database, settings: Settings, now: datetime | None = None) -> Health:
    """Read the verdict as of ``now`` (default: the current time, UTC). Never raises for
    a database failure: that is the verdict."""
    moment = now or utcnow()
    try:
        with db.read_session() as session:
            status = read_status(session, moment, watched=watched_folders(settings))
    except SQLAlchemyError as exc:
        return Health(None, describe_error(exc))
    except StoreError as exc:
        return Health(None, str(exc))
    return Health(status)


ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def health_asgi_app(
    check: Callable[[], Health],
) -> Callable[[MutableMapping[str, Any], ASGIReceive, ASGISend], Awaitable[None]]:
    """A plain ASGI app answering any GET with ``check()``'s verdict as JSON (200 / 503).

    ``check`` runs in a worker thread (it reads the database). Mount it at
    ``/health``, e.g. with Starlette: ``Mount("/health", app=health_asgi_app(...))``.
    """

    async def app(scope: MutableMapping[str, Any], _receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        if scope.get("method", "GET") not in {"GET", "HEAD"}:
            await send(
                {
                    "type": "http.response.start",
                    "status": 405,
                    "headers": [(b"allow", b"GET, HEAD"), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        code, body = (await asyncio.to_thread(check)).http()
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(data)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        head = scope.get("method") == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else data})

    return app
