"""Benchmark: acknowledgments while intake drains a burst (issue 13.3).

``triage run`` (IDLE, SQLite file, the demo model) watches an empty INBOX; then
``--count`` client mails are APPENDed as fast as ``--appenders`` IMAP connections
can, and an aiosmtpd sink (its own process) notes when each acknowledgment
arrives. A thread counts the stored messages every 0.2 s.

Reported, with the load average:

- intake: messages stored per second from the first APPEND until the last is stored;
- acknowledgments per second *during the burst* (those that arrived before the
  last message was stored, over that same span) and after it;
- APPEND -> acknowledgment at the SMTP server: p50, p95, max (this includes the
  time the mail waits for intake in the mailbox);
- stored -> acknowledgment sent: the message row's ``created_at`` to the ack's
  ``sent_at`` (recorded up to ten mails after the server took it: an upper bound),
  p50, p95, max: how closely acknowledgments follow their mail.

    .venv/bin/python benchmarks/burst_bench.py [--count 3000] [--appenders 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from daemon_bench import (  # noqa: E402
    Bench,
    client_message,
    demo_model,
    load_average,
    prepare_db,
    sink_process,
)
from sqlalchemy import create_engine, select, text  # noqa: E402
from support.daemonproc import DaemonProcess  # noqa: E402
from support.dovecot import Dovecot  # noqa: E402


def count_stored(url: str, stop: threading.Event, out: list[tuple[float, int]]) -> None:
    """Every 0.2 s: (monotonic time, messages stored) until ``stop``."""
    engine = create_engine(url)
    try:
        while not stop.is_set():
            try:
                with engine.connect() as conn:
                    n = int(conn.execute(text("SELECT count(*) FROM messages")).scalar() or 0)
                out.append((time.monotonic(), n))
            except Exception:  # noqa: BLE001, S110 - the daemon holds the lock a moment
                pass
            stop.wait(0.2)
    finally:
        engine.dispose()


def stored_to_ack(url: str) -> list[float]:
    """Seconds from each message's storage to its acknowledgment's ``sent_at``, sorted."""
    from triage.store import Database  # noqa: PLC0415
    from triage.store.models import Message, OutboxMail  # noqa: PLC0415

    db = Database.open(url, migrate=False)
    try:
        with db.read_session() as s:
            rows = s.execute(
                select(Message.created_at, OutboxMail.sent_at)
                .join(OutboxMail, OutboxMail.cause_message_id == Message.id)
                .where(OutboxMail.kind == "ack", OutboxMail.sent_at.is_not(None))
            ).all()
    finally:
        db.dispose()
    return sorted((sent - stored).total_seconds() for stored, sent in rows)


def run(bench: Bench, count: int, appenders: int) -> None:
    bench.sink.reset()
    account = bench.dovecot.add_user()
    url = f"sqlite:///{bench.work / 'burst.db'}"
    prepare_db(url, bench.model)
    proc = DaemonProcess(bench.config("burst", account, url), bench.work / "burst.log")
    try:
        proc.wait_event("imap_connected", timeout=120)
        time.sleep(1.5)  # the first pass done, IDLE under way
        tag = f"burst{os.getpid()}"
        raws = [(n, client_message(n, tag)) for n in range(count)]
        sent_at: dict[str, float] = {}
        lock = threading.Lock()

        def append(part: list[tuple[int, bytes]]) -> None:
            client = bench.dovecot.client(account)
            for n, raw in part:
                at = time.monotonic()
                client.append("INBOX", raw, flags=())
                with lock:
                    sent_at[f"<{tag}-{n}@bench.example.net>"] = at
            client.logout()

        stored: list[tuple[float, int]] = []
        stop = threading.Event()
        counter = threading.Thread(target=count_stored, args=(url, stop, stored), daemon=True)
        counter.start()
        started = time.monotonic()
        threads = [
            threading.Thread(target=append, args=(raws[i::appenders],)) for i in range(appenders)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        appended = time.monotonic()
        deadline = appended + max(120.0, count / 5)
        while time.monotonic() < deadline and (not stored or stored[-1][1] < count):
            time.sleep(0.2)
        intake_done = next((t for t, n in stored if n >= count), time.monotonic())
        bench.sink.wait_for(count, timeout=max(60.0, count / 5))
        stop.set()
        counter.join()
        arrived = {irt: at for at, irt in bench.sink.arrivals}
        latencies = sorted(arrived[mid] - t for mid, t in sent_at.items() if mid in arrived)
        burst = intake_done - started
        during = sum(1 for at in arrived.values() if at <= intake_done)
        last_ack = max(arrived.values()) if arrived else intake_done
        q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
        follow = stored_to_ack(url)
        f = statistics.quantiles(follow, n=100) if len(follow) > 1 else [0.0] * 99
        print(
            f"burst of {count} mails ({appenders} appenders,"
            f" APPEND took {appended - started:.1f} s):"
            f" intake {count / burst:.1f} msg/s ({burst:.1f} s);"
            f" acks during the burst {during} = {during / burst:.1f}/s,"
            f" after it {len(arrived) - during} in {max(last_ack - intake_done, 0):.1f} s;"
            f" APPEND->ack p50 {q[49]:.2f} s, p95 {q[94]:.2f} s, max {latencies[-1]:.2f} s;"
            f" stored->ack sent p50 {f[49]:.2f} s, p95 {f[94]:.2f} s, max {follow[-1]:.2f} s;"
            f" {count - len(latencies)} without an ack; peak RSS {proc.rss_peak_kib / 1024:.0f} MB;"
            f" {load_average()}"
        )
        proc.terminate()
    finally:
        proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--appenders", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    from triage.logs import configure_logging  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="burst-bench."))
    (work / "secrets").mkdir()
    with open(os.devnull, "w") as devnull:  # noqa: PTH123 - the in-process logger's stream
        configure_logging("json", "info", stream=devnull)
        dovecot = Dovecot()
        dovecot.start()
        try:
            with sink_process() as sink:
                bench = Bench(dovecot, sink, work, demo_model(), args)
                for _ in range(args.runs):
                    run(bench, args.count, args.appenders)
        finally:
            dovecot.cleanup()
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
