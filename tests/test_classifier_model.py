"""The routing model: features, training, calibrated predictions, the threshold decision."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from test_classifier_data import QUEUES, dataset

from classifiers.features import (
    COLUMNS,
    Example,
    example_from_message,
    feature_columns,
    fold_accents,
    sender_domain,
)
from classifiers.model import (
    Prediction,
    TrainedModel,
    build_pipeline,
    check_training_data,
    choose,
    train,
)
from triage.domain import Address, DecidedBy, InboundMessage
from triage.errors import UserError

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    examples, labels = dataset(20)
    return train(examples, labels, trained_at=NOW)


def test_example_from_message_uses_the_new_text_and_the_sender_domain() -> None:
    msg = InboundMessage(
        message_id="<1@x>",
        subject="Re: Számla",
        received_at=NOW,
        from_=Address("Anna", "Anna@Ugyfel.Example.HU"),
        body_text="Köszönöm, rendben.",
        quoted_text="> Please find the invoice attached",
    )
    ex = example_from_message(msg)
    assert ex == Example(
        subject="Re: Számla", body="Köszönöm, rendben.", sender="ugyfel.example.hu"
    )
    assert "invoice" not in " ".join(feature_columns([ex])[0])


def test_feature_columns_fold_accents_cut_stems_and_list_parent_domains() -> None:
    cols = feature_columns([Example("Számlák", "A számlával gond van", "a@mail.Example.hu")])
    assert cols.shape == (1, len(COLUMNS))
    row = dict(zip(COLUMNS, cols[0], strict=True))
    assert row["text"] == "Számlák\nA számlával gond van"
    assert row["stems"] == "szamlak\na szamlaval gond van"
    stems = build_pipeline().named_steps["features"].transformers[1][1].build_analyzer()
    assert stems(row["stems"]) == ["szaml", "szaml", "gond", "van"]
    assert row["subject"] == "Számlák"
    assert row["sender"] == "d:mail.example.hu d:example.hu d:hu"
    assert feature_columns([Example("s", "b")])[0][3] == "d:-"
    assert fold_accents("ŐRÜLT űrlap ß") == "ORULT urlap ss"
    assert sender_domain("Béla <bela@Example.HU>") == "example.hu"


def test_predictions_are_calibrated_probabilities_over_the_queues(model: TrainedModel) -> None:
    examples, labels = dataset(5, seed=99)  # fresh texts (new numbers, days, combinations)
    probs = model.predict_proba(examples)
    assert probs.shape == (len(examples), len(QUEUES))
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert ((probs >= 0) & (probs <= 1)).all()
    predictions = model.predict(examples)
    assert all(isinstance(p, Prediction) for p in predictions)
    right = sum(p.label == y for p, y in zip(predictions, labels, strict=True))
    assert right / len(labels) >= 0.9
    first = predictions[0]
    assert first.model_version == model.version
    assert first.top[0] == (first.label, pytest.approx(first.confidence, abs=1e-6))
    assert [p for _, p in first.top] == sorted((p for _, p in first.top), reverse=True)
    assert len(first.top) == 3
    assert model.predict([]) == []


def test_model_records_what_it_was_trained_on(model: TrainedModel) -> None:
    assert model.classes == tuple(sorted(QUEUES))
    assert model.n_train == 160
    assert model.target == "queue"
    assert model.trained_at == NOW
    assert model.version.startswith("queue-20260302T093000Z-")
    examples, _ = dataset(20)
    assert model.has_seen(examples[:3]).all()
    assert not model.has_seen([Example("never", "seen before")]).any()


def test_hungarian_inflections_and_missing_accents_are_understood(model: TrainedModel) -> None:
    # None of these word forms is in the training data as written.
    probes = {
        "billing": Example("szamlak", "A szamlaimon rossz osszegek szerepelnek, kerem javitsak."),
        "scheduling": Example("Megbeszélésünk", "Időpontunkat át kellene tennünk."),
        "records": Example("Bizonylataink", "Csatoltam bankszámlakivonatainkat."),
    }
    for queue, probe in probes.items():
        assert model.predict([probe])[0].label == queue, probe


def test_a_message_with_no_known_word_is_a_tie_with_low_confidence(model: TrainedModel) -> None:
    # Every decision value is 0 (no intercept): a tie of all classes. The training data
    # is easy (every out-of-fold answer right), yet a tie must not be called certain.
    known = model.predict([Example("Invoice 1234 overdue", "I paid the invoice yesterday.")])[0]
    unknown = model.predict([Example("Xqzv", "wxkq jjzt")])[0]
    assert known.confidence > 0.8
    assert unknown.confidence < 0.4
    probs = model.predict_proba([Example("Xqzv", "wxkq jjzt")])[0]
    assert probs == pytest.approx([1 / len(QUEUES)] * len(QUEUES))
    assert choose(unknown, 0.6, "unsorted") == ("unsorted", DecidedBy.FALLBACK)


def test_choose_routes_by_threshold() -> None:
    pred = Prediction("billing", 0.72, (("billing", 0.72), ("records", 0.2)), "v1")
    assert choose(pred, 0.6, "unsorted") == ("billing", DecidedBy.MODEL)
    assert choose(pred, 0.72, "unsorted") == ("billing", DecidedBy.MODEL)
    assert choose(pred, 0.8, "unsorted") == ("unsorted", DecidedBy.FALLBACK)


def test_training_refuses_one_class_or_tiny_classes() -> None:
    with pytest.raises(UserError, match="at least 2 classes"):
        check_training_data(["billing"] * 10)
    with pytest.raises(UserError, match=r"'records' \(2\)"):
        check_training_data(["billing"] * 10 + ["records"] * 2)
    examples, labels = dataset(1)
    with pytest.raises(UserError, match="too few examples"):
        train(examples, labels, trained_at=NOW)


def test_training_without_any_text_is_a_user_error() -> None:
    examples = [Example("", "") for _ in range(8)]
    with pytest.raises(UserError, match="too little text"):
        train(examples, ["a"] * 4 + ["b"] * 4, trained_at=NOW)


def test_training_checks_its_arguments() -> None:
    examples, labels = dataset(3)
    with pytest.raises(ValueError, match="timezone-aware"):
        train(examples, labels, trained_at=datetime(2026, 1, 1))  # noqa: DTZ001 - the point
    with pytest.raises(ValueError, match="unknown target"):
        train(examples, labels, trained_at=NOW, target="colour")
    with pytest.raises(ValueError, match="labels"):
        train(examples, labels[:-1], trained_at=NOW)


def test_a_priority_model_is_trained_the_same_way() -> None:
    examples, queues = dataset(10)
    priorities = ["urgent" if q == "billing" else "normal" for q in queues]
    model = train(examples, priorities, trained_at=NOW, target="priority")
    assert model.classes == ("normal", "urgent")
    assert model.version.startswith("priority-")
    assert model.predict([Example("Lejárt számla", "Fizetési emlékeztető")])[0].label == "urgent"
