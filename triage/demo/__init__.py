"""``triage demo``: the main job on an embedded default, with no server.

In a working folder it writes a configuration (SQLite, acknowledgments as .eml
files), trains the routing model on the office-mail set shipped in the package
(:func:`triage.training.corpus.shipped_dataset`: realistic client mail in
Hungarian and English, each rendered as a mail and parsed as live mail is), ingests the
sample inbox (``data/inbox.mbox``) through the same pipeline as the daemon (parse,
route, ticket, SLA, acknowledgment), runs the SLA watch, writes the outgoing mail
as .eml files, and returns what happened for the CLI to print.

The inbox is replayed "as of" half an hour after its last message, so deadlines
read as they would have on that afternoon (the demo's clock is fixed, not the
machine's).
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesHeaderParser
from importlib.resources import files
from pathlib import Path

from classifiers.model import train
from triage.assembly import assemble
from triage.clock import FixedClock
from triage.config import Settings, load_config
from triage.desk import TicketDesk
from triage.errors import UserError
from triage.imap.watch import StoreOutcome
from triage.modelstore import save_model
from triage.services.dispatch import DispatchStats
from triage.services.mailsource import SourceMessage, open_mail_source
from triage.services.pipeline import ModelHolder, PipelineStats
from triage.smtp.folder import FolderSender
from triage.store import Database
from triage.tickets.queue import QueueRow
from triage.training.corpus import shipped_dataset

__all__ = ["DemoResult", "run_demo"]

_DATA = files("triage.demo") / "data"


@dataclass
class DemoResult:
    """What the demo did.

    Attributes:
        workdir: the working folder (database, config, outbox).
        now: the demo's fixed clock (UTC).
        timezone: the business time zone (IANA name) the demo's calendar uses.
        model_version, n_train: the trained model.
        stored: messages stored from the sample inbox.
        stats: routing counts (rule/model/fallback, joined, acks queued and suppressed).
        sent: outgoing mail written as .eml files (acknowledgments and escalations).
        escalations: escalation and warning rows made by the SLA watch.
        queue: the open tickets in queue order.
    """

    workdir: Path
    now: datetime
    timezone: str
    model_version: str
    n_train: int
    stored: int
    stats: PipelineStats
    sent: DispatchStats
    escalations: int
    queue: list[QueueRow] = field(default_factory=list)


def _inbox() -> list[SourceMessage]:
    source = open_mail_source(Path(str(_DATA / "inbox.mbox")))
    try:
        return list(source)
    finally:
        source.close()


def _as_of(messages: list[SourceMessage]) -> datetime:
    """Half an hour after the newest Date header of the sample inbox."""
    parser = BytesHeaderParser(policy=policy.default)
    dates = [parser.parsebytes(m.raw)["Date"] for m in messages]
    newest: datetime = max(d.datetime for d in dates if d is not None and d.datetime is not None)
    return newest.astimezone(UTC) + timedelta(minutes=30)


def _write_config(workdir: Path) -> Path:
    """Write the demo configuration into ``workdir``; return its path."""
    path = workdir / "triage.toml"
    path.write_text((files("triage.demo") / "config.toml").read_text(encoding="utf-8"), "utf-8")
    return path


_MARKER = ".triage-demo"
"""A file in the working folder saying the demo made it (and may empty it again)."""


def _prepare(workdir: Path) -> None:
    """Create ``workdir``, or empty an earlier demo's; never touch anything else.

    Raises:
        UserError: the folder exists with other content, or cannot be created.
    """
    try:
        if workdir.exists() and any(workdir.iterdir()):
            if not (workdir / _MARKER).is_file():
                raise UserError(
                    f"{workdir} exists and is not a triage demo folder; choose another --dir"
                )
            for name in ("triage.db", "triage.db-wal", "triage.db-shm", "triage.toml"):
                (workdir / name).unlink(missing_ok=True)
            shutil.rmtree(workdir / "outbox", ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / _MARKER).write_text("made by `triage demo`; it may empty this folder again\n")
    except OSError as exc:
        raise UserError(f"cannot use {workdir} for the demo: {exc.strerror}") from None


def run_demo(workdir: Path) -> DemoResult:
    """Run the whole demo in ``workdir`` (emptied first if it holds an earlier demo).

    Raises:
        UserError: ``workdir`` holds something other than an earlier demo, or cannot
            be created.
        StoreError: the database cannot be written.
    """
    _prepare(workdir)
    settings: Settings = load_config(_write_config(workdir))
    db = Database.open(settings.database_url)
    try:
        messages = _inbox()
        now = _as_of(messages)
        clock = FixedClock(now)

        dataset = shipped_dataset()
        model = train(list(dataset.examples), list(dataset.labels), trained_at=now)
        with db.session() as session:
            save_model(session, model, activate=True)

        assert settings.smtp is not None  # noqa: S101 - the demo config has [smtp]
        parts = assemble(
            settings,
            db,
            clock=clock,
            models=ModelHolder(queue=model),
            acknowledge_imports=True,
            sender=FolderSender(settings.resolve(settings.smtp.folder)),
            poll=False,
        )
        assert parts.pipeline is not None  # noqa: S101 - assembled with route=True
        assert parts.dispatcher is not None  # noqa: S101 - assembled with a sender
        pipeline = parts.pipeline
        stored = sum(
            parts.intake.import_message(m.raw, fallback_date=m.fallback_date) is StoreOutcome.STORED
            for m in messages
        )
        made = parts.escalation_pass(now)
        sent = asyncio.run(parts.dispatcher.run_once(now))

        queue = list(
            TicketDesk(db, settings, clock=clock, calendar=parts.calendar).queue(limit=None).rows
        )
        return DemoResult(
            workdir=workdir,
            now=now,
            timezone=settings.calendar.timezone,
            model_version=model.version,
            n_train=model.n_train,
            stored=stored,
            stats=pipeline.stats,
            sent=sent,
            escalations=len(made),
            queue=queue,
        )
    finally:
        db.dispose()
