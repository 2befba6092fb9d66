"""Talking to systemd: ``sd_notify`` over ``$NOTIFY_SOCKET`` with the standard library.

A ``Type=notify`` service tells systemd when it is ready (``READY=1``), what it is
doing (``STATUS=...``, shown by ``systemctl status``), that it is shutting down
(``STOPPING=1``), and, under ``WatchdogSec=``, that it is still alive
(``WATCHDOG=1``). The protocol is one datagram of ``KEY=VALUE`` lines to the
``AF_UNIX`` socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace); see sd_notify(3). The ``sdnotify`` package is unmaintained
and this is all of it.

Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["SystemdNotifier", "watchdog_interval"]


class SystemdNotifier:
    """Sends sd_notify(3) messages; a no-op when the process is not run by systemd.

    Args:
        address: the notification socket; default ``$NOTIFY_SOCKET``.

    Sending never raises: a notification that cannot be delivered (systemd gone,
    socket full) is dropped, as libsystemd's sd_notify drops it; :meth:`notify`
    returns False then.
    """

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return bool(self.address)

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram: ``notify(READY=1, STATUS="running")``.

        Newlines in a value are replaced by spaces (one line per key). Returns True
        when the datagram was sent.
        """
        if not self.address or not fields:
            return False
        text = "\n".join(f"{k}={str(v).replace(chr(10), ' ')}" for k, v in fields.items())
        target = self.address
        if target.startswith("@"):  # abstract namespace (Linux)
            target = "\0" + target[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(text.encode("utf-8"), target)
        except OSError:
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """``READY=1`` (start-up is complete), with an optional status line."""
        return self.notify(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        """``STATUS=text``: the one-line state ``systemctl status`` shows."""
        return self.notify(STATUS=text)

    def stopping(self, status: str = "") -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.notify(STOPPING=1, **({"STATUS": status} if status else {}))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the service is alive (send every half ``WatchdogSec``)."""
        return self.notify(WATCHDOG=1)


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float:
    """Seconds between ``WATCHDOG=1`` pings, or 0 when systemd's watchdog is off.

    systemd sets ``$WATCHDOG_USEC`` (``WatchdogSec=`` in microseconds) and
    ``$WATCHDOG_PID``; the pings are for this process only when the pid matches
    (or is absent). Half the period is returned, as sd_watchdog_enabled(3) advises.
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return 0.0
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(pid if pid is not None else os.getpid()):
        return 0.0
    return usec / 2_000_000 if usec > 0 else 0.0
