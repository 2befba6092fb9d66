"""Benchmark: a mail backlog through the whole pipeline, triage beside django-helpdesk.

One run of this script measures both systems on the same machine, the same
Dovecot and the same mail, interleaved (triage, peer, triage, peer, ...), with
the load average noted beside every figure (the machine may be shared: figures
taken under load are lower bounds).

- **Mail**: the SpamAssassin ``easy_ham`` folder from ../shared/corpus, cycled to
  ``--count`` messages; copies after the first round get a new Message-ID
  (``<cN.original>``) so that every message is a new conversation. APPENDed once
  to a template mailbox; each run gets a fresh mailbox that is a copy of the
  template's Maildir (so a run never sees mail another run touched, and the
  peer's delete-after-import does not matter).
- **triage**: ``triage --config F poll --once`` (the installed console script, a
  separate process: start-up included) against a fresh database that has the
  model trained on the demo data active: fetch, parse, route with the rules and
  the model, ticket with SLA deadlines, acknowledgment queued, and then the
  acknowledgments written (``smtp.mode = "folder"``). Logs as JSON at info level
  to a file, as in production.
- **django-helpdesk** (the peer): ``python -m django get_email --quiet`` from a
  checkout outside this repository (``--peer DIR``: the repository's root, with
  ``src/helpdesk``; ``--peer-python``: a Python that has its dependencies) with
  one IMAP queue on the same Dovecot and a fresh database; it parses, creates a
  ticket and a follow-up per message and mails the submitter (Django's
  file-based e-mail backend, the counterpart of triage's folder mode). Its code
  is never copied into this repository.
- **Peak RSS** of each process (``wait4``'s ``ru_maxrss``).
- SQLite (a file) and PostgreSQL (a throwaway database at 127.0.0.1:5432, user
  postgres; left out when it does not answer).

    .venv/bin/python benchmarks/backlog_bench.py [--count 10000] [--runs 2]
        [--databases sqlite,postgresql] [--peer DIR] [--peer-python PY] [--no-peer]
        [--workers 1,2] [--folders 2] [--before DIR] [--statements] [--py-spy DIR]

``--root DIR``: run that checkout's ``triage`` package instead of the installed one
(a fixed copy while the working tree changes). ``--before DIR``: also run the
``triage`` package of another checkout (e.g. a
``git worktree`` of the commit before a change), interleaved with this one, as
system ``triage-before``. ``--statements``: run triage through
``benchmarks/counted_triage.py``, which counts every SQL statement by kind, and
report statements and transactions per message (the counting costs a few
microseconds per statement; both systems pay it). ``--py-spy DIR``: sample each
single-worker triage run with ``py-spy record`` (100 samples/s, raw collapsed
stacks, one file per run in DIR; summarize with ``benchmarks/profile_summary.py``);
the sampling slows the run a little, so take rates from runs without it.

Several workers (``--workers 1,2``, PostgreSQL only): that many ``poll --once``
processes start together on the same mailbox; the folders (``--folders N``: the
mail spread evenly over INBOX, Box2, ...) are shared out by lease; the time is
until the last one ends.

Targets (issue 18): >= 600 msg/s into SQLite, >= 500 msg/s into PostgreSQL, at
least 20x django-helpdesk in the same run; peak RSS <= 300 MB; two workers with
two busy folders >= 1.6x one worker.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.corpusmail import without_envelope  # noqa: E402
from support.daemonproc import daemon_config, triage_command, write_config  # noqa: E402
from support.dovecot import Dovecot, ImapAccount  # noqa: E402
from support.postgres import postgres_unavailable_reason, throwaway_database  # noqa: E402

SHARED = Path(os.environ.get("TRIAGE_SHARED", ROOT.parent / "shared"))
EASY_HAM = SHARED / "corpus" / "spamassassin" / "easy_ham"
TARGETS = {"sqlite": 600.0, "postgresql": 500.0}
PEER_FACTOR = 20.0
RSS_TARGET_MB = 300.0
WORKERS_FACTOR = 1.6


def load_average() -> str:
    """``load a b c`` (1, 5, 15 minutes)."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


# -- the mail ---------------------------------------------------------------------------

_MESSAGE_ID = re.compile(rb"^(message-id:[ \t]*<)", re.IGNORECASE | re.MULTILINE)


def backlog_mail(count: int) -> list[bytes]:
    """``count`` easy_ham messages (CRLF), cycled; later rounds get new Message-IDs."""
    files = sorted(p for p in EASY_HAM.iterdir() if p.is_file() and p.name != "cmds")
    if not files:
        raise SystemExit(f"no mail in {EASY_HAM}")
    originals = [
        without_envelope(p.read_bytes()).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        for p in files
    ]
    out = []
    for n in range(count):
        raw = originals[n % len(originals)]
        copy = n // len(originals)
        if copy:
            raw = _MESSAGE_ID.sub(lambda m, c=copy: m.group(1) + b"c%d." % c, raw, count=1)
        out.append(raw)
    return out


class Mailboxes:
    """One Dovecot with a template mailbox; each run gets a fresh copy of it."""

    def __init__(self, raws: list[bytes], folders: list[str]) -> None:
        self.dovecot = Dovecot()
        self.dovecot.start()
        self.template = self.dovecot.add_user()
        client = self.dovecot.client(self.template)
        started = time.monotonic()
        share = -(-len(raws) // len(folders))
        for n, folder in enumerate(folders):
            if not client.folder_exists(folder):
                client.create_folder(folder)
            mine = raws[n * share : (n + 1) * share]
            for start in range(0, len(mine), 250):
                client.multiappend(folder, mine[start : start + 250])
        client.logout()
        self.append_seconds = time.monotonic() - started

    def _maildir(self, account: ImapAccount) -> Path:
        return self.dovecot.dir / "mail" / account.username

    def fresh(self) -> ImapAccount:
        """A new account whose INBOX is a copy of the template's."""
        account = self.dovecot.add_user()
        target = self._maildir(account)
        shutil.copytree(self._maildir(self.template), target, symlinks=True)
        if self.dovecot.root:
            for path in [target, *target.rglob("*")]:
                shutil.chown(path, "dovecot", "dovecot")
        return account

    def drop(self, account: ImapAccount) -> None:
        """Delete a used mailbox (keeps the disk small over many runs)."""
        shutil.rmtree(self._maildir(account), ignore_errors=True)

    def close(self) -> None:
        self.dovecot.cleanup()


# -- one measured process -----------------------------------------------------------------


@dataclass
class Result:
    system: str
    database: str
    messages: int
    seconds: float
    rss_mb: float
    load_before: str
    load_after: str
    detail: str

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (
            f"{self.system:<16} {self.database:<10} {self.messages:>6} msgs"
            f" {self.seconds:7.1f} s {self.rate:7.1f} msg/s  peak RSS {self.rss_mb:5.0f} MB"
            f"  [{self.load_before} -> {self.load_after}]  {self.detail}"
        )


def timed(argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> tuple[float, float]:
    """Run ``argv`` to its end; (wall seconds, peak RSS in MB). Raises on a non-zero exit."""
    with log.open("ab") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=cwd
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{argv[:4]} exited with {proc.returncode}:\n{tail}")
    return seconds, usage.ru_maxrss / 1024


# -- triage -------------------------------------------------------------------------------


def demo_model() -> Any:
    from classifiers.model import train  # noqa: PLC0415
    from triage.training.sources import load_csv  # noqa: PLC0415

    data = load_csv(ROOT / "triage" / "demo" / "data" / "training.csv")
    return train(list(data.examples), list(data.labels), trained_at=datetime.now(UTC))


def triage_counts(url: str) -> tuple[int, int, int]:
    """(messages, tickets, acknowledgments) stored at ``url``."""
    from sqlalchemy import func, select  # noqa: PLC0415

    from triage.store import Database  # noqa: PLC0415
    from triage.store.models import Message, OutboxMail, Ticket  # noqa: PLC0415

    db = Database.open(url, migrate=False)
    try:
        with db.read_session() as s:
            return (
                int(s.scalar(select(func.count()).select_from(Message)) or 0),
                int(s.scalar(select(func.count()).select_from(Ticket)) or 0),
                int(
                    s.scalar(
                        select(func.count()).select_from(OutboxMail).where(OutboxMail.kind == "ack")
                    )
                    or 0
                ),
            )
    finally:
        db.dispose()


def run_triage(  # noqa: PLR0917 - one run's parts
    bench: Bench,
    database: str,
    url: str,
    account: ImapAccount,
    work: Path,
    workers: int,
    system: str = "triage",
) -> Result:
    from triage.modelstore import save_model  # noqa: PLC0415
    from triage.store import Database  # noqa: PLC0415

    data = daemon_config(
        account,
        1,
        url,
        work,
        smtp={"mode": "folder", "folder": str(work / "outbox"), "host": "", "port": 25},
    )
    data["imap"]["folders"] = bench.folders
    config = write_config(work / "triage.toml", data)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = triage_command()
    counted = work / "statements.json"
    root = bench.args.before if system == "triage-before" else bench.args.root
    if bench.args.statements or root:
        command = [sys.executable, str(ROOT / "benchmarks" / "counted_triage.py")]
        env["TRIAGE_STATEMENTS"] = str(counted) if bench.args.statements else ""
        if root:
            env["TRIAGE_ROOT"] = root
    # the measured checkout creates its own schema (another checkout may be at
    # another revision); the model is then written without migrating
    subprocess.run(
        [*command, "--config", str(config), "init"],
        env={**env, "TRIAGE_STATEMENTS": ""},
        cwd=work,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    db = Database.open(url, migrate=False)
    with db.session() as s:
        save_model(s, bench.model, activate=True)
    db.dispose()
    load_before = load_average()
    argv = [*command, "--config", str(config), "poll", "--once"]
    if workers == 1 and bench.args.py_spy:
        profile = Path(bench.args.py_spy) / f"{work.name}-{system}.txt"
        spy = [str(Path(sys.executable).parent / "py-spy"), "record", "-r", "100", "-f", "raw"]
        argv = [*spy, "-o", str(profile), "--", *argv]
    if workers == 1:
        seconds, rss = timed(argv, env, work / "triage.log", work)
    else:
        seconds, rss = _parallel([argv] * workers, env, work)
    messages, tickets, acks = triage_counts(url)
    detail = f"{tickets} tickets, {acks} acks"
    if bench.args.statements and counted.exists():
        counts = json.loads(counted.read_text())
        total = sum(n for k, n in counts.items() if k != "COMMIT")
        top = ", ".join(f"{k} {n / max(messages, 1):.2f}" for k, n in list(counts.items())[:12])
        detail += (
            f"; {total / max(messages, 1):.2f} statements/msg,"
            f" {counts.get('COMMIT', 0)} commits; per msg: {top}"
        )
    return Result(
        system + (f" x{workers}" if workers > 1 else ""),
        database,
        messages,
        seconds,
        rss,
        load_before,
        load_average(),
        detail,
    )


def _parallel(argvs: list[list[str]], env: dict[str, str], work: Path) -> tuple[float, float]:
    """Run the processes at once; (seconds until the last ends, the largest peak RSS)."""
    started = time.monotonic()
    procs = []
    for n, argv in enumerate(argvs):
        out = (work / f"triage-{n}.log").open("ab")
        procs.append(
            (
                subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=work
                ),
                out,
            )
        )
    rss = 0.0
    for proc, out in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.close()
        rss = max(rss, usage.ru_maxrss / 1024)
        if proc.returncode != 0:
            raise RuntimeError(f"a worker exited with {proc.returncode}; see {work}")
    return time.monotonic() - started, rss


# -- django-helpdesk ----------------------------------------------------------------------

PEER_SETTINGS = """\
import os
SECRET_KEY = "benchmark-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
    "django.contrib.humanize", "django.contrib.messages", "django.contrib.sessions",
    "django.contrib.sites", "django.contrib.staticfiles", "bootstrap4form",
    "rest_framework", "helpdesk",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {{"context_processors": [
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
        "django.template.context_processors.request",
    ]}},
}}]
ROOT_URLCONF = "bench_urls"
STATIC_URL = "/static/"
SITE_ID = 1
DATABASES = {{"default": {database}}}
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = {outbox!r}
DEFAULT_FROM_EMAIL = "office@example.test"
MEDIA_ROOT = {media!r}
HELPDESK_TEAMS_MODEL = "auth.User"
HELPDESK_TEAMS_MIGRATION_DEPENDENCIES = []
HELPDESK_KBITEM_TEAM_GETTER = lambda _: None
LOGGING = {{"version": 1, "disable_existing_loggers": False}}
"""

PEER_URLS = """\
from django.urls import include, path
urlpatterns = [path("", include("helpdesk.urls", namespace="helpdesk"))]
"""

PEER_QUEUE = """\
from helpdesk.models import Queue
Queue.objects.create(
    title="Office", slug="office", email_address="office@example.test",
    allow_email_submission=True, email_box_type="imap", email_box_host="127.0.0.1",
    email_box_port={port}, email_box_ssl=False, email_box_user={user!r},
    email_box_pass={password!r}, email_box_imap_folder="INBOX", email_box_interval=0,
    logging_type="none",
)
"""

PEER_COUNT = """\
from helpdesk.models import FollowUp, Ticket
print("COUNTS", Ticket.objects.count(), FollowUp.objects.count())
"""


def peer_database(url: str) -> str:
    if url.startswith("sqlite:///"):
        return repr(
            {"ENGINE": "django.db.backends.sqlite3", "NAME": url.removeprefix("sqlite:///")}
        )
    name = url.rsplit("/", 1)[1]
    return repr(
        {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
        }
    )


def run_peer(bench: Bench, database: str, url: str, account: ImapAccount, work: Path) -> Result:
    (work / "outbox").mkdir(exist_ok=True)
    (work / "media").mkdir(exist_ok=True)
    (work / "bench_settings.py").write_text(
        PEER_SETTINGS.format(
            database=peer_database(url),
            outbox=str(work / "outbox"),
            media=str(work / "media"),
        )
    )
    (work / "bench_urls.py").write_text(PEER_URLS)
    env = {
        **os.environ,
        "PYTHONPATH": f"{bench.peer / 'src'}:{work}",
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        # the peer tries STARTTLS first: let it verify the test server's certificate
        "SSL_CERT_FILE": account.cafile,
    }
    django = [bench.peer_python, "-m", "django"]
    log = work / "peer.log"
    subprocess.run([*django, "migrate", "-v", "0"], env=env, cwd=work, check=True)
    script = PEER_QUEUE.format(port=account.port, user=account.username, password=account.password)
    subprocess.run(
        [*django, "shell", "-c", script], env=env, cwd=work, check=True, stdout=subprocess.DEVNULL
    )
    load_before = load_average()
    seconds, rss = timed([*django, "get_email", "--quiet"], env, log, work)
    counted = subprocess.run(
        [*django, "shell", "-c", PEER_COUNT],
        env=env,
        cwd=work,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tickets, followups = map(int, counted.split("COUNTS", 1)[1].split()[:2])
    mails = len(list((work / "outbox").iterdir()))
    return Result(
        "django-helpdesk",
        database,
        followups,
        seconds,
        rss,
        load_before,
        load_average(),
        f"{tickets} tickets, {mails} mail files",
    )


# -- the bench ------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    boxes: Mailboxes
    model: Any
    work: Path

    @property
    def folders(self) -> list[str]:
        return ["INBOX", *(f"Box{n}" for n in range(2, self.args.folders + 1))]

    @property
    def peer(self) -> Path:
        return Path(self.args.peer)

    @property
    def peer_python(self) -> str:
        return self.args.peer_python or str(self.peer / "venv" / "bin" / "python")


@contextmanager
def sqlite_url(work: Path) -> Iterator[str]:
    yield f"sqlite:///{work / 'bench.db'}"


def one_run(  # noqa: PLR0917 - one run's parts
    bench: Bench, system: str, database: str, make_url: Callable[[Path], Any], n: int, workers: int
) -> Result:
    work = bench.work / f"{system}-{database}-{n}-{workers}"
    work.mkdir()
    account = bench.boxes.fresh()
    try:
        with make_url(work) as url:
            if system.startswith("triage"):
                return run_triage(bench, database, url, account, work, workers, system)
            return run_peer(bench, database, url, account, work)
    finally:
        bench.boxes.drop(account)
        if not bench.args.keep:
            shutil.rmtree(work, ignore_errors=True)


def pg_url(_work: Path) -> AbstractContextManager[str]:
    return throwaway_database()


def summary(results: list[Result], count: int) -> bool:
    ok = True
    print("\nSUMMARY (best run of each; range over runs)")
    for database in sorted({r.database for r in results}):
        mine = [r for r in results if r.database == database and r.system == "triage"]
        peer = [r for r in results if r.database == database and r.system == "django-helpdesk"]
        if not mine:
            continue
        best = max(mine, key=lambda r: r.rate)
        rates = [r.rate for r in mine]
        complete = all(r.messages == count for r in mine)
        line = (
            f"{database}: triage {best.rate:.0f} msg/s ({min(rates):.0f}-{max(rates):.0f};"
            f" {count} messages in {min(r.seconds for r in mine):.1f} s;"
            f" peak RSS {max(r.rss_mb for r in mine):.0f} MB)"
        )
        target = TARGETS[database]
        ok &= best.rate >= target and complete and max(r.rss_mb for r in mine) <= RSS_TARGET_MB
        if peer:
            prates = [r.rate for r in peer]
            factor = best.rate / max(prates)
            line += (
                f"; django-helpdesk {max(prates):.1f} msg/s ({min(prates):.1f}-{max(prates):.1f};"
                f" {min(r.seconds for r in peer):.1f} s); triage/peer {factor:.1f}x"
            )
            ok &= factor >= PEER_FACTOR
        line += (
            f" (targets >= {target:.0f} msg/s, >= {PEER_FACTOR:.0f}x, <= {RSS_TARGET_MB:.0f} MB)"
        )
        if not complete:
            line += " INCOMPLETE: not every message was stored"
        print(line)
        before = [r for r in results if r.database == database and r.system == "triage-before"]
        if before:
            brates = [r.rate for r in before]
            print(
                f"{database}: triage-before {max(brates):.0f} msg/s"
                f" ({min(brates):.0f}-{max(brates):.0f}); after/before"
                f" {best.rate / max(brates):.2f}x"
            )
    return ok


def scaling(results: list[Result]) -> bool:
    """Several workers against one (PostgreSQL): best rate of each worker count."""
    by_system: dict[str, float] = {}
    for r in results:
        if r.database == "postgresql" and (r.system == "triage" or r.system.startswith("triage x")):
            by_system[r.system] = max(by_system.get(r.system, 0.0), r.rate)
    one = by_system.get("triage")
    ok = True
    for system, rate in sorted(by_system.items()):
        if system == "triage" or not one:
            continue
        factor = rate / one
        print(
            f"postgresql: {system} {rate:.0f} msg/s = {factor:.2f}x one worker"
            f" (target for 2 workers: >= {WORKERS_FACTOR}x)"
        )
        if system == "triage x2":
            ok &= factor >= WORKERS_FACTOR
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--peer", default=os.environ.get("HELPDESK_PEER", ""))
    parser.add_argument("--peer-python", default="")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument(
        "--workers",
        default="1",
        help="triage poll --once processes at once, e.g. 1,2 (more than 1: PostgreSQL only)",
    )
    parser.add_argument("--folders", type=int, default=1, help="folders the mail is spread over")
    parser.add_argument("--keep", action="store_true", help="keep each run's folder")
    parser.add_argument("--before", default="", help="a checkout to run as triage-before")
    parser.add_argument("--root", default="", help="a checkout to run as triage (not installed)")
    parser.add_argument("--statements", action="store_true", help="count SQL statements")
    parser.add_argument("--py-spy", default="", help="a folder for py-spy profiles of triage")
    args = parser.parse_args()
    databases = args.databases.split(",")
    if "postgresql" in databases and (reason := postgres_unavailable_reason()):
        print(f"PostgreSQL left out: {reason}")
        databases.remove("postgresql")
    systems = ["triage-before", "triage"] if args.before else ["triage"]
    if args.folders > 1 and not args.no_peer:
        print("django-helpdesk left out: its queue reads one folder (use --folders 1)")
        args.no_peer = True
    if args.no_peer or not args.peer:
        print("django-helpdesk left out: " + ("--no-peer" if args.no_peer else "no --peer DIR"))
    elif not (Path(args.peer) / "src" / "helpdesk").is_dir():
        raise SystemExit(f"--peer {args.peer}: no src/helpdesk there")
    else:
        systems.append("django-helpdesk")
    print(f"start: {load_average()} on {os.cpu_count()} cores")
    raws = backlog_mail(args.count)
    folders = ["INBOX", *(f"Box{n}" for n in range(2, args.folders + 1))]
    boxes = Mailboxes(raws, folders)
    size = sum(len(r) for r in raws) / 1e6
    print(
        f"mail: {len(raws)} easy_ham messages ({size:.1f} MB) in {len(folders)} folders,"
        f" appended once in {boxes.append_seconds:.0f} s; {load_average()}"
    )
    work = Path(tempfile.mkdtemp(prefix="backlog-bench."))
    results: list[Result] = []
    try:
        bench = Bench(args, boxes, demo_model(), work)
        makers = {"sqlite": sqlite_url, "postgresql": pg_url}
        worker_counts = [int(w) for w in args.workers.split(",")]
        for n in range(args.runs):
            for database in databases:
                for system in systems:
                    for workers in worker_counts if system.startswith("triage") else [1]:
                        if workers > 1 and database != "postgresql":
                            continue  # several workers share folders by lease on PostgreSQL
                        result = one_run(bench, system, database, makers[database], n, workers)
                        results.append(result)
                        print(result.line(), flush=True)
    finally:
        boxes.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ok = summary(results, args.count)
    ok &= scaling(results)
    print(f"end: {load_average()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
