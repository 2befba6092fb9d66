"""The model registry in the database, and training labels read from it (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import select, update
from test_classifier_data import dataset

from classifiers import persistence
from classifiers.features import Example
from classifiers.model import TrainedModel, train
from triage.errors import ModelError, NotFoundError
from triage.modelstore import (
    activate_model,
    active_model_info,
    list_models,
    load_active_model,
    load_model,
    save_model,
)
from triage.store import Database
from triage.store.models import Message, Model, TrainingLabel
from triage.training.sources import load_database

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def models() -> tuple[TrainedModel, TrainedModel]:
    examples, labels = dataset(8)
    first = train(examples, labels, trained_at=NOW)
    second = train(examples, labels, trained_at=NOW)
    return first, second


def test_saved_model_loads_back_as_the_active_one(
    database: Database, models: tuple[TrainedModel, TrainedModel]
) -> None:
    model = models[0]
    with database.session() as s:
        assert load_active_model(s) is None
        info = save_model(s, model, activate=True)
    assert info.active
    assert info.version == model.version
    assert info.classes == model.classes
    assert info.sklearn_version == model.sklearn_version
    assert info.size > 1000
    with database.session() as s:
        loaded = load_active_model(s)
        assert active_model_info(s, "priority") is None
    assert loaded is not None
    examples, _ = dataset(2, seed=5)
    assert np.allclose(loaded.predict_proba(examples), model.predict_proba(examples))


def test_only_one_model_per_target_is_active(
    database: Database, models: tuple[TrainedModel, TrainedModel]
) -> None:
    first, second = models
    with database.session() as s:
        save_model(s, first, activate=True)
        save_model(s, second, activate=False)
    with database.session() as s:
        info = active_model_info(s)
        assert info is not None
        assert info.version == first.version
        activate_model(s, second.version)
    with database.session() as s:
        rows = list_models(s, "queue")
        assert [(r.version, r.active) for r in rows] == [
            (second.version, True),
            (first.version, False),
        ]
        with pytest.raises(NotFoundError):
            activate_model(s, "queue-nope")


def test_a_tampered_blob_in_the_database_is_refused(
    database: Database, models: tuple[TrainedModel, TrainedModel]
) -> None:
    model = models[0]
    with database.session() as s:
        save_model(s, model, activate=True)
    with database.session() as s:
        blob = s.execute(select(Model.blob)).scalar_one()
        changed = bytearray(blob)
        changed[100] ^= 0xFF
        s.execute(update(Model).values(blob=bytes(changed)))
    with database.session() as s, pytest.raises(ModelError, match="SHA-256"):
        load_active_model(s)


def test_a_model_from_another_scikit_learn_in_the_database_is_refused(
    database: Database, models: tuple[TrainedModel, TrainedModel]
) -> None:
    # A model written by another installation: the file says so, and its digest is right.
    model = models[0]
    import io  # noqa: PLC0415 - only this test rewrites a model file
    import zipfile  # noqa: PLC0415

    blob = persistence.dumps(model)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(members["model.json"])
    meta["sklearn_version"] = "0.24.2"
    members["model.json"] = json.dumps(meta).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, content in members.items():
            zf.writestr(n, content)
    foreign = buf.getvalue()
    with database.session() as s:
        s.add(
            Model(
                version=model.version,
                target="queue",
                active=True,
                sklearn_version="0.24.2",
                trained_at=NOW,
                n_train=1,
                classes=list(model.classes),
                metrics={},
                blob=foreign,
                sha256=persistence.sha256(foreign),
            )
        )
    with database.session() as s, pytest.raises(ModelError, match=r"scikit-learn 0\.24\.2"):
        load_active_model(s)
    with database.session() as s, pytest.raises(NotFoundError):
        load_model(s, "queue-missing")


def _stored_message(s: object, subject: str, body: str, sender: str) -> Message:
    msg = Message(
        source="imap",
        direction="in",
        message_id=f"<{abs(hash(subject))}@example.test>",
        raw_sha256="0" * 64,
        raw=b"x",
        raw_size=1,
        received_at=NOW,
        subject=subject,
        body_text=body,
        from_addr=sender,
    )
    s.add(msg)  # type: ignore[attr-defined]
    s.flush()  # type: ignore[attr-defined]
    return msg


def test_training_labels_come_from_the_database_latest_correction_wins(
    database: Database,
) -> None:
    with database.session() as s:
        msg = _stored_message(s, "Számla", "Hibás az összeg", "anna@ugyfel.example")
        s.add(TrainingLabel(message_id=msg.id, queue="client-support", source="assistant"))
        s.add(
            TrainingLabel(message_id=msg.id, queue="billing", priority="high", source="correction")
        )
        s.add(
            TrainingLabel(
                subject="Meeting", body="Move it to Friday", queue="scheduling", source="import"
            )
        )
        s.add(TrainingLabel(subject="", body="", queue="records", source="import"))
    with database.session() as s:
        queue_data = load_database(s)
        priority_data = load_database(s, target="priority")
    assert queue_data.examples == (
        Example("Számla", "Hibás az összeg", "anna@ugyfel.example"),
        Example("Meeting", "Move it to Friday", ""),
    )
    assert queue_data.labels == ("billing", "scheduling")
    assert queue_data.duplicates == 1  # the older label of the same message
    assert queue_data.skipped == 1  # no text
    assert priority_data.labels == ("high",)


def test_a_label_of_stored_mail_learns_from_the_mail_as_routing_saw_it(
    database: Database,
) -> None:
    """Quoted history is not learned from: the stored raw mail is parsed again."""
    raw = (
        "From: Anna <anna@ugyfel.example>\r\nTo: iroda@example.com\r\nSubject: Re: Számla\r\n"
        "Message-ID: <q1@ugyfel.example>\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nHibás az összeg.\r\n\r\n"
        "2026. márc. 1. 10:00 Iroda írta:\r\n> Időpontot egyeztetnénk.\r\n"
    ).encode()
    with database.session() as s:
        msg = Message(
            source="imap",
            direction="in",
            message_id="<q1@ugyfel.example>",
            raw_sha256="1" * 64,
            raw=raw,
            raw_size=len(raw),
            received_at=NOW,
            subject="Re: Számla",
            body_text="stale copy",
            from_addr="anna@ugyfel.example",
        )
        s.add(msg)
        s.flush()
        s.add(TrainingLabel(message_id=msg.id, queue="billing", source="correction"))
    with database.session() as s:
        data = load_database(s)
    (example,) = data.examples
    assert example.subject == "Re: Számla"
    assert "Hibás az összeg." in example.body
    assert "Időpontot" not in example.body
    assert example.sender == "ugyfel.example"
