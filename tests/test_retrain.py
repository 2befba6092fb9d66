"""Learning from corrections: the daemon's retraining, `triage model list|activate|rollback`.

In-process through :func:`support.cli.run_triage` (click's CliRunner).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from support.cli import run_triage

from classifiers.model import train
from triage.config import Settings, load_config
from triage.modelstore import active_model_info, list_models, save_model
from triage.services.retrain import MIN_EVALUATION, corrected_mail, retrain, retrain_due
from triage.store import Database
from triage.store.models import Message, TrainingLabel
from triage.training.corpus import CorpusRecord, render, shipped_dataset

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

# A topic the shipped set does not know (the office now also hands out parking cards
# for its building), which the assistants file under client-support every time.
PARKING = [
    ("Parkolókártya", "Jó napot! Elveszett a parkolókártyám, tudnának újat adni?"),
    ("parkolokartya", "Szia, a parkolokartya nem nyitja a sorompót reggel óta."),
    ("Parking card", "Hello, my parking card stopped working at the garage gate."),
    ("Re: parkolás", "A mélygarázs parkolókártyáját mikor vehetem át?"),
    ("garage card", "Could I get a second parking card for my colleague?"),
    ("Parkolókártya letiltása", "Kérem tiltsák le a régi parkolókártyát, ellopták."),
    ("parking", "The garage parking card reader rejects my card since Monday."),
    ("kártya a garázshoz", "Új kollégánk parkolókártyát kérne a garázshoz."),
    ("Parking card deposit", "Do we get the deposit back for the parking card we returned?"),
    ("parkolókártya díja", "Mennyi a letét a parkolókártyáért a garázsban?"),
    ("Re: Parking card", "Thanks, but the new parking card does not open the gate either."),
    ("sorompó", "A parkolókártyával nem jutok ki a garázsból, a sorompó nem nyílik."),
]


def store_mail(db: Database, subject: str, body: str, n: int) -> int:
    record = CorpusRecord(
        id=f"park-{n}",
        lang="hu",
        queue="client-support",
        priority="normal",
        topic="parking card",
        from_name=f"Ügyfél {n}",
        from_addr=f"ugyfel{n}@client{n}.example",
        subject=subject,
        body=body,
    )
    raw = render(record, index=n)
    with db.session() as session:
        row = Message(
            source="imap",
            direction="in",
            message_id=f"<park-{n}@x>",
            raw_sha256=hashlib.sha256(raw).hexdigest(),
            raw=raw,
            raw_size=len(raw),
            received_at=NOW,
            from_addr=record.from_addr,
            subject=subject,
        )
        session.add(row)
        session.flush()
        return row.id


def correct(db: Database, message_id: int, queue: str, at: datetime) -> None:
    with db.session() as session:
        session.add(
            TrainingLabel(
                message_id=message_id, queue=queue, source="correction", actor="anna", created_at=at
            )
        )


@pytest.fixture
def settings() -> Settings:
    return load_config(ROOT / "config.example.toml")


@pytest.fixture
def db(tmp_path: Path):
    database = Database.open(f"sqlite:///{tmp_path / 'triage.db'}")
    yield database
    database.dispose()


@pytest.fixture
def shipped_model(db: Database):
    """The model `triage train` makes from the shipped set, trained an hour before NOW."""
    data = shipped_dataset()
    model = train(list(data.examples), list(data.labels), trained_at=NOW - timedelta(hours=1))
    with db.session() as session:
        save_model(session, model, activate=True)
    return model


def test_corrected_mail_is_the_stored_mail_as_routing_saw_it(db: Database) -> None:
    ids = [store_mail(db, s, b, i) for i, (s, b) in enumerate(PARKING[:2])]
    correct(db, ids[0], "records", NOW)
    correct(db, ids[0], "client-support", NOW + timedelta(minutes=1))  # the latest wins
    correct(db, ids[1], "client-support", NOW)
    examples, labels = corrected_mail(db)
    assert labels == ["client-support", "client-support"]
    assert examples[0].subject == "Parkolókártya"
    assert examples[0].sender == "client0.example"


def test_retraining_is_due_after_enough_corrections_or_at_night(
    db: Database, settings: Settings, shipped_model
) -> None:
    assert settings.classifier.retrain_after == 20
    ids = [store_mail(db, s, b, i) for i, (s, b) in enumerate(PARKING)]
    for i in ids[:5]:
        correct(db, i, "client-support", NOW)
    assert retrain_due(db, settings, NOW) == ""  # 5 < 20, before 03:00 Budapest time
    # 03:00 Budapest is 02:00 UTC in March: the next night a correction is waiting.
    night = datetime(2026, 3, 3, 2, 30, tzinfo=UTC)
    assert "nightly retraining (03:00), 5 new corrections" in retrain_due(db, settings, night)
    fewer = settings.model_copy(
        update={"classifier": settings.classifier.model_copy(update={"retrain_after": 5})}
    )
    assert retrain_due(db, fewer, NOW) == "5 corrections since the active model was trained"
    off = settings.model_copy(
        update={"classifier": settings.classifier.model_copy(update={"retrain": False})}
    )
    assert retrain_due(db, off, night) == ""


def test_a_new_model_waits_for_enough_unseen_corrected_mail(
    db: Database, settings: Settings, shipped_model
) -> None:
    ids = [store_mail(db, s, b, i) for i, (s, b) in enumerate(PARKING[: MIN_EVALUATION - 1])]
    for i in ids:
        correct(db, i, "client-support", NOW)
    outcome = retrain(db, settings, NOW)
    assert outcome.version == ""
    assert not outcome.activated
    assert f"{MIN_EVALUATION - 1} corrected mails the active model has not seen" in outcome.reason
    with db.read_session() as session:
        assert [m.version for m in list_models(session)] == [shipped_model.version]


@pytest.mark.slow
def test_a_model_that_learned_the_corrections_is_activated_on_unseen_corrected_mail(
    db: Database, settings: Settings, shipped_model
) -> None:
    ids = [store_mail(db, s, b, i) for i, (s, b) in enumerate(PARKING)]
    for i in ids:
        correct(db, i, "client-support", NOW)
    outcome = retrain(db, settings, NOW + timedelta(minutes=5), reason="test")
    assert outcome.evaluated_on == len(PARKING)
    assert outcome.candidate is not None
    assert outcome.incumbent is not None
    # Each parking mail was answered by a model trained on the other parking mails
    # (never on itself): it learned the topic; the shipped model did not.
    assert outcome.candidate.accuracy > outcome.incumbent.accuracy
    assert outcome.activated
    with db.read_session() as session:
        active = active_model_info(session, "queue")
    assert active is not None
    assert active.version == outcome.version
    figures = active.metrics["retrain"]
    assert figures["evaluated_on"] == len(PARKING)
    assert figures["incumbent_version"] == shipped_model.version
    # The next retraining has no unseen corrected mail: it waits.
    again = retrain(db, settings, NOW + timedelta(minutes=10))
    assert again.version == ""
    assert "0 corrected mails the active model has not seen" in again.reason


def run(config: Path, *args: str) -> Result:
    return run_triage("--config", str(config), *args, cwd=config.parent)


def test_model_list_activate_and_one_command_rollback(tmp_path: Path) -> None:
    config = tmp_path / "triage.toml"
    shutil.copy(ROOT / "config.example.toml", config)
    db = Database.open(f"sqlite:///{tmp_path / 'triage.db'}")
    try:
        data = shipped_dataset()
        versions = []
        for hours in (3, 2, 1):
            model = train(
                list(data.examples[::2]),
                list(data.labels[::2]),
                trained_at=NOW - timedelta(hours=hours),
            )
            with db.session() as session:
                save_model(session, model, activate=True)
            versions.append(model.version)
        first, second, third = versions
    finally:
        db.dispose()

    listed = run(config, "model", "list")
    assert listed.exit_code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith(f"* {third}  queue")
    assert lines[1].startswith(f"  {second}")

    back = run(config, "model", "rollback")
    assert back.exit_code == 0, back.stderr
    assert f"rolled back: {second} is the active queue model again (was {third})" in back.stdout
    as_json = json.loads(run(config, "model", "list", "--json").stdout)
    assert [m["version"] for m in as_json if m["active"]] == [second]
    # Rolling back again goes to the model active before that one, not back and forth.
    again = run(config, "model", "rollback")
    assert f"rolled back: {first} is the active queue model again" in again.stdout

    chosen = run(config, "model", "activate", third)
    assert chosen.exit_code == 0, chosen.stderr
    assert f"activated {third} (queue)" in chosen.stdout
    unknown = run(config, "model", "activate", "queue-nope")
    assert unknown.exit_code != 0
    assert "no model 'queue-nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_rollback_without_an_earlier_model_says_so(tmp_path: Path) -> None:
    config = tmp_path / "triage.toml"
    shutil.copy(ROOT / "config.example.toml", config)
    assert run(config, "init").exit_code == 0
    done = run(config, "model", "rollback")
    assert done.exit_code != 0
    assert "no earlier active queue model to roll back to" in done.stderr
    assert "Traceback" not in done.stderr
