"""Model files: a :class:`~classifiers.model.TrainedModel` to bytes and back, without pickle.

A model file is a ZIP archive (stdlib :mod:`zipfile`, deflated) of four members:

``model.json``
    what the model is: ``format`` (:data:`FORMAT`), ``version``, ``target``,
    ``classes``, ``trained_at`` (ISO 8601, UTC), ``sklearn_version``,
    ``skops_version``, ``n_train``, ``metrics`` (held-out scores), and, for
    models with a calibrated routing confidence (:mod:`classifiers.calibration`),
    ``confidence`` (the calibrator's parameters) and ``operating_points``
    (threshold, coverage, accuracy, routed). Read first, so a model from another
    scikit-learn is refused before any of it is built.
``pipeline.skops``
    the fitted scikit-learn pipeline in the skops format: a schema of known
    types, never pickle, so loading a file cannot run code. Only the types
    skops trusts by default plus :data:`EXTRA_TRUSTED_TYPES` are accepted.
``vocabularies.json``
    the terms of each TF-IDF vectorizer (``{"text": [term of feature 0, ...]}``),
    taken out of the skops data: skops writes a dict as one JSON node per entry,
    which made a 20 Newsgroups model take 8 s to save and to load instead of 1 s.
``fingerprints.u64``
    the sorted 64-bit fingerprints of the training examples (big-endian),
    so a comparison can leave out examples the model has already seen.
``second_stage.json`` (only with a cascade)
    the second stage's encoder name, gate, logistic-regression weights and
    confidence calibration (:class:`classifiers.cascade.SecondStage`).

:func:`loads` raises :class:`~triage.errors.ModelError` (never anything else)
for a file it will not use: a SHA-256 different from the expected one
(tampered or corrupted), not a model file, a newer format, another
scikit-learn version, or types outside the trusted set. The caller then
routes with rules and the fallback queue.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime
from typing import Any

import numpy as np
import sklearn
import skops
import skops.io

from classifiers.calibration import ConfidenceCalibrator, OperatingPoint
from classifiers.cascade import SecondStage
from classifiers.model import TARGETS, TrainedModel
from triage.errors import ModelError

__all__ = ["EXTRA_TRUSTED_TYPES", "FORMAT", "dumps", "loads", "sha256"]

FORMAT = 1
"""Version of the file layout written by :func:`dumps`."""

EXTRA_TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.calibration._TemperatureScaling",
)
"""scikit-learn's private calibration helpers, which skops does not trust by default."""

_META = "model.json"
_PIPELINE = "pipeline.skops"
_PRINTS = "fingerprints.u64"
_VOCABULARIES = "vocabularies.json"
_SECOND_STAGE = "second_stage.json"


def _vectorizers(pipeline: Any) -> dict[str, Any]:
    # The fitted vectorizers of the pipeline's ColumnTransformer, by name.
    steps = getattr(pipeline, "named_steps", None)
    features = steps.get("features") if isinstance(steps, dict) else None
    fitted = getattr(features, "named_transformers_", None)
    if fitted is None:
        return {}
    return {name: t for name, t in fitted.items() if hasattr(t, "idf_")}


def sha256(data: bytes) -> str:
    """Hex SHA-256 of a model file (stored beside it to detect tampering)."""
    return hashlib.sha256(data).hexdigest()


def dumps(model: TrainedModel) -> bytes:
    """The model file of ``model`` (see the module docstring for the layout).

    While it runs, the vectorizers' vocabularies are out of ``model.pipeline``:
    do not predict with the same model object from another thread meanwhile.
    """
    meta = {
        "format": FORMAT,
        "version": model.version,
        "target": model.target,
        "classes": list(model.classes),
        "trained_at": model.trained_at.isoformat(),
        "sklearn_version": model.sklearn_version,
        "skops_version": skops.__version__,
        "n_train": model.n_train,
        "metrics": model.metrics,
    }
    if model.calibrator is not None:
        meta["confidence"] = model.calibrator.to_dict()
        meta["operating_points"] = [p.to_dict() for p in model.operating_points]
    vocabularies: dict[str, list[str]] = {}
    taken: list[tuple[Any, dict[str, int]]] = []
    try:
        # Not thread-safe: the vocabularies are out of the pipeline while it is written.
        for name, vectorizer in _vectorizers(model.pipeline).items():
            vocabulary: dict[str, int] = vectorizer.vocabulary_
            terms = [""] * len(vocabulary)
            for term, index in vocabulary.items():
                terms[index] = term
            vocabularies[name] = terms
            del vectorizer.vocabulary_
            taken.append((vectorizer, vocabulary))
        pipeline_bytes = skops.io.dumps(model.pipeline)
    finally:
        for vectorizer, vocabulary in taken:
            vectorizer.vocabulary_ = vocabulary
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr(_META, json.dumps(meta, ensure_ascii=False, sort_keys=True))
        zf.writestr(_PIPELINE, pipeline_bytes)
        zf.writestr(_VOCABULARIES, json.dumps(vocabularies, ensure_ascii=False))
        zf.writestr(_PRINTS, np.sort(model.train_fingerprints).astype(">u8").tobytes())
        if model.second_stage is not None:
            zf.writestr(_SECOND_STAGE, json.dumps(model.second_stage.to_dict()))
    return buf.getvalue()


def _restore_vocabularies(pipeline: Any, raw: bytes, version: str) -> None:
    try:
        vocabularies = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"model {version}: unreadable {_VOCABULARIES} ({exc})") from None
    vectorizers = _vectorizers(pipeline)
    if not isinstance(vocabularies, dict) or set(vocabularies) != set(vectorizers):
        raise ModelError(f"model {version}: {_VOCABULARIES} does not match the pipeline")
    for name, vectorizer in vectorizers.items():
        terms = vocabularies[name]
        if (
            not isinstance(terms, list)
            or not all(isinstance(t, str) for t in terms)
            or len(set(terms)) != len(terms)
            or len(terms) != len(vectorizer.idf_)
        ):
            raise ModelError(f"model {version}: the {name!r} vocabulary does not fit its weights")
        vectorizer.vocabulary_ = {term: index for index, term in enumerate(terms)}


def _read_meta(zf: zipfile.ZipFile) -> dict[str, Any]:
    try:
        meta = json.loads(zf.read(_META).decode("utf-8"))
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"not a triage model file: {_META} missing or unreadable ({exc})"
        ) from None
    if not isinstance(meta, dict):
        raise ModelError(f"not a triage model file: {_META} is not an object")
    return meta


def _check_meta(meta: dict[str, Any]) -> None:
    fmt = meta.get("format")
    if fmt != FORMAT:
        raise ModelError(f"model file format {fmt!r} is not supported (this triage reads {FORMAT})")
    needed = {
        "version": str,
        "target": str,
        "classes": list,
        "trained_at": str,
        "sklearn_version": str,
        "n_train": int,
        "metrics": dict,
    }
    for key, kind in needed.items():
        if not isinstance(meta.get(key), kind):
            raise ModelError(f"model file: {_META} lacks a valid {key!r}")
    if meta["target"] not in TARGETS:
        raise ModelError(f"model file: unknown target {meta['target']!r}")
    if meta["sklearn_version"] != sklearn.__version__:
        raise ModelError(
            f"model {meta['version']} was trained with scikit-learn {meta['sklearn_version']};"
            f" this installation has {sklearn.__version__}: retrain it with `triage train`"
        )


def loads(data: bytes, *, expected_sha256: str | None = None) -> TrainedModel:
    """The model stored in ``data`` (bytes written by :func:`dumps`).

    Args:
        data: the model file.
        expected_sha256: hex digest recorded when it was saved; checked first when given.

    Raises:
        ModelError: SHA-256 mismatch (tampered or corrupted), not a model file,
            unsupported format, trained with another scikit-learn version,
            untrusted types inside, or a pipeline that does not match its metadata.
    """
    if expected_sha256 is not None and sha256(data) != expected_sha256.lower():
        raise ModelError(
            "model file does not match its recorded SHA-256: it was changed or corrupted"
            " after it was saved; refusing to load it"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            meta = _read_meta(zf)
            _check_meta(meta)
            pipeline_bytes = zf.read(_PIPELINE)
            vocabularies = zf.read(_VOCABULARIES)
            prints = np.frombuffer(zf.read(_PRINTS), dtype=">u8").astype(np.uint64)
            stage_raw = zf.read(_SECOND_STAGE) if _SECOND_STAGE in zf.namelist() else None
    except ModelError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, ValueError, OSError) as exc:
        raise ModelError(f"not a readable triage model file ({exc})") from None

    try:
        untrusted = skops.io.get_untrusted_types(data=pipeline_bytes)
    except Exception as exc:  # noqa: BLE001 - skops raises many kinds on garbage; all mean "refuse"
        raise ModelError(f"model {meta['version']}: unreadable skops data ({exc})") from None
    unexpected = sorted(set(untrusted) - set(EXTRA_TRUSTED_TYPES))
    if unexpected:
        raise ModelError(
            f"model {meta['version']} contains untrusted types: {', '.join(unexpected)}"
        )
    try:
        pipeline = skops.io.loads(pipeline_bytes, trusted=list(untrusted))
    except Exception as exc:  # noqa: BLE001 - as above: any failure to rebuild is a refusal
        raise ModelError(f"model {meta['version']}: cannot rebuild the pipeline ({exc})") from None

    _restore_vocabularies(pipeline, vocabularies, meta["version"])
    classes = tuple(str(c) for c in getattr(pipeline, "classes_", ()))
    if classes != tuple(meta["classes"]) or not hasattr(pipeline, "predict_proba"):
        raise ModelError(f"model {meta['version']}: the pipeline does not match its metadata")
    try:
        trained_at = datetime.fromisoformat(meta["trained_at"])
    except ValueError:
        raise ModelError(f"model {meta['version']}: bad trained_at") from None
    if trained_at.tzinfo is None:
        raise ModelError(f"model {meta['version']}: trained_at has no time zone")
    calibrator, points = _confidence(meta)
    second_stage = None
    if stage_raw is not None:
        try:
            second_stage = SecondStage.from_dict(json.loads(stage_raw.decode("utf-8")))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise ModelError(f"model {meta['version']}: unusable second stage ({exc})") from None
        if second_stage.classes != classes:
            raise ModelError(f"model {meta['version']}: the second stage has other classes")
    return TrainedModel(
        pipeline=pipeline,
        version=meta["version"],
        target=meta["target"],
        classes=classes,
        trained_at=trained_at,
        sklearn_version=meta["sklearn_version"],
        n_train=meta["n_train"],
        metrics=meta["metrics"],
        train_fingerprints=prints,
        calibrator=calibrator,
        operating_points=points,
        second_stage=second_stage,
    )


def _confidence(
    meta: dict[str, Any],
) -> tuple[ConfidenceCalibrator | None, tuple[OperatingPoint, ...]]:
    raw = meta.get("confidence")
    if raw is None:
        return None, ()
    try:
        if not isinstance(raw, dict):
            raise TypeError("not an object")  # noqa: TRY301 - one refusal path below
        calibrator = ConfidenceCalibrator.from_dict(raw)
        points = tuple(
            OperatingPoint(
                threshold=float(p["threshold"]),
                coverage=float(p["coverage"]),
                accuracy=float(p["accuracy"]),
                routed=int(p["routed"]),
            )
            for p in meta.get("operating_points", [])
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(
            f"model {meta['version']}: unusable confidence calibration ({exc})"
        ) from None
    return calibrator, points
