"""Intake speed fixes found by the daemon benchmark (benchmarks/daemon_bench.py).

1. Classifying a fetched batch in one call: one call of the scikit-learn pipeline
   per message cost ~4.4 ms, one call for a batch ~0.5 ms per message. The watcher
   now hands each fetched batch to ``Intake.prepare`` (parse ahead) and the routing
   pipeline classifies it at once. The tests prove the answers are the same as one
   by one, reach the right message, are not used after the model changed, and that
   a real pass over Dovecot asks the model once per fetched batch.
2. No statement that cannot change anything: opening a ticket for a message just
   stored no longer sends an UPDATE of routing_decisions (the decision is added
   after the ticket).
3. Threading finds an outgoing Message-ID through an index, not a scan of the
   whole outbox (15 ms per reply at 20,000 rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import append_many, imap_table, message

from classifiers.features import Example, example_from_message
from classifiers.model import Prediction, TrainedModel, train
from triage.assembly import load_rules
from triage.config import Settings, parse_config
from triage.imap.responses import FetchedMessage
from triage.imap.watch import SyncPlan
from triage.mail import parse_message
from triage.services.intake import Intake, Poller
from triage.services.pipeline import ModelHolder, RoutingPipeline
from triage.store import Database
from triage.store.models import Message, OutboxMail, RoutingDecision
from triage.tickets.matching import find_ticket

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
SUBJECTS = (
    "Invoice 7 is wrong",
    "Can we move our meeting?",
    "Bank statement for March",
    "How do I share a document?",
    "Számla kérdés",
    "Időpont egyeztetés",
    "Hello",
)


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    data = load_csv_demo()
    return train(list(data.examples), list(data.labels), trained_at=NOW)


def load_csv_demo() -> Any:
    from triage.training.sources import load_csv  # noqa: PLC0415

    return load_csv(Path(str(files("triage.demo") / "data" / "training.csv")))


class Counting:
    """A trained model that counts its predict calls (and the examples per call)."""

    def __init__(self, model: TrainedModel) -> None:
        self.model = model
        self.calls: list[int] = []

    def predict(self, examples: Sequence[Example], **options: Any) -> list[Prediction]:
        self.calls.append(len(examples))
        return self.model.predict(examples, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def settings_for(db_url: str, tmp_path: Path, account: ImapAccount | None = None) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": db_url},
        "queues": {q: {} for q in ("billing", "scheduling", "records", "client-support")}
        | {"unsorted": {}, "bulk": {"no_sla": True}},
        "team": {"assistants": {"anna": "anna@example.test"}},
        "routing": {"rule_files": [], "bulk_queue": "bulk", "confidence_threshold": 0.0},
    }
    if account is not None:
        data["imap"] = imap_table(account, tmp_path, batch_size=10)
    return parse_config(data, source=str(tmp_path / "t.toml"), base_dir=tmp_path)


def raws(count: int) -> list[bytes]:
    return [
        message(n, subject=SUBJECTS[n % len(SUBJECTS)], sender=f"c{n}@example.net")
        for n in range(1, count + 1)
    ]


def decisions(db: Database) -> dict[int, RoutingDecision]:
    with db.read_session() as s:
        rows = s.execute(select(Message.uid, RoutingDecision).join(RoutingDecision)).all()
        s.expunge_all()
    return {int(uid): d for uid, d in rows}


def test_a_prepared_batch_is_classified_in_one_call_with_the_same_answers(
    database: Database, tmp_path: Path, model: TrainedModel
) -> None:
    settings = settings_for("sqlite://", tmp_path)
    counting = Counting(model)
    holder = ModelHolder(queue=counting)  # type: ignore[arg-type]
    pipeline = RoutingPipeline(settings, rules=load_rules(settings), models=holder)
    intake = Intake(database, pipeline=pipeline)
    plan = SyncPlan(folder="INBOX", uidvalidity=7, first_uid=1)
    batch = [FetchedMessage(n, raw, NOW, len(raw)) for n, raw in enumerate(raws(12), start=1)]

    intake.prepare(plan, batch)
    assert counting.calls == [12]
    for fetched in batch:
        intake.store(plan, fetched)
    assert counting.calls == [12]  # no second call: every message used its prepared answer

    stored = decisions(database)
    assert set(stored) == set(range(1, 13))
    for fetched in batch:
        alone = model.predict([example_from_message(parse_message(fetched.raw))])[0]
        decision = stored[fetched.uid]
        assert decision.queue == alone.label
        assert decision.confidence == pytest.approx(alone.confidence, abs=1e-9)


def test_a_prepared_answer_is_not_used_once_another_model_is_active(
    database: Database, tmp_path: Path, model: TrainedModel
) -> None:
    settings = settings_for("sqlite://", tmp_path)
    data = load_csv_demo()
    newer = train(list(data.examples), list(data.labels), trained_at=NOW)
    holder = ModelHolder(queue=model)
    pipeline = RoutingPipeline(settings, rules=load_rules(settings), models=holder)
    intake = Intake(database, pipeline=pipeline)
    plan = SyncPlan(folder="INBOX", uidvalidity=7, first_uid=1)
    batch = [FetchedMessage(n, raw, NOW, len(raw)) for n, raw in enumerate(raws(3), start=1)]

    intake.prepare(plan, batch)
    intake.store(plan, batch[0])
    holder.queue = newer  # `triage train` activated a new model meanwhile
    intake.store(plan, batch[1])
    intake.store(plan, batch[2])

    versions = {uid: d.model_version for uid, d in decisions(database).items()}
    assert versions == {1: model.version, 2: newer.version, 3: newer.version}


@pytest.mark.imap
def test_a_pass_over_dovecot_asks_the_model_once_per_fetched_batch(
    dovecot: Dovecot,
    imap_account: ImapAccount,
    sqlite_url: str,
    tmp_path: Path,
    model: TrainedModel,
) -> None:
    client = dovecot.client(imap_account)
    append_many(client, raws(25))
    client.logout()
    settings = settings_for(sqlite_url, tmp_path, imap_account)
    db = Database.open(sqlite_url)
    try:
        counting = Counting(model)
        holder = ModelHolder(queue=counting)  # type: ignore[arg-type]
        pipeline = RoutingPipeline(settings, rules=load_rules(settings), models=holder)
        [result] = Poller(settings, db, pipeline=pipeline).poll_once()
        assert result.report is not None
        assert result.report.stored == 25
        assert counting.calls == [10, 10, 5]  # imap.batch_size = 10
        assert len(decisions(db)) == 25
        assert {d.decided_by for d in decisions(db).values()} == {"model"}
    finally:
        db.dispose()


def test_storing_a_new_message_sends_no_update_of_routing_decisions(
    database: Database, tmp_path: Path, model: TrainedModel
) -> None:
    settings = settings_for("sqlite://", tmp_path)
    pipeline = RoutingPipeline(settings, models=ModelHolder(queue=model))
    intake = Intake(database, pipeline=pipeline)
    plan = SyncPlan(folder="INBOX", uidvalidity=7, first_uid=1)
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        raw = raws(1)[0]
        intake.store(plan, FetchedMessage(1, raw, NOW, len(raw)))
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    assert any(s.startswith("INSERT INTO tickets") for s in statements)
    assert any(s.startswith("INSERT INTO routing_decisions") for s in statements)
    assert not [s for s in statements if s.startswith("UPDATE routing_decisions")]
    [decision] = decisions(database).values()
    with database.read_session() as s:
        message_row = s.scalars(select(Message)).one()
        assert decision.ticket_id == message_row.ticket_id is not None


def test_threading_looks_up_outgoing_message_ids_through_an_index(database: Database) -> None:
    now = datetime.now(UTC)
    with database.session() as s:
        s.execute(
            insert(OutboxMail),
            [
                {
                    "kind": "ack",
                    "dedupe_key": f"ack:{i}",
                    "message_id": f"<ack-{i}@triage.example>",
                    "mail_from": "office@example.test",
                    "rcpt_to": ["client@example.net"],
                    "rcpt_key": "client@example.net",
                    "raw": b"x" * 1500,
                    "status": "sent",
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for i in range(3000)
            ],
        )
    if database.engine.dialect.name == "sqlite":
        with database.read_session() as s:
            plan = s.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT message_id, ticket_id FROM outbox"
                    " WHERE message_id IN ('<a@b>', '<c@d>')"
                )
            ).all()
        assert "USING INDEX ix_outbox_message_id" in " ".join(str(row[-1]) for row in plan)
    else:
        with database.read_session() as s:
            s.execute(text("ANALYZE outbox"))
            plan = s.execute(
                text(
                    "EXPLAIN SELECT message_id, ticket_id FROM outbox"
                    " WHERE message_id IN ('<a@b>', '<c@d>')"
                )
            ).all()
        assert "ix_outbox_message_id" in " ".join(str(row[0]) for row in plan)
    with database.read_session() as s:
        assert find_ticket(s, references=["<ack-7@triage.example>"]) is None  # no ticket_id
