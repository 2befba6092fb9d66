"""Classifying a fetched batch in one call (the throughput fix found by the daemon benchmark).

One call of the scikit-learn pipeline per message cost ~4.4 ms, one call for a
batch ~0.5 ms per message: the watcher now hands each fetched batch to
``Intake.prepare`` (parse ahead) and the routing pipeline classifies it at once.
These tests prove the answers are the same as one by one, reach the right
message, are not used after the model changed, and that a real pass over Dovecot
asks the model once per fetched batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import append_many, imap_table, message

from classifiers.features import Example, example_from_message
from classifiers.model import Prediction, TrainedModel, train
from triage.config import Settings, parse_config
from triage.daemon import load_rules
from triage.imap.responses import FetchedMessage
from triage.imap.watch import SyncPlan
from triage.mail import parse_message
from triage.services.intake import Intake, Poller
from triage.services.pipeline import ModelHolder, RoutingPipeline
from triage.store import Database
from triage.store.models import Message, RoutingDecision

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

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        self.calls.append(len(examples))
        return self.model.predict(examples)

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
