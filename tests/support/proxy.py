"""A loopback TCP proxy that can silently stop forwarding (a half-open "blackhole").

Reproduces what a NAT or firewall does to an idle IMAP flow
(../shared/cases/B28): the client's socket stays open, nothing is reset, and
nothing arrives any more in either direction. A real server cannot be made to
show this, so the proxy sits between the client and the real Dovecot.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from dataclasses import dataclass, field

from support.ports import free_port


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    blackholed: bool = False
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.close()


class BlackholeProxy:
    """Forwards 127.0.0.1:<port> to ``target``; :meth:`blackhole` freezes live connections.

    New connections made after :meth:`blackhole` are forwarded normally (a
    reconnect gets through), unless :meth:`refuse_new` was called.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._refuse = False
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self) -> BlackholeProxy:
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refuse:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
                self.accepted += 1
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: _Pair) -> None:
        sel = selectors.DefaultSelector()
        sel.register(pair.client, selectors.EVENT_READ, pair.upstream)
        sel.register(pair.upstream, selectors.EVENT_READ, pair.client)
        try:
            while not self._stop.is_set() and not pair.closed:
                if pair.blackholed:
                    # Read nothing, send nothing, close nothing: the flow is just gone.
                    self._stop.wait(0.1)
                    continue
                for key, _ in sel.select(timeout=0.1):
                    if pair.blackholed:
                        break
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = source.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        pair.close()
                        return
                    try:
                        key.data.sendall(data)
                    except OSError:
                        pair.close()
                        return
        finally:
            sel.close()
            if self._stop.is_set():
                pair.close()

    def blackhole(self) -> int:
        """Freeze every live connection; return how many were frozen."""
        with self._lock:
            live = [p for p in self._pairs if not p.closed and not p.blackholed]
            for pair in live:
                pair.blackholed = True
        return len(live)

    def refuse_new(self, refuse: bool = True) -> None:
        """Close new connections at once (the server looks down) until called with False."""
        self._refuse = refuse

    @property
    def live_connections(self) -> int:
        with self._lock:
            return sum(1 for p in self._pairs if not p.closed and not p.blackholed)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=2)
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()
