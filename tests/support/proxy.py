"""A fault-injecting loopback TCP proxy between triage and a real server (Dovecot, SMTP, ...).

Real servers cannot be made to show the faults real networks and other servers
do, so this proxy sits between the client and the real server and injects them:

- connection faults, any protocol: :meth:`FaultProxy.blackhole` freezes the
  live connections (no FIN, no RST, nothing arrives any more: a NAT or
  firewall dropping an idle flow, ../shared/cases/B28); :meth:`FaultProxy.cut`
  closes them (FIN); :meth:`FaultProxy.refuse_new` makes the server look down.
- IMAP response faults (``protocol="imap"``): the server's byte stream is split
  into whole responses (lines plus their ``{n}`` literals) and each goes through
  the armed :class:`Rule` objects, which may drop it, replace it, add responses
  before it, delay it, or forward part of it and then stall or cut the
  connection (a literal cut short). Helpers build the usual ones
  (:func:`drop_fetch`, :func:`replace_body`, :func:`stall_in_literal`, ...).

Only plain-text connections can be inspected (tests use ``security = "none"``
through the proxy); ``protocol="raw"`` forwards bytes untouched (TLS, SMTP).
"""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Self

from support.ports import free_port

_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
_TAGGED = re.compile(rb"^([A-Za-z0-9.]+) (OK|NO|BAD)\b")
_COMMAND = re.compile(rb"^([A-Za-z0-9.]+) (?:UID )?([A-Za-z]+)", re.IGNORECASE)
_FETCH_UID = re.compile(rb"^\* \d+ FETCH \(.*?\bUID (\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Send:
    """Forward these bytes to the client."""

    data: bytes


@dataclass(frozen=True)
class Sleep:
    """Wait this long before the next operation (a slow server or link)."""

    seconds: float


@dataclass(frozen=True)
class Stall:
    """Freeze the connection from here on (blackhole: no FIN, no RST)."""


@dataclass(frozen=True)
class Cut:
    """Close both sides of the connection from here on (FIN)."""


Op = Send | Sleep | Stall | Cut


@dataclass
class Response:
    """One whole server response as the proxy saw it.

    Attributes:
        data: the bytes, literals included.
        command: for a tagged completion, the command its tag named (``FETCH``,
            ``SEARCH``, ``NOOP``, ``IDLE``, ``STORE``, ...; upper case, without
            ``UID``); "" for untagged responses.
        fetch_uid: for an untagged FETCH response, the UID it carries (None otherwise).
    """

    data: bytes
    command: str = ""
    fetch_uid: int | None = None

    @property
    def has_body(self) -> bool:
        """An untagged FETCH response carrying ``BODY[]``."""
        return self.fetch_uid is not None and b"BODY[]" in self.data.split(b"\r\n", 1)[0]


@dataclass
class Rule:
    """A fault: when ``match`` accepts a response, ``act`` says what to send instead.

    Attributes:
        match: decides whether the rule applies to a response.
        act: the operations replacing the response.
        times: how many more responses it applies to (None: every one).
        hits: how many it has applied to.
        on_hit: called (in the proxy's thread) each time, before ``act``'s operations run.
    """

    match: Callable[[Response], bool]
    act: Callable[[Response], list[Op]]
    times: int | None = 1
    hits: int = 0
    on_hit: Callable[[Response], None] | None = None

    def apply(self, response: Response) -> list[Op] | None:
        if self.times is not None and self.hits >= self.times:
            return None
        if not self.match(response):
            return None
        self.hits += 1
        if self.on_hit is not None:
            self.on_hit(response)
        return self.act(response)


# -- rule builders -------------------------------------------------------------------


def drop_fetch(uid: int, *, times: int | None = 1) -> Rule:
    """Leave the FETCH response carrying ``uid``'s body out of the answer."""
    return Rule(lambda r: r.fetch_uid == uid and r.has_body, lambda _r: [], times)


def replace_body(uid: int, body: bytes, *, times: int | None = 1) -> Rule:
    """Answer ``uid``'s FETCH with ``body`` in place of its ``BODY[]`` (``b"NIL"``,
    ``b"{0}\\r\\n"``, any literal) and nothing else changed."""

    def act(r: Response) -> list[Op]:
        head, _, _ = r.data.partition(b"BODY[] ")
        return [Send(head + b"BODY[] " + body + b")\r\n")]

    return Rule(lambda r: r.fetch_uid == uid and r.has_body, act, times)


def strip_body(uid: int, *, times: int | None = 1) -> Rule:
    """Answer ``uid``'s FETCH with its UID and FLAGS only (the body left out)."""

    def act(r: Response) -> list[Op]:
        seq = r.data.split(b" ", 2)[1]
        return [Send(b"* " + seq + b" FETCH (UID " + str(uid).encode() + b" FLAGS ())\r\n")]

    return Rule(lambda r: r.fetch_uid == uid and r.has_body, act, times)


def duplicate_fetch(uid: int, *, second: bytes | None = None, times: int | None = 1) -> Rule:
    """Send ``uid``'s FETCH response twice; the copy carries ``second`` as its body if given."""

    def act(r: Response) -> list[Op]:
        copy = r.data
        if second is not None:
            head, _, _ = r.data.partition(b"BODY[] ")
            copy = head + b"BODY[] {" + str(len(second)).encode() + b"}\r\n" + second + b")\r\n"
        return [Send(r.data), Send(copy)]

    return Rule(lambda r: r.fetch_uid == uid and r.has_body, act, times)


def inject_before(command: str, extra: bytes, *, times: int | None = 1) -> Rule:
    """Add untagged responses ``extra`` just before the tagged completion of ``command``."""
    wanted = command.upper()
    return Rule(lambda r: r.command == wanted, lambda r: [Send(extra), Send(r.data)], times)


def stall_in_literal(uid: int, *, keep: float = 0.5, times: int | None = 1) -> Rule:
    """Forward the first ``keep`` share of ``uid``'s FETCH response, then freeze the link."""
    return Rule(
        lambda r: r.fetch_uid == uid and r.has_body,
        lambda r: [Send(r.data[: int(len(r.data) * keep)]), Stall()],
        times,
    )


def cut_in_literal(uid: int, *, keep: float = 0.5, times: int | None = 1) -> Rule:
    """Forward the first ``keep`` share of ``uid``'s FETCH response, then close (FIN)."""
    return Rule(
        lambda r: r.fetch_uid == uid and r.has_body,
        lambda r: [Send(r.data[: int(len(r.data) * keep)]), Cut()],
        times,
    )


def answer_no(
    command: str, text: bytes = b"Some messages could not be FETCHed", *, times: int | None = 1
) -> Rule:
    """Turn the tagged OK of ``command`` into ``NO text`` (the untagged data is kept)."""
    wanted = command.upper()

    def act(r: Response) -> list[Op]:
        tag = r.data.split(b" ", 1)[0]
        return [Send(tag + b" NO " + text + b"\r\n")]

    return Rule(lambda r: r.command == wanted and b" OK " in r.data[:40], act, times)


# -- the proxy ---------------------------------------------------------------------------


class _Splitter:
    """Cuts an IMAP server's byte stream into whole responses (a line and its literals)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = 0  # literal bytes still to come in the current response
        self._start = 0  # where the current response starts in _buf
        self._pos = 0  # how far it has been read

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            if self._need:
                if len(self._buf) - self._pos < self._need:
                    break
                self._pos += self._need
                self._need = 0
            eol = self._buf.find(b"\r\n", self._pos)
            if eol < 0:
                break
            line_end = eol + 2
            match = _LITERAL.search(bytes(self._buf[self._pos : line_end]))
            self._pos = line_end
            if match:
                self._need = int(match.group(1))
                continue
            out.append(bytes(self._buf[self._start : self._pos]))
            self._start = self._pos
        if self._start:
            del self._buf[: self._start]
            self._pos -= self._start
            self._start = 0
        return out


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    blackholed: bool = False
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    tags: dict[bytes, str] = field(default_factory=dict)
    splitter: _Splitter = field(default_factory=_Splitter)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.close()


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``target``, injecting the faults it is told to.

    New connections made after :meth:`blackhole` or :meth:`cut` are forwarded
    normally (a reconnect gets through) unless :meth:`refuse_new` was called.

    Args:
        target_host, target_port: the real server.
        protocol: ``"imap"`` splits the server's stream into responses for the
            rules (plain text only); ``"raw"`` forwards bytes untouched.
    """

    def __init__(
        self, target_host: str, target_port: int, *, protocol: Literal["imap", "raw"] = "imap"
    ) -> None:
        self.target = (target_host, target_port)
        self.protocol = protocol
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._refuse = False
        self.rules: list[Rule] = []
        self.accepted = 0
        self.commands: list[str] = []
        """Every command name the clients sent (``FETCH``, ``SEARCH``, ``IDLE``, ``DONE``...)."""
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ------------------------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        """Arm ``rule`` (applies to responses from now on, in the order rules were added)."""
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Disarm every rule."""
        with self._lock:
            self.rules.clear()

    def blackhole(self) -> int:
        """Freeze every live connection; return how many were frozen."""
        with self._lock:
            live = [p for p in self._pairs if not p.closed and not p.blackholed]
            for pair in live:
                pair.blackholed = True
        return len(live)

    def cut(self) -> int:
        """Close every live connection (FIN to both sides); return how many."""
        with self._lock:
            live = [p for p in self._pairs if not p.closed]
        for pair in live:
            pair.close()
        return len(live)

    def refuse_new(self, refuse: bool = True) -> None:
        """Close new connections at once (the server looks down) until called with False."""
        self._refuse = refuse

    @property
    def live_connections(self) -> int:
        with self._lock:
            return sum(1 for p in self._pairs if not p.closed and not p.blackholed)

    def count(self, command: str) -> int:
        """How many times clients sent ``command`` (upper case, without UID)."""
        with self._lock:
            return self.commands.count(command.upper())

    # -- plumbing ----------------------------------------------------------------------

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
        sel.register(pair.client, selectors.EVENT_READ, "up")
        sel.register(pair.upstream, selectors.EVENT_READ, "down")
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
                    if key.data == "up":
                        self._note_commands(pair, data)
                        ok = self._send(pair.upstream, data)
                    else:
                        ok = self._downstream(pair, data)
                    if not ok:
                        pair.close()
                        return
        finally:
            sel.close()
            if self._stop.is_set():
                pair.close()

    @staticmethod
    def _send(sock: socket.socket, data: bytes) -> bool:
        try:
            sock.sendall(data)
        except OSError:
            return False
        return True

    def _note_commands(self, pair: _Pair, data: bytes) -> None:
        if self.protocol != "imap":
            return
        for line in data.split(b"\r\n"):
            if line.strip().upper() == b"DONE":
                with self._lock:
                    self.commands.append("DONE")
                continue
            match = _COMMAND.match(line)
            if match:
                name = match.group(2).decode("ascii", "replace").upper()
                pair.tags[match.group(1)] = name
                with self._lock:
                    self.commands.append(name)

    def _downstream(self, pair: _Pair, data: bytes) -> bool:
        """Server -> client: whole responses through the rules; False when the link is to end."""
        if self.protocol != "imap":
            return self._send(pair.client, data)
        for raw in pair.splitter.feed(data):
            response = self._describe(pair, raw)
            ops: list[Op] | None = None
            with self._lock:
                rules = list(self.rules)
            for rule in rules:
                ops = rule.apply(response)
                if ops is not None:
                    break
            for op in ops if ops is not None else [Send(raw)]:
                if isinstance(op, Send):
                    if not self._send(pair.client, op.data):
                        return False
                elif isinstance(op, Sleep):
                    time.sleep(op.seconds)
                elif isinstance(op, Stall):
                    pair.blackholed = True
                    return True
                else:
                    return False
        return True

    @staticmethod
    def _describe(pair: _Pair, raw: bytes) -> Response:
        tagged = _TAGGED.match(raw)
        if tagged and not raw.startswith(b"* "):
            return Response(raw, command=pair.tags.get(tagged.group(1), ""))
        fetch = _FETCH_UID.match(raw.split(b"\r\n", 1)[0])
        return Response(raw, fetch_uid=int(fetch.group(1)) if fetch else None)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=2)
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()


BlackholeProxy = FaultProxy
"""The former name (only the blackhole fault)."""
