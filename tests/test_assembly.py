"""The composition root: one place assembles triage from its settings (issue 14.4)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select, update
from structlog.testing import capture_logs
from test_classifier_data import dataset

from classifiers.model import train
from triage.assembly import LazyModels, assemble
from triage.clock import FixedClock
from triage.config import Settings, load_config
from triage.escalation import EmailNotifier
from triage.imap.watch import StoreOutcome
from triage.modelstore import save_model
from triage.services.pipeline import ModelHolder
from triage.store import Database
from triage.store.models import Message, Model, RoutingDecision

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def settings_for(tmp_path: Path, db_url: str, *, smtp: bool = True, imap: bool = True) -> Settings:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///triage.db"', f'url = "{db_url}"')
    text = text.replace('mode = "send"', 'mode = "folder"')
    path = tmp_path / "triage.toml"
    path.write_text(text, encoding="utf-8")
    settings = load_config(path)
    return settings.model_copy(
        update={"smtp": settings.smtp if smtp else None, "imap": settings.imap if imap else None}
    )


def mail() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Emma <emma@bakery-example.com>"
    msg["To"] = "inbox@example.com"
    msg["Subject"] = "Invoice 5"
    msg["Date"] = "Tue, 24 Nov 2026 09:55:00 +0000"
    msg["Message-ID"] = "<i5@bakery.example>"
    msg.set_content("Is invoice 5 paid?")
    return msg.as_bytes()


def test_the_parts_follow_the_settings(database: Database, tmp_path: Path, db_url: str) -> None:
    full = assemble(settings_for(tmp_path, db_url), database, models=ModelHolder())
    assert full.pipeline is not None
    assert full.poller is not None  # [imap]
    assert full.dispatcher is not None  # [smtp]
    assert isinstance(full.notifier, EmailNotifier)
    assert full.pipeline.rules is full.rules  # the daemon's SIGHUP swaps what routing reads
    assert full.pipeline.models is full.models
    bare = assemble(
        settings_for(tmp_path, db_url, smtp=False, imap=False), database, models=ModelHolder()
    )
    assert (bare.poller, bare.dispatcher, bare.notifier) == (None, None, None)
    assert assemble(settings_for(tmp_path, db_url), database, poll=False).poller is None


def test_an_intake_that_stores_only_routes_nothing(
    database: Database, tmp_path: Path, db_url: str
) -> None:
    """`triage import` without --open-tickets: no pipeline, no rules or models loaded."""
    parts = assemble(
        settings_for(tmp_path, db_url), database, route=False, clock=FixedClock(NOW), poll=False
    )
    assert parts.pipeline is None
    assert parts.rules.rules is None
    assert parts.intake.import_message(mail()) is StoreOutcome.STORED
    with database.session() as s:
        [row] = s.scalars(select(Message)).all()
        assert row.source == "import"
        assert row.ticket_id is None
        assert s.scalars(select(RoutingDecision)).all() == []


def test_lazy_models_load_when_the_first_message_is_routed(
    database: Database, tmp_path: Path, db_url: str
) -> None:
    """`poll --once` with nothing new never loads the model (nor scikit-learn); the first
    routed message loads it, and routes by it as an eagerly loaded model would."""
    examples, labels = dataset(4)
    model = train(examples, labels, trained_at=NOW)
    with database.session() as s:
        save_model(s, model, activate=True)
    settings = settings_for(tmp_path, db_url, smtp=False, imap=False)
    parts = assemble(settings, database, clock=FixedClock(NOW), lazy_models=True)
    assert isinstance(parts.models, LazyModels)
    assert not parts.models.loaded
    assert parts.intake.import_message(mail()) is StoreOutcome.STORED
    assert parts.models.loaded
    assert parts.models.queue is not None
    assert parts.models.queue.version == model.version
    with database.session() as s:
        decision = s.scalars(select(RoutingDecision)).one()
        assert decision.model_version == model.version


def test_a_refused_model_is_reported_when_lazily_loaded_as_at_start(
    database: Database, tmp_path: Path, db_url: str
) -> None:
    examples, labels = dataset(4)
    with database.session() as s:
        save_model(s, train(examples, labels, trained_at=NOW), activate=True)
        blob = bytearray(s.execute(select(Model.blob)).scalar_one())
        blob[100] ^= 0xFF
        s.execute(update(Model).values(blob=bytes(blob)))
    settings = settings_for(tmp_path, db_url, smtp=False, imap=False)
    eager = assemble(settings, database, clock=FixedClock(NOW))
    with capture_logs() as logs:
        lazy = assemble(settings, database, clock=FixedClock(NOW), lazy_models=True)
        assert not [e for e in logs if e["event"] == "model_refused"]  # nothing read yet
        assert lazy.models.queue is None
    assert [e["target"] for e in logs if e["event"] == "model_refused"] == ["queue"]
    assert lazy.models.note == eager.models.note
    assert "the active model was refused" in lazy.models.note
    assert "SHA-256" in lazy.models.note
