"""The assistants' web page as an ASGI app (Starlette): :func:`create_app`.

Sync endpoints run in Starlette's thread pool and use the same database sessions
and ticket functions as the CLI; nothing here writes SQL for an action.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from triage.clock import Clock, SystemClock
from triage.config import Settings
from triage.health import Health, health_asgi_app, read_health
from triage.metrics import TriageMetrics
from triage.monitoring import loopback_only
from triage.store import Database
from triage.web import auth, live, pages, ticket_pages
from triage.web.context import Web
from triage.web.security import SecurityMiddleware

__all__ = ["create_app"]


def _not_found(request: Request, exc: Exception) -> Response:  # noqa: ARG001 - Starlette's signature
    return PlainTextResponse("not found\n", status_code=404)


def create_app(
    settings: Settings,
    db: Database,
    *,
    clock: Clock | None = None,
    origin: str | None = None,
    metrics: TriageMetrics | None = None,
    health: Callable[[], Health] | None = None,
) -> Starlette:
    """The web app for ``settings`` and ``db``.

    Args:
        clock: the current time (tests pass a fixed one).
        origin: the page's own origin; default ``[web] base_url`` or ``http://host:port``.
            State changes from any other origin are refused.
        metrics: what ``/metrics`` serves (``triage run`` passes the daemon's, with its
            event counters); default: the state gauges read from the database.
        health: the verdict ``/health`` serves; default :func:`triage.health.read_health`.

    ``/metrics`` and ``/health`` answer loopback clients only (no login; see
    :func:`triage.monitoring.loopback_only`).
    """
    web = Web(
        settings=settings,
        db=db,
        clock=clock or SystemClock(),
        origin=(origin or settings.web.origin()).rstrip("/").lower(),
    )
    static = StaticFiles(directory=str(files("triage.web") / "static"))
    if health is None:

        def health() -> Health:
            return read_health(db, settings, web.clock.now())

    if metrics is None:
        metrics = TriageMetrics(health=health)
    routes = [
        Route("/login", auth.login_page, methods=["GET"]),
        Route("/login", auth.login_submit, methods=["POST"]),
        Route("/logout", auth.logout, methods=["POST"]),
        Route("/", pages.queue_page, methods=["GET"]),
        Route("/queue/rows", pages.queue_rows, methods=["GET"]),
        Route("/t/{ref}", ticket_pages.ticket_page, methods=["GET"]),
        Route("/t/{ref}/typing", live.typing, methods=["POST"]),
        Route("/t/{ref}/{action}", ticket_pages.ticket_action, methods=["POST"]),
        Route("/t/{ref}/m/{message}/frame", ticket_pages.message_frame, methods=["GET"]),
        Route("/t/{ref}/m/{message}/html", ticket_pages.message_html, methods=["GET"]),
        Route("/t/{ref}/m/{message}/a/{index}", ticket_pages.attachment, methods=["GET"]),
        Route("/events", live.events, methods=["GET"]),
        Route("/search", pages.search_page, methods=["GET"]),
        Route("/settings", pages.settings_page, methods=["GET"]),
        Route("/settings", pages.settings_submit, methods=["POST"]),
        Route("/favicon.ico", lambda _r: RedirectResponse("/static/favicon.svg", 301)),
        Route("/metrics", loopback_only(metrics.asgi_app()), methods=["GET", "HEAD"]),
        Route("/health", loopback_only(health_asgi_app(health)), methods=["GET", "HEAD"]),
        Mount("/static", app=static, name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, origin=web.origin)],
        exception_handlers={404: _not_found},
    )
    app.state.web = web
    return app
