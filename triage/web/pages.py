"""Pages: the queue, the user's settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from triage.accounts import set_preferences
from triage.desk import QueuePage, TicketDesk, View
from triage.errors import UserError
from triage.store.models import Ticket
from triage.store.search import search_tickets
from triage.web.auth import Form, action, fragment, page
from triage.web.context import Viewer, web_of

__all__ = ["queue_page", "queue_rows", "search_page", "settings_page", "settings_submit"]

PAGE_SIZE = 50


@dataclass(frozen=True)
class QueueView:
    """Which tickets a queue page lists: ``all``, ``mine``, ``unassigned``, ``waiting``,
    ``escalated``, or ``q:<queue>``."""

    key: str
    queue: str | None = None

    @classmethod
    def parse(cls, value: str | None, queues: list[str], *, default: str = "all") -> QueueView:
        """The view named by ``?view=``; none or an unknown one gives ``default``."""
        if value in ("mine", "unassigned", "waiting", "escalated", "all"):
            return cls(value)
        if value and value.startswith("q:") and value[2:] in queues:
            return cls(value, value[2:])
        return cls(default)


def _rows(request: Request, viewer: Viewer) -> tuple[QueueView, QueuePage]:
    web = web_of(request)
    queues = sorted(web.settings.queues)
    # an owner sees what needs them first: the escalated tickets
    default = "escalated" if viewer.account.role == "owner" else "all"
    view = QueueView.parse(request.query_params.get("view"), queues, default=default)
    desk = TicketDesk(web.db, web.settings, clock=web.clock, calendar=web.calendar)
    cursor = request.query_params.get("cursor") or None

    def listed(after: str | None) -> QueuePage:
        return desk.queue(
            view=View.ALL if view.queue is not None else View(view.key),
            queue=view.queue,
            actor=viewer.name,
            cursor=after,
            limit=PAGE_SIZE,
        )

    try:
        return view, listed(cursor)
    except UserError:  # a stale or mangled cursor: the first page
        return view, listed(None)


@page
def queue_page(request: Request, viewer: Viewer) -> Response:
    """GET /[?view=...&cursor=...]: the prioritized queue, a page at a time."""
    web = web_of(request)
    view, listed = _rows(request, viewer)
    return web.render(
        request,
        viewer,
        "queue.html",
        viewer.t,
        view=view,
        listed=listed,
        rows=listed.rows,
        counts=listed.counts,
        cursor=request.query_params.get("cursor", ""),
        now=web.clock.now(),
        queues=sorted(web.settings.queues),
    )


@fragment
def queue_rows(request: Request, viewer: Viewer) -> Response:
    """GET /queue/rows: the rows, and the view tabs with fresh counts marked
    ``hx-swap-oob`` (live updates replace both: a claim elsewhere changes the counts)."""
    web = web_of(request)
    view, listed = _rows(request, viewer)
    return web.render(
        request,
        viewer,
        "_rows.html",
        viewer.t,
        view=view,
        listed=listed,
        rows=listed.rows,
        counts=listed.counts,
        cursor=request.query_params.get("cursor", ""),
        now=web.clock.now(),
        queues=sorted(web.settings.queues),
        oob=True,
    )


@page
def search_page(request: Request, viewer: Viewer) -> Response:
    """GET /search?q=: tickets by reference, client, subject or text (any status)."""
    web = web_of(request)
    query = request.query_params.get("q", "")[:200]
    found: list[Ticket] = []
    if query.strip():
        with web.db.read_session() as session:
            ids = search_tickets(session, query)
            by_id = {t.id: t for t in session.scalars(select(Ticket).where(Ticket.id.in_(ids)))}
            found = [by_id[i] for i in ids if i in by_id]
            session.expunge_all()
        if len(found) == 1 and found[0].ref is not None and query.strip().lstrip("#").isdigit():
            return RedirectResponse(f"/t/{found[0].ref}", status_code=303)
    return web.render(request, viewer, "search.html", viewer.t, query=query, found=found)


@page
def settings_page(request: Request, viewer: Viewer) -> Response:
    """GET /settings: language and keyboard shortcuts."""
    web = web_of(request)
    return web.render(request, viewer, "settings.html", viewer.t, saved=False)


@action
def settings_submit(request: Request, viewer: Viewer, form: Form) -> Response:
    """POST /settings: store the user's language and shortcut choice (413 for a form
    too large to read, never read as "all settings off")."""
    if request.state.form_too_large:
        return PlainTextResponse("form too large\n", status_code=413)
    web = web_of(request)
    language = str(form.get("language", ""))
    shortcuts = form.get("shortcuts") == "on"
    with web.db.session() as session:
        set_preferences(
            session,
            viewer.account.id,
            language=language if language in ("", "hu", "en") else "",
            shortcuts=shortcuts,
        )
    return RedirectResponse("/settings?saved=1", status_code=303)
