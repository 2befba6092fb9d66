"""Serving the page with uvicorn: alone (``triage web``) or inside ``triage run``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator

import structlog
import uvicorn
from starlette.applications import Starlette

from triage.clock import Clock
from triage.config import Settings
from triage.errors import UserError
from triage.health import Health
from triage.metrics import TriageMetrics
from triage.store import Database
from triage.web.app import create_app

__all__ = ["EmbeddedServer", "build", "check_bindable", "serve_forever", "serve_until"]

log = structlog.get_logger("triage.web")


def check_bindable(host: str, port: int) -> None:
    """Fail early when ``host``:``port`` cannot be listened on (taken, or not an address here).

    Binds a throwaway TCP socket with ``SO_REUSEADDR`` (as uvicorn does) to every address
    ``host`` resolves to, and closes it at once; called before any slow work (the demo,
    the daemon's start), so a taken port is one line instead of a traceback later.

    Raises:
        UserError: ``host`` does not resolve, or a bind is refused (e.g. ``EADDRINUSE``,
            ``EACCES`` for ports below 1024); the message names ``host:port``.
    """
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"cannot serve the web page on {shown}: {exc.strerror}") from None
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise UserError(
                    f"cannot serve the web page on {shown}: {exc.strerror}"
                    " (choose another --port, or stop what listens there)"
                ) from None


def build(
    settings: Settings,
    db: Database,
    *,
    host: str | None = None,
    port: int | None = None,
    clock: Clock | None = None,
    metrics: TriageMetrics | None = None,
    health: Callable[[], Health] | None = None,
) -> tuple[Starlette, uvicorn.Config]:
    """The app and uvicorn's config; ``host``/``port`` override ``[web]``.

    ``metrics`` and ``health`` go to :func:`~triage.web.app.create_app` (``triage run``
    passes the daemon's, so ``/metrics`` carries its counters).

    Without ``[web] base_url`` the page's origin follows the address actually served.
    """
    web = settings.web
    host = host or web.host
    port = port or web.port
    if (host, port) != (web.host, web.port):  # links in mail (mentions) follow the address
        web = web.model_copy(update={"host": host, "port": port})
        settings = settings.model_copy(update={"web": web})
    origin = web.origin()
    app = create_app(settings, db, clock=clock, origin=origin, metrics=metrics, health=health)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=bool(web.base_url),
        forwarded_allow_ips=list(web.trusted_proxies),
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
    )
    return app, config


def serve_forever(
    settings: Settings, db: Database, *, host: str | None = None, port: int | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests in hand and return.

    Raises:
        UserError: the address cannot be listened on (:func:`check_bindable`).
    """
    check_bindable(host or settings.web.host, port or settings.web.port)
    _app, config = build(settings, db, host=host, port=port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_until(config, stop)

    asyncio.run(main())


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its host (the daemon's event loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """The daemon handles SIGTERM and SIGINT; uvicorn must not take them."""
        yield


async def serve_until(config: uvicorn.Config, stop: asyncio.Event) -> None:
    """Serve ``config`` in the running loop until ``stop`` is set, then shut down."""
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(), name="web")
    log.info("web_started", url=f"http://{config.host}:{config.port}/")
    try:
        await stop.wait()
    finally:
        server.should_exit = True
        await task
        log.info("web_stopped")
