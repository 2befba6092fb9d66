"""Soak: `triage run` with IDLE through bursts of mail and injected faults (issue 13, Soak).

Not part of the test suite: run it and read what it prints.

    .venv/bin/python benchmarks/soak.py [--count 4000] [--minutes 10] [--burst 200]
        [--no-faults] [--keep DIR]

Parts, all real and on loopback:

- Dovecot (tests/support/dovecot.py), reached by the daemon through a
  fault-injecting TCP proxy (tests/support/proxy.py); mail is APPENDed straight to
  Dovecot by two connections, in bursts of ``--burst`` mails spread over the run;
- an aiosmtpd sink in a child process (benchmarks/daemon_bench.py), also behind a
  proxy, which notes each acknowledgment's In-Reply-To and arrival time;
- `triage run` (the console script, SQLite, the demo model, rules/default.toml),
  with its database and send journal on a small tmpfs of their own (root only:
  without it the full-disk fault is left out, and the script says so).

Faults, each at a fixed fraction of the run (``--minutes``):

- SIGKILL of the daemon at 15 %, 45 % and 75 % (restarted at once);
- SMTP outage at 25 %, 60 s: the proxy closes every connection and refuses new ones;
- stalled IMAP link at 50 %: every live connection to Dovecot frozen (no FIN, no
  RST) and a window of 60 s; the daemon must notice by itself;
- full disk at 85 %, 45 s: the tmpfs filled with a file till ENOSPC, then freed.

At the end (every mail stored and acknowledged, or ``--settle`` seconds without
progress) it checks and prints: mails lost (APPENDed, no message row), tickets
duplicated (more than one inbound row or ticket per Message-ID), acknowledgments
duplicated (the sink received more than one per Message-ID) or missing; APPEND ->
acknowledgment p50 / p95 / max for the mails outside the fault windows
(no window, from the fault's start to 30 s after its end, meets the span from
APPEND to acknowledgment), split into APPEND -> stored and stored -> ack, and for
all; with ``--keep``, one CSV line per mail (``mails.csv``); the
daemon's RSS every 10 s (VmRSS; it restarts after each SIGKILL) and its peak; the
load average. The issue's full run is 50,000 mails in 30 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from daemon_bench import client_message, demo_model, load_average, prepare_db, sink_process  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from support.daemonproc import DaemonProcess, daemon_config, write_config  # noqa: E402
from support.dovecot import Dovecot, ImapAccount  # noqa: E402
from support.proxy import FaultProxy  # noqa: E402

RECOVERY_S = 30.0
"""Seconds after a fault's end still counted in its window (reconnect, catch-up)."""
TMPFS_MB = 192


@dataclass
class Window:
    """One injected fault: what, and when (monotonic seconds)."""

    what: str
    start: float
    end: float = 0.0

    def overlaps(self, first: float, last: float) -> bool:
        """Whether [first, last] meets the window (its end extended by RECOVERY_S)."""
        return first <= (self.end or self.start) + RECOVERY_S and last >= self.start


@dataclass
class Soak:
    """The run's shared state: APPEND times, fault windows, RSS samples, the daemon."""

    args: argparse.Namespace
    account: ImapAccount
    dovecot: Dovecot
    config: Path
    log: Path
    disk: Path | None
    daemon: DaemonProcess | None = None
    appended: dict[str, float] = field(default_factory=dict)
    """Message-ID -> monotonic time of its APPEND."""
    wall: dict[str, float] = field(default_factory=dict)
    """Message-ID -> wall-clock time (Unix) of its APPEND."""
    windows: list[Window] = field(default_factory=list)
    rss: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since start, daemon pid, VmRSS MB)."""
    kills: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0

    def start_daemon(self) -> None:
        self.daemon = DaemonProcess(self.config, self.log)

    def note(self, what: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {what}", flush=True)


# -- the mail -----------------------------------------------------------------------------


def appender(soak: Soak, tag: str) -> None:
    """APPEND ``--count`` mails in bursts of ``--burst``, evenly over the run's span."""
    count, burst = soak.args.count, soak.args.burst
    bursts = max(1, -(-count // burst))
    span = soak.args.minutes * 60 * 0.9  # the last tenth left for catching up
    clients = [soak.dovecot.client(soak.account) for _ in range(2)]

    def append_part(client: object, part: list[int]) -> None:
        for n in part:
            raw = client_message(n, tag)
            at = time.monotonic()
            client.append("INBOX", raw, flags=())  # type: ignore[attr-defined]
            with soak.lock:
                soak.appended[f"<{tag}-{n}@bench.example.net>"] = at
                soak.wall[f"<{tag}-{n}@bench.example.net>"] = time.time()

    for b in range(bursts):
        due = soak.started + b * span / bursts
        while time.monotonic() < due and not soak.stop.is_set():
            time.sleep(0.1)
        if soak.stop.is_set():
            break
        numbers = list(range(b * burst, min(count, (b + 1) * burst)))
        threads = [
            threading.Thread(target=append_part, args=(c, numbers[i :: len(clients)]))
            for i, c in enumerate(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for c in clients:
        with contextlib.suppress(Exception):
            c.logout()  # type: ignore[attr-defined]


def rss_sampler(soak: Soak) -> None:
    while not soak.stop.wait(10.0):
        daemon = soak.daemon
        if daemon is None:
            continue
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{daemon.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kib = int(line.split()[1])
                    soak.rss.append((time.monotonic() - soak.started, daemon.pid, kib // 1024))


# -- the faults ---------------------------------------------------------------------------


def fill(directory: Path) -> None:
    """Write zeros into ``directory`` until the file system says ENOSPC."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)


def faults(soak: Soak, imap_proxy: FaultProxy, smtp_proxy: FaultProxy) -> None:
    """Inject the faults at their fractions of the run."""
    total = soak.args.minutes * 60

    def at(fraction: float) -> bool:
        """Sleep till ``fraction`` of the run; False when stopped."""
        due = soak.started + fraction * total
        while time.monotonic() < due:
            if soak.stop.wait(0.2):
                return False
        return True

    def kill() -> None:
        assert soak.daemon is not None
        window = Window("SIGKILL", time.monotonic())
        soak.daemon.kill()
        soak.kills += 1
        soak.start_daemon()
        window.end = time.monotonic()
        soak.windows.append(window)
        soak.note(f"SIGKILL {soak.kills}: daemon restarted (pid {soak.daemon.pid})")

    def outage(what: str, begin: Callable[[], None], end: Callable[[], None], s: float) -> None:
        window = Window(what, time.monotonic())
        soak.windows.append(window)
        soak.note(f"{what}: begins ({s:.0f} s)")
        begin()
        soak.stop.wait(s)
        end()
        window.end = time.monotonic()
        soak.note(f"{what}: ends")

    def smtp_down() -> None:
        smtp_proxy.refuse_new(refuse=True)
        smtp_proxy.cut()

    def stall() -> None:
        deadline = time.monotonic() + 60
        while imap_proxy.live_connections == 0 and time.monotonic() < deadline:
            time.sleep(0.5)  # a daemon just restarted has not connected yet
        frozen = imap_proxy.blackhole()
        soak.note(f"stalled IMAP link: {frozen} connection(s) frozen")

    plan: list[tuple[float, Callable[[], None]]] = [
        (0.15, kill),
        (
            0.25,
            lambda: outage(
                "SMTP outage", smtp_down, lambda: smtp_proxy.refuse_new(refuse=False), 60
            ),
        ),
        (0.45, kill),
        (0.50, lambda: outage("stalled IMAP link", stall, lambda: None, 60)),
        (0.75, kill),
    ]
    if soak.disk is not None:
        disk = soak.disk
        plan.append(
            (
                0.85,
                lambda: outage("full disk", lambda: fill(disk), (disk / "filler").unlink, 45),
            )
        )
    for fraction, act in sorted(plan, key=lambda p: p[0]):
        if not at(fraction):
            return
        act()


# -- the checks ---------------------------------------------------------------------------


def database_counts(url: str) -> tuple[Counter[str], Counter[str], int]:
    """(inbound rows per Message-ID, tickets per Message-ID, inbound rows in all)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT message_id FROM messages WHERE direction = 'in'")
            ).scalars()
            per_row = Counter(rows)
            tickets = conn.execute(
                text(
                    "SELECT m.message_id FROM tickets t JOIN messages m"
                    " ON m.ticket_id = t.id AND m.direction = 'in'"
                    " WHERE m.id = (SELECT min(id) FROM messages WHERE ticket_id = t.id"
                    " AND direction = 'in')"
                )
            ).scalars()
            per_ticket = Counter(tickets)
    finally:
        engine.dispose()
    return per_row, per_ticket, sum(per_row.values())


def stored_times(url: str) -> dict[str, float]:
    """Message-ID -> when its row was stored (``created_at``, Unix seconds)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT message_id, created_at FROM messages WHERE direction = 'in'")
            ).all()
    finally:
        engine.dispose()
    out: dict[str, float] = {}
    for mid, created in rows:
        moment = datetime.fromisoformat(str(created))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        out.setdefault(mid, moment.timestamp())
    return out


def quantiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a (fewer than 2)"
    q = statistics.quantiles(sorted(values), n=100)
    return f"p50 {q[49]:.2f} s, p95 {q[94]:.2f} s, max {max(values):.2f} s ({len(values)} mails)"


def wait_for_all(soak: Soak, url: str, sink: object, want: int) -> None:
    """Until every mail is stored and acknowledged, or ``--settle`` s without progress."""
    last, last_change = (-1, -1), time.monotonic()
    while True:
        try:
            _, _, stored = database_counts(url)
        except Exception:  # noqa: BLE001 - the daemon holds the write lock a moment
            stored = last[0]
        acked = len({irt for _, irt in sink.arrivals})  # type: ignore[attr-defined]
        if stored >= want and acked >= want:
            return
        if (stored, acked) != last:
            last, last_change = (stored, acked), time.monotonic()
        elif time.monotonic() - last_change > soak.args.settle:
            soak.note(f"no progress for {soak.args.settle:.0f} s: {stored} stored, {acked} acked")
            return
        time.sleep(1.0)


def report(soak: Soak, url: str, sink: object) -> bool:
    arrivals: list[tuple[float, str]] = list(sink.arrivals)  # type: ignore[attr-defined]
    per_ack = Counter(irt for _, irt in arrivals)
    first_ack: dict[str, float] = {}
    for at, irt in arrivals:
        first_ack.setdefault(irt, at)
    per_row, per_ticket, _ = database_counts(url)
    sent = soak.appended
    lost = [mid for mid in sent if per_row[mid] == 0]
    dup_rows = {mid: n for mid, n in per_row.items() if mid in sent and n > 1}
    dup_tickets = {mid: n for mid, n in per_ticket.items() if mid in sent and n > 1}
    no_ticket = [mid for mid in sent if per_ticket[mid] == 0]
    dup_acks = {mid: n for mid, n in per_ack.items() if mid in sent and n > 1}
    no_ack = [mid for mid in sent if mid not in first_ack]
    latencies = {mid: first_ack[mid] - at for mid, at in sent.items() if mid in first_ack}
    # a mail is outside the fault windows when no window meets its APPEND -> ack span
    # (a mail APPENDed just before the disk filled waits for the disk like the others)
    calm_ids = [
        mid
        for mid in latencies
        if not any(w.overlaps(sent[mid], first_ack[mid]) for w in soak.windows)
    ]
    calm = [latencies[mid] for mid in calm_ids]
    print()
    print(f"SOAK {len(sent)} mails APPENDed in {soak.args.minutes:g} min"
          f" (bursts of {soak.args.burst}); {soak.kills} SIGKILLs; faults:"
          + "".join(f" {w.what} at {w.start - soak.started:.0f} s"
                    f" ({(w.end or w.start) - w.start:.0f} s);" for w in soak.windows))  # fmt: skip
    print(f"  lost (APPENDed, not stored): {len(lost)} {lost[:5]}")
    print(f"  duplicated message rows: {len(dup_rows)} {list(dup_rows.items())[:5]}")
    print(f"  duplicated tickets: {len(dup_tickets)} {list(dup_tickets.items())[:5]}")
    print(f"  without a ticket: {len(no_ticket)} {no_ticket[:5]}")
    print(f"  duplicated acknowledgments: {len(dup_acks)} {list(dup_acks.items())[:5]}")
    print(f"  without an acknowledgment: {len(no_ack)} {no_ack[:5]}")
    print(f"  APPEND -> ack outside the fault windows (+{RECOVERY_S:.0f} s): {quantiles(calm)}")
    print(f"  APPEND -> ack, all mails: {quantiles(list(latencies.values()))}")
    # where the calm mails' time goes: waiting for intake, then for the dispatcher
    offset = time.time() - time.monotonic()
    stored = stored_times(url)
    to_store = [stored[mid] - soak.wall[mid] for mid in calm_ids if mid in stored]
    to_ack = [first_ack[mid] + offset - stored[mid] for mid in calm_ids if mid in stored]
    print(f"    of which APPEND -> stored: {quantiles(to_store)}")
    print(f"    and stored -> ack at the server: {quantiles(to_ack)}")
    if soak.args.keep is not None:  # one line per mail, Unix seconds, for a closer look
        lines = ["message_id,appended,stored,acked,acks,outside_faults"]
        calm_set = set(calm_ids)
        for mid, at in soak.wall.items():
            acked = first_ack[mid] + offset if mid in first_ack else ""
            lines.append(
                f"{mid},{at:.3f},{stored.get(mid, '')},{acked},{per_ack[mid]},{mid in calm_set}"
            )
        (soak.args.keep / "mails.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    series = " ".join(f"{int(t)}s:{mb}" for t, _pid, mb in soak.rss)
    print(f"  daemon RSS MB every 10 s (restarts after SIGKILL): {series}")
    if soak.rss:
        print(f"  RSS peak {max(mb for _, _, mb in soak.rss)} MB, last {soak.rss[-1][2]} MB")
    print(f"  {load_average()}")
    return not (lost or dup_rows or dup_tickets or no_ticket or dup_acks or no_ack)


# -- setup --------------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(base: Path) -> Iterator[Path | None]:
    """A tmpfs of TMPFS_MB under ``base`` (root only), else None."""
    mount = base / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        print("not root: no tmpfs, so no full-disk fault")
        yield None
        return
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"cannot mount a tmpfs ({done.stderr.strip()}): no full-disk fault")
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000, help="mails in all")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    parser.add_argument("--burst", type=int, default=200, help="mails per burst")
    parser.add_argument("--settle", type=float, default=180.0, help="s without progress: stop")
    parser.add_argument("--no-faults", action="store_true", help="bursts only")
    parser.add_argument("--keep", type=Path, help="keep the database and log in this folder")
    args = parser.parse_args()

    print(f"soak: {args.count} mails over {args.minutes:g} min; {load_average()}", flush=True)
    # SIGTERM (and SIGINT, ignored in a background job) end the run through its
    # clean-ups: the daemon, the sink, Dovecot, the tmpfs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    model = demo_model()
    dovecot = Dovecot()
    dovecot.start()
    try:
        ok = run(args, model, dovecot)
    finally:
        dovecot.stop()
    print("SOAK PASSED" if ok else "SOAK FOUND A PROBLEM (see above)")
    return 0 if ok else 1


def run(args: argparse.Namespace, model: object, dovecot: Dovecot) -> bool:
    """The soak itself, on a running Dovecot; True when nothing was lost or duplicated."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        sink_process() as sink,
        small_disk(Path(tmp)) as disk,
        FaultProxy("127.0.0.1", sink.port, protocol="raw") as smtp_proxy,
    ):
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        account = dovecot.add_user()
        with FaultProxy(account.host, account.port, protocol="raw") as imap_proxy:
            db_dir = disk if disk is not None else work
            url = f"sqlite:///{db_dir / 'soak.db'}"
            prepare_db(url, model)
            data = daemon_config(account, smtp_proxy.port, url, work)
            # the watcher as shipped (the tests' 3 s fallback poll would hide mail that
            # IDLE failed to announce): only the port (the proxy) differs
            data["imap"].update(
                port=imap_proxy.port,
                poll_interval=60,
                fallback_poll=300,
                idle_renew=25 * 60,
                keepalive=20,
                timeout=30,
                reconnect_initial=1,
                reconnect_max=300,
            )
            # the tests' 1-2 s SMTP back-off gives up (12 attempts) inside a 60 s outage;
            # the defaults (30 s to an hour) would hold the acks for minutes after it
            data["smtp"].update(retry_initial=5, retry_max=20)
            config = write_config(work / "soak.toml", data)
            soak = Soak(args, account, dovecot, config, work / "soak.log", disk)
            soak.start_daemon()
            assert soak.daemon is not None
            soak.daemon.wait_event("imap_connected", timeout=180)
            time.sleep(1.5)
            soak.started = time.monotonic()
            tag = f"soak{os.getpid()}"
            threads = [
                threading.Thread(target=appender, args=(soak, tag), daemon=True),
                threading.Thread(target=rss_sampler, args=(soak,), daemon=True),
            ]
            if not args.no_faults:
                threads.append(
                    threading.Thread(
                        target=faults, args=(soak, imap_proxy, smtp_proxy), daemon=True
                    )
                )
            for t in threads:
                t.start()
            try:
                threads[0].join()
                soak.note(f"all {len(soak.appended)} mails APPENDed")
                if len(threads) > 2:
                    threads[2].join()
                wait_for_all(soak, url, sink, len(soak.appended))
                soak.stop.set()
                ok = report(soak, url, sink)
            finally:
                soak.stop.set()
                if soak.daemon is not None:
                    with contextlib.suppress(AssertionError):
                        soak.daemon.terminate(timeout=60)
                    soak.daemon.kill()
    return ok


if __name__ == "__main__":
    sys.exit(main())
