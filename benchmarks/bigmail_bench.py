"""Benchmark: the daemon's peak memory for one hostile mail (issue 13.9).

Starts ``triage run`` against its own Dovecot and aiosmtpd (an empty SQLite
database), waits for it to idle, reads its peak RSS (VmHWM), APPENDs one mail,
waits until it is routed (``message_routed``), and reads VmHWM again. One fresh
daemon per mail:

- ``subject-1mb``: a 1 MB Subject (encoded-words, as a mail client folds it);
- ``recipients-10k``: 10,000 addresses in To;
- ``body-30mb`` / ``attachment-24mb``: a 30 MB text body (over the 25 MB
  ``imap.max_message_size``: parsed truncated) and a 24 MB base64 attachment
  (just under it).

Target: the peak stays under 350 MB for any single mail up to the size limit.

    .venv/bin/python benchmarks/bigmail_bench.py [--only subject-1mb,...]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.daemonproc import DaemonProcess, daemon_config, write_config  # noqa: E402
from support.dovecot import Dovecot  # noqa: E402
from support.smtp import SmtpServer  # noqa: E402

HEAD = "From: Client <client@example.com>\r\nTo: inbox@example.test\r\nMessage-ID: <{n}@b>\r\n"


def subject_1mb() -> bytes:
    words = " ".join(
        "=?utf-8?b?" + base64.b64encode("Számla fizetés ".encode() * 3).decode() + "?="
        for _ in range(1_000_000 // 80)
    )
    return (HEAD.format(n="s") + f"Subject: {words}\r\n\r\nHello\r\n").encode()


def recipients_10k() -> bytes:
    to = ",\r\n ".join(f"r{i}@example.com" for i in range(10_000))
    head = HEAD.format(n="r").replace("To: inbox@example.test", f"To: {to}")
    return (head + "Subject: many\r\n\r\nHello\r\n").encode()


def body_30mb() -> bytes:
    line = "invoice payment számla " * 3 + "\r\n"
    body = line * (30_000_000 // len(line.encode()))
    return (
        HEAD.format(n="b") + "Subject: big\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n" + body
    ).encode()


def attachment_24mb() -> bytes:
    data = base64.encodebytes(os.urandom(17_500_000)).replace(b"\n", b"\r\n")
    return (
        HEAD.format(n="a").encode()
        + b"Subject: scan\r\nMIME-Version: 1.0\r\n"
        + b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n'
        + b"Content-Type: text/plain\r\n\r\nAttached.\r\n--x\r\n"
        + b'Content-Type: application/pdf; name="scan.pdf"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + data
        + b"\r\n--x--\r\n"
    )


MAILS: dict[str, Callable[[], bytes]] = {
    "subject-1mb": subject_1mb,
    "recipients-10k": recipients_10k,
    "body-30mb": body_30mb,
    "attachment-24mb": attachment_24mb,
}


def measure(name: str, raw: bytes, base: Path, dovecot: Dovecot, smtp: SmtpServer) -> dict:
    account = dovecot.add_user()
    url = f"sqlite:///{base / f'{name}.db'}"
    config = write_config(base / f"{name}.toml", daemon_config(account, smtp.port, url, base))
    daemon = DaemonProcess(config, base / f"{name}.log")
    try:
        daemon.wait_event("daemon_started", timeout=120)
        time.sleep(2)
        idle = daemon.rss_peak_kib / 1024
        dovecot.append(account, raw)
        daemon.wait_event("message_stored", timeout=600)
        time.sleep(1)
        peak = daemon.rss_peak_kib / 1024
    finally:
        daemon.terminate(timeout=120)
    load = os.getloadavg()[0]
    print(
        f"{name:16s} {len(raw) / 1e6:6.1f} MB mail: idle {idle:4.0f} MB, peak {peak:4.0f} MB"
        f"  (load {load:.1f})",
        flush=True,
    )
    return {"mail_mb": round(len(raw) / 1e6, 1), "idle_mb": round(idle), "peak_mb": round(peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(MAILS), help="comma-separated mail names")
    args = parser.parse_args()
    results = {}
    dovecot = Dovecot()
    dovecot.start()
    smtp = SmtpServer()
    smtp.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.only.split(","):
                results[name] = measure(name, MAILS[name](), Path(tmp), dovecot, smtp)
    finally:
        smtp.stop()
        dovecot.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
