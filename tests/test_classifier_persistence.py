"""Model files: skops round trip, and refusal of tampered, foreign-version or untrusted files."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from datetime import UTC, datetime

import numpy as np
import pytest
import sklearn
import skops.io
from test_classifier_data import dataset

from classifiers import persistence
from classifiers.model import TrainedModel, train
from triage.errors import ModelError

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


class Gadget:
    """Not a type skops (or triage) trusts."""

    def __init__(self) -> None:
        self.value = 1


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    examples, labels = dataset(10)
    return train(examples, labels, trained_at=NOW, metrics={"accuracy": 0.9})


@pytest.fixture(scope="module")
def blob(model: TrainedModel) -> bytes:
    return persistence.dumps(model)


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _rezip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def test_round_trip_gives_the_same_model(model: TrainedModel, blob: bytes) -> None:
    loaded = persistence.loads(blob, expected_sha256=persistence.sha256(blob))
    examples, _ = dataset(3, seed=7)
    assert np.allclose(loaded.predict_proba(examples), model.predict_proba(examples))
    assert loaded.version == model.version
    assert loaded.classes == model.classes
    assert loaded.trained_at == NOW
    assert loaded.sklearn_version == sklearn.__version__
    assert loaded.n_train == model.n_train
    assert loaded.metrics == {"accuracy": 0.9}
    assert np.array_equal(loaded.train_fingerprints, model.train_fingerprints)


def test_the_file_is_skops_not_pickle_and_carries_its_metadata(blob: bytes) -> None:
    members = _members(blob)
    assert set(members) == {
        "model.json",
        "pipeline.skops",
        "vocabularies.json",
        "fingerprints.u64",
    }
    vocabularies = json.loads(members["vocabularies.json"])
    assert set(vocabularies) == {"text", "stems", "subject", "sender"}
    assert "számla" in vocabularies["text"]
    meta = json.loads(members["model.json"])
    assert meta["sklearn_version"] == sklearn.__version__
    assert meta["classes"] == ["billing", "client-support", "records", "scheduling"]
    assert meta["n_train"] == 80
    assert meta["trained_at"] == "2026-03-02T09:30:00+00:00"
    assert meta["metrics"] == {"accuracy": 0.9}
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(members["pipeline.skops"])  # noqa: S301 - showing it is not a pickle
    skops_types = skops.io.get_untrusted_types(data=members["pipeline.skops"])
    assert set(skops_types) <= set(persistence.EXTRA_TRUSTED_TYPES)


def test_a_changed_byte_is_refused_by_the_recorded_sha256(blob: bytes) -> None:
    digest = persistence.sha256(blob)
    tampered = bytearray(blob)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(ModelError, match="SHA-256"):
        persistence.loads(bytes(tampered), expected_sha256=digest)


def test_a_corrupted_file_without_a_digest_is_refused_not_crashed(blob: bytes) -> None:
    for data in (b"", b"garbage", blob[: len(blob) // 2], pickle.dumps({"a": 1})):
        with pytest.raises(ModelError):
            persistence.loads(data)


def test_a_model_from_another_scikit_learn_is_refused(blob: bytes) -> None:
    members = _members(blob)
    meta = json.loads(members["model.json"])
    meta["sklearn_version"] = "1.4.2"
    members["model.json"] = json.dumps(meta).encode()
    with pytest.raises(ModelError, match=r"scikit-learn 1\.4\.2.*triage train"):
        persistence.loads(_rezip(members))


def test_untrusted_types_inside_are_refused(blob: bytes) -> None:
    members = _members(blob)
    members["pipeline.skops"] = skops.io.dumps(Gadget())
    with pytest.raises(ModelError, match=r"untrusted types.*Gadget"):
        persistence.loads(_rezip(members))


def test_a_newer_format_or_missing_member_is_refused(blob: bytes) -> None:
    members = _members(blob)
    meta = json.loads(members["model.json"])
    meta["format"] = 99
    with pytest.raises(ModelError, match="format 99"):
        persistence.loads(_rezip({**members, "model.json": json.dumps(meta).encode()}))
    without = {k: v for k, v in members.items() if k != "pipeline.skops"}
    with pytest.raises(ModelError):
        persistence.loads(_rezip(without))
    vocabularies = json.loads(members["vocabularies.json"])
    vocabularies["text"] = vocabularies["text"][:-1]
    with pytest.raises(ModelError, match="'text' vocabulary does not fit"):
        persistence.loads(
            _rezip({**members, "vocabularies.json": json.dumps(vocabularies).encode()})
        )
    meta = json.loads(members["model.json"])
    meta["classes"] = ["billing"]
    with pytest.raises(ModelError, match="does not match its metadata"):
        persistence.loads(_rezip({**members, "model.json": json.dumps(meta).encode()}))
