"""Live updates: server-sent events from the audit log (``ticket_events``), and presence.

``ticket_events.id`` only grows, so it is the SSE ``id:``: a browser that lost the
connection comes back with ``Last-Event-ID`` and gets every event after it (WHATWG
HTML, "Server-sent events", section 9.2). One :class:`EventHub` per app polls the
database for new events (about four times a second; works on SQLite and PostgreSQL
and across processes: the daemon writes, the page reads) and fans them out to
every open stream.

Presence (who is looking at which ticket, who is writing a reply) is advisory and
kept in memory: each open ticket page is one stream registered under its ticket.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from sqlalchemy import select
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from triage.store import Database
from triage.store.models import Ticket, TicketEvent
from triage.web.auth import viewer_of
from triage.web.context import web_of

__all__ = ["EventHub", "LiveEvent", "Presence", "events", "typing"]

POLL_SECONDS = 0.25
CATCH_UP_LIMIT = 500
"""Events sent at most when a stream resumes (older ones: the page reloads its lists)."""
TYPING_SECONDS = 20.0


@dataclass(frozen=True)
class LiveEvent:
    """One audit event as the page needs it."""

    id: int
    ref: int
    actor: str
    action: str
    detail: dict[str, Any]


def read_events(db: Database, after: int, limit: int = CATCH_UP_LIMIT) -> list[LiveEvent]:
    """Events with id greater than ``after``, oldest first."""
    with db.read_session() as session:
        rows = session.execute(
            select(
                TicketEvent.id,
                Ticket.ref,
                TicketEvent.actor,
                TicketEvent.action,
                TicketEvent.detail,
            )
            .join(Ticket, Ticket.id == TicketEvent.ticket_id)
            .where(TicketEvent.id > after)
            .order_by(TicketEvent.id)
            .limit(limit)
        ).all()
    return [LiveEvent(r[0], int(r[1] or 0), r[2], r[3], dict(r[4] or {})) for r in rows]


def last_event_id(db: Database) -> int:
    """The newest event's id (0 when there is none)."""
    with db.read_session() as session:
        return int(session.scalar(select(TicketEvent.id).order_by(TicketEvent.id.desc())) or 0)


@dataclass
class Presence:
    """Who has which ticket open, and who is typing a reply on it (in memory)."""

    viewing: dict[int, dict[int, str]] = field(default_factory=lambda: defaultdict(dict))
    """ticket ref -> {stream id: user name}."""
    typing: dict[tuple[int, str], float] = field(default_factory=dict)
    """(ticket ref, user name) -> monotonic time of the last keystroke."""
    version: int = 0

    def join(self, ref: int, stream: int, name: str) -> None:
        """A ticket page opened."""
        self.viewing[ref][stream] = name
        self.version += 1

    def leave(self, ref: int, stream: int) -> None:
        """A ticket page closed."""
        self.viewing[ref].pop(stream, None)
        if not self.viewing[ref]:
            del self.viewing[ref]
        self.version += 1

    def typed(self, ref: int, name: str) -> None:
        """``name`` is writing on ticket ``ref``."""
        self.typing[(ref, name)] = time.monotonic()
        self.version += 1

    def snapshot(self) -> dict[str, list[str]]:
        """``{"1042": ["anna", "bela (replying)"]}`` for every ticket someone has open."""
        now = time.monotonic()
        for key, at in list(self.typing.items()):
            if now - at > TYPING_SECONDS:
                del self.typing[key]
                self.version += 1
        out: dict[str, list[str]] = {}
        for ref, streams in self.viewing.items():
            names = sorted(set(streams.values()))
            out[str(ref)] = [f"{n} ✎" if (ref, n) in self.typing else n for n in names]
        return out


class EventHub:
    """Polls ``ticket_events`` and hands new events to every open stream."""

    def __init__(self, db: Database, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self.presence = Presence()
        self._queues: set[asyncio.Queue[LiveEvent | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._last = -1
        self._streams = 0

    def next_stream_id(self) -> int:
        """A number for a new stream (presence bookkeeping)."""
        self._streams += 1
        return self._streams

    async def subscribe(self) -> asyncio.Queue[LiveEvent | None]:
        """A queue receiving every new event; start polling when it is the first."""
        queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(maxsize=1000)
        if self._last < 0:
            self._last = await anyio.to_thread.run_sync(last_event_id, self.db)
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll(), name="web-events")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[LiveEvent | None]) -> None:
        """Stop delivering to ``queue``."""
        self._queues.discard(queue)

    @property
    def last(self) -> int:
        """The newest event id the hub has seen."""
        return self._last

    async def _poll(self) -> None:
        while self._queues:
            try:
                fresh = await anyio.to_thread.run_sync(read_events, self.db, self._last)
            except Exception:  # noqa: BLE001 - a database hiccup must not end live updates
                fresh = []
            for event in fresh:
                self._last = max(self._last, event.id)
                for queue in list(self._queues):
                    if queue.full():  # a stalled browser: drop it, it will reconnect
                        self._queues.discard(queue)
                        queue.put_nowait(None) if not queue.full() else None
                        continue
                    queue.put_nowait(event)
            await asyncio.sleep(self.poll_seconds)


def hub_of(request: Request) -> EventHub:
    """The app's :class:`EventHub` (created on first use)."""
    state = request.app.state
    hub: EventHub | None = getattr(state, "hub", None)
    if hub is None:
        hub = EventHub(web_of(request).db)
        state.hub = hub
    return hub


def _resume_from(request: Request) -> int | None:
    raw = request.headers.get("last-event-id", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


async def events(request: Request) -> Response:
    """GET /events[?ticket=REF]: the live stream (login required; 401 otherwise)."""
    viewer = await anyio.to_thread.run_sync(viewer_of, request)
    if viewer is None:
        return Response("login required\n", status_code=401, media_type="text/plain")
    hub = hub_of(request)
    raw_ref = request.query_params.get("ticket", "")
    ref = int(raw_ref) if raw_ref.isdigit() and len(raw_ref) < 10 else None
    resume = _resume_from(request)
    t = viewer.t

    def describe(event: LiveEvent) -> str:
        return t.event(event.action, event.actor, event.detail)

    async def stream() -> AsyncIterator[dict[str, str]]:
        queue = await hub.subscribe()
        stream_id = hub.next_stream_id()
        if ref is not None:
            hub.presence.join(ref, stream_id, viewer.name)
        sent = resume if resume is not None else hub.last
        seen_presence = -1
        try:
            if resume is not None:
                for event in await anyio.to_thread.run_sync(read_events, hub.db, resume):
                    sent = event.id
                    yield _message(event, describe(event))
            while True:
                if hub.presence.version != seen_presence:
                    snapshot = hub.presence.snapshot()
                    seen_presence = hub.presence.version
                    yield {"event": "presence", "data": json.dumps(snapshot)}
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=1.0)
                except TimeoutError:
                    continue
                if item is None:
                    return
                if item.id <= sent:
                    continue
                sent = item.id
                yield _message(item, describe(item))
        finally:
            hub.unsubscribe(queue)
            if ref is not None:
                hub.presence.leave(ref, stream_id)

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})


def _message(event: LiveEvent, text: str) -> dict[str, str]:
    data = {"ref": event.ref, "action": event.action, "actor": event.actor, "text": text}
    return {"event": "ticket", "id": str(event.id), "data": json.dumps(data, ensure_ascii=False)}


async def typing(request: Request) -> Response:
    """POST /t/{ref}/typing: the viewer is writing on the ticket (shown to the others as
    ``name ✎`` for :data:`TYPING_SECONDS`). 204; 401 without a login."""
    viewer = await anyio.to_thread.run_sync(viewer_of, request)
    if viewer is None:
        return Response("login required\n", status_code=401, media_type="text/plain")
    raw = str(request.path_params.get("ref", ""))
    if not raw.isdigit() or len(raw) > 9:
        return Response(status_code=404)
    hub_of(request).presence.typed(int(raw), viewer.name)
    return Response(status_code=204)
