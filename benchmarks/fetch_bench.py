"""Benchmark: fetch a 5,000-message folder from a local Dovecot into SQLite.

Starts a throwaway Dovecot (tests/support/dovecot.py), APPENDs N messages (real
SpamAssassin mail from ../shared/corpus when present, generated ones otherwise),
then times one `poll_once` pass: UID SEARCH, batched FETCH of BODY.PEEK[] +
INTERNALDATE + RFC822.SIZE, parse, and one SQLite transaction per message with
the folder's progress. Logging is on (JSON, info level, to /dev/null) as in
production. Target: at least 300 messages/s.

For the breakdown it also prints fetching alone, parsing alone, and the whole
pass with a trivial parser (what intake itself costs).

    .venv/bin/python benchmarks/fetch_bench.py [--count 5000] [--batch-size 200] [--generated]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.dovecot import Dovecot, ImapAccount  # noqa: E402
from support.mailtest import message  # noqa: E402

from triage.config import Settings, parse_config  # noqa: E402
from triage.domain import InboundMessage  # noqa: E402
from triage.imap import ImapConnector, ImapMailbox  # noqa: E402
from triage.logs import configure_logging  # noqa: E402
from triage.mail import parse_message  # noqa: E402
from triage.services.intake import Intake, Poller  # noqa: E402
from triage.store import Database  # noqa: E402

TARGET = 300.0
CORPUS = Path(os.environ.get("TRIAGE_SHARED", ROOT.parent / "shared")) / "corpus" / "spamassassin"


def corpus_messages(count: int) -> list[bytes]:
    """Up to ``count`` real messages (mbox ``From`` line dropped, CRLF line ends)."""
    if not CORPUS.is_dir():
        return []
    raws = []
    for folder in sorted(CORPUS.iterdir()):
        for path in sorted(folder.iterdir()):
            raw = path.read_bytes()
            if raw.startswith(b"From "):
                raw = raw.split(b"\n", 1)[1]
            raws.append(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
            if len(raws) == count:
                return raws
    return raws


def load(dovecot: Dovecot, count: int, generated: bool) -> tuple[ImapAccount, list[bytes]]:
    account = dovecot.add_user()
    raws = [] if generated else corpus_messages(count)
    source = "SpamAssassin corpus"
    if len(raws) < count:
        source = "generated" if not raws else "corpus + generated"
        raws += [message(n, body="Hello.\r\n" * 40) for n in range(len(raws), count)]
    client = dovecot.client(account)
    started = time.monotonic()
    for start in range(0, len(raws), 250):
        client.multiappend("INBOX", raws[start : start + 250])
    client.logout()
    total = sum(len(r) for r in raws)
    print(
        f"loaded {len(raws)} messages ({source}, {total / 1e6:.1f} MB)"
        f" in {time.monotonic() - started:.1f} s"
    )
    return account, raws


def identity_only(raw: bytes, *, received_at: datetime, scope: str, **_: object) -> InboundMessage:
    """A stand-in parser doing almost nothing: isolates fetch + store from parsing."""
    digest = hashlib.sha256(raw).hexdigest()[:32]
    return InboundMessage(message_id=f"<{digest}@bench>", subject=scope, received_at=received_at)


def timed_pass(
    settings: Settings, work: Path, name: str, parse: object = None
) -> tuple[int, float]:
    """One poll_once into a fresh SQLite file; returns (messages stored, seconds)."""
    db = Database.open(f"sqlite:///{work / name}")
    try:
        poller = Poller(settings, db)
        if parse is not None:
            poller.intake = Intake(db, parse=parse)  # type: ignore[arg-type]
            for watcher in poller.watchers:
                watcher.sink = poller.intake
        started = time.monotonic()
        [result] = poller.poll_once()
        elapsed = time.monotonic() - started
        assert result.report is not None, result.error
        return result.report.stored + result.report.errors, elapsed
    finally:
        db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--generated", action="store_true", help="ignore the corpus")
    args = parser.parse_args()

    with open(os.devnull, "w") as null:  # noqa: PTH123 - a text stream for the logger
        configure_logging("json", "info", stream=null)
        dovecot = Dovecot()
        dovecot.start()
        work = Path(tempfile.mkdtemp(prefix="fetch-bench."))
        try:
            account, raws = load(dovecot, args.count, args.generated)
            secret = work / "password"
            secret.write_text(account.password)
            settings = parse_config(
                {
                    "database": {"url": f"sqlite:///{work / 'unused.db'}"},
                    "imap": {
                        "host": "127.0.0.1",
                        "port": dovecot.port,
                        "security": "none",
                        "username": account.username,
                        "password_file": str(secret),
                        "batch_size": args.batch_size,
                    },
                },
                source="bench",
                base_dir=work,
            )
            assert settings.imap is not None

            started = time.monotonic()
            with ImapMailbox.open(ImapConnector(settings.imap)) as mailbox:
                mailbox.select("INBOX")
                fetched = sum(len(b) for b in mailbox.fetch(mailbox.search_from(1)))
            fetch_only = time.monotonic() - started

            now = datetime.now(UTC)
            started = time.monotonic()
            for raw in raws:
                parse_message(raw, received_at=now, scope="bench")
            parse_only = time.monotonic() - started

            bare, bare_s = timed_pass(settings, work, "bare.db", identity_only)
            stored, elapsed = timed_pass(settings, work, "full.db")
        finally:
            dovecot.cleanup()
            shutil.rmtree(work, ignore_errors=True)
    rate = stored / elapsed
    print(f"fetch only (no parse, no database): {fetched / fetch_only:6.0f} msg/s")
    print(f"parse only (triage.mail.parse_message): {len(raws) / parse_only:6.0f} msg/s")
    print(f"fetch + store, trivial parser: {bare / bare_s:6.0f} msg/s ({bare} messages)")
    print(
        f"fetch + parse + store (SQLite, one transaction per message): {rate:6.0f} msg/s"
        f" ({stored} messages in {elapsed:.1f} s; target >= {TARGET:.0f})"
    )
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f} (a shared machine)")
    return 0 if rate >= TARGET and stored == len(raws) else 1


if __name__ == "__main__":
    sys.exit(main())
