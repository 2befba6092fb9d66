"""``/metrics`` and ``/health`` on a loopback port (when the web page is off), and for the web app.

A small WSGI app (standard library ``wsgiref`` in a thread per request) with two
routes: ``/metrics`` (prometheus-client's exposition of
:class:`~triage.metrics.TriageMetrics`) and ``/health`` (the verdict of
:func:`triage.health.read_health`: 200 or 503 with ``triage status --json``).
``triage run`` starts it when ``[monitoring] enabled = true``; the web page mounts
the same two (``TriageMetrics.asgi_app()``, :func:`triage.health.health_asgi_app`),
each wrapped in :func:`loopback_only`: the web page may face the office network,
and neither endpoint has a login.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import make_wsgi_app

from triage.errors import ConfigError
from triage.health import Health
from triage.metrics import TriageMetrics

__all__ = ["LoopbackOnly", "MonitoringServer", "loopback_only", "monitoring_wsgi_app"]

log = structlog.get_logger("triage.monitoring")

StartResponse = Callable[..., Any]


def monitoring_wsgi_app(
    metrics: TriageMetrics, health: Callable[[], Health]
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """WSGI app: ``/metrics`` (Prometheus text format), ``/health`` (JSON, 200 / 503), else 404."""
    metrics_app = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path in {"/metrics", "/health"} and method not in {"GET", "HEAD"}:
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/health":
            code, body = health().http()
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            reason = "OK" if code == 200 else "Service Unavailable"
            start_response(
                f"{code} {reason}",
                [
                    ("Content-Type", "application/json; charset=utf-8"),
                    ("Content-Length", str(len(data))),
                    ("Cache-Control", "no-store"),
                ],
            )
            return [b"" if method == "HEAD" else data]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics or /health\n"]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """No access log on stderr (the daemon's log is JSON lines)."""


class MonitoringServer:
    """Serves :func:`monitoring_wsgi_app` on ``host:port`` in a background thread.

    Raises:
        ConfigError: (from :meth:`start`) the address cannot be bound, naming
            ``monitoring.host``/``monitoring.port``.
    """

    def __init__(
        self, metrics: TriageMetrics, health: Callable[[], Health], host: str, port: int
    ) -> None:
        self.app = monitoring_wsgi_app(metrics, health)
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve; ``port`` 0 picks a free port (then read :attr:`port`)."""
        try:
            family = ipaddress.ip_address(self.host).version
        except ValueError:
            family = 4
        server_class = _IPv6Server if family == 6 else _Server
        try:
            server = make_server(
                self.host,
                self.port,
                self.app,
                server_class=server_class,
                handler_class=_QuietHandler,
            )
        except OSError as exc:
            raise ConfigError(
                f"monitoring.host/port: cannot listen on {self.host}:{self.port}:"
                f" {exc.strerror or exc}"
            ) from None
        assert isinstance(server, _Server)  # noqa: S101 - made by the class above
        self._server = server
        self.port = server.server_port
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="monitoring",
            daemon=True,
        )
        self._thread.start()
        loopback = self.host == "localhost" or _is_loopback(self.host)
        emit = log.info if loopback else log.warning
        emit("monitoring_listening", host=self.host, port=self.port, loopback=loopback)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


def loopback_only(app: ASGIApp) -> LoopbackOnly:
    """Wrap an ASGI app so that only clients on loopback reach it; others get 404.

    The client is the ASGI ``client`` (behind a trusted reverse proxy, uvicorn sets
    it from ``X-Forwarded-For``), and a request carrying any proxy header
    (:data:`PROXY_HEADERS`: ``Forwarded``, ``X-Real-IP``, ``Via`` ...) is refused
    too, so a visitor coming through a proxy on this machine is refused whichever
    header that proxy sends. A proxy that sends none cannot be told from a local
    client: configure it to send one (README). Prometheus on the same machine, or
    an SSH tunnel, gets through.
    """
    return LoopbackOnly(app)


PROXY_HEADERS = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-real-ip", b"x-forwarded-host", b"via"}
)
"""Request headers only a proxy adds (RFC 7239 ``Forwarded``, the X- ones, RFC 9110
``Via``): a request carrying one came through a proxy on this machine from someone
else, whatever header the proxy chose, so it is refused like a remote client."""


class LoopbackOnly:
    """An ASGI app (an object, so routers mount it as an app) guarding ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        """Pass loopback clients through; answer 404 to anyone else."""
        client = scope.get("client")
        host = client[0] if client else ""
        proxied = any(name.lower() in PROXY_HEADERS for name, _ in scope.get("headers", ()))
        local = host == "localhost" or _is_loopback(host)
        if scope.get("type") == "http" and (proxied or not local):
            body = b"not found\n"
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
