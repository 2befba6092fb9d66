"""The routing model: a scikit-learn pipeline with calibrated probabilities.

Pipeline (built by :func:`build_pipeline`)::

    feature_columns(examples)                       classifiers.features
      -> ColumnTransformer                          one TF-IDF per column, weighted
           text     word unigrams (sublinear tf)            weight 1.0
           stems    5-letter accent-folded stems            weight 1.0
           subject  character 3-5-grams within words        weight 1.0
           sender   sender domain and parent domains        weight 0.3
      -> CalibratedClassifierCV(LinearSVC, temperature scaling, 3 folds, ensemble=False)

A linear SVM over word and stem TF-IDF is the strong classical text classifier
(Rennie et al. 2003 report 0.862 on 20 Newsgroups); its decision values are
turned into probabilities by temperature scaling (a softmax of the decision values
divided by one temperature, fitted on out-of-fold decision values to minimize log
loss), so that a confidence threshold of 0.8 means "right about 80 % of the time".
Temperature scaling keeps the SVM's ranking of the classes (Platt's one-vs-rest
sigmoids, tried too, changed it and lost small queues: macro-F1 0.28 against 0.35
on the ticket corpus), and it trains twice as fast.
``ensemble=False`` keeps one SVM (trained on all data), so the model stays small.

Pure: no I/O. Persistence is in :mod:`classifiers.persistence`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from classifiers.calibration import (
    ConfidenceCalibrator,
    OperatingPoint,
    fit_confidence,
    operating_points,
    threshold_for,
    top_margins,
)
from classifiers.cascade import DEFAULT_GATE, Encoder, SecondStage, train_second_stage
from classifiers.features import COLUMNS, STEM_PATTERN, Example, encoder_text, feature_columns
from classifiers.prediction import Prediction, choose
from triage.errors import UserError

__all__ = [
    "CALIBRATION_FOLDS",
    "MIN_EXAMPLES_PER_CLASS",
    "TARGETS",
    "Prediction",
    "TrainedModel",
    "build_pipeline",
    "check_training_data",
    "choose",
    "fingerprint",
    "train",
    "with_second_stage",
]

CALIBRATION_FOLDS = 3
"""Folds of out-of-fold decision values the probability calibration is fitted on."""

MIN_EXAMPLES_PER_CLASS = CALIBRATION_FOLDS
"""A class needs this many examples: one per calibration fold at least."""

CONFIDENCE_FOLDS = 5
"""Folds of the out-of-fold answers the routing confidence is calibrated on (fewer when a
class has fewer examples, at least :data:`CALIBRATION_FOLDS`; :data:`CALIBRATION_FOLDS`
above :data:`CONFIDENCE_FOLDS_MAX_EXAMPLES` examples, where each fold costs seconds)."""

CONFIDENCE_FOLDS_MAX_EXAMPLES = 5000
"""Training sets larger than this get :data:`CALIBRATION_FOLDS` confidence folds."""

TARGETS = ("queue", "priority")
"""What a model predicts."""

FEATURE_WEIGHTS = {"text": 1.0, "stems": 1.0, "subject": 1.0, "sender": 0.3}
"""Weight of each feature block (each block's rows are L2-normalized TF-IDF).

Chosen on 20 Newsgroups (train split only, scored on test) with quoted lines
removed, as the real parser removes them: the subject at 0.5 gave 0.856, at
1.0 0.862; the sender domain above 0.3 did not help (posters change between
the two halves of the split)."""

TOP_K = 3
"""Classes kept in :attr:`Prediction.top`."""


def build_pipeline(*, c: float = 0.3, calibration: str = "temperature") -> Pipeline:
    """The untrained pipeline: feature column array (see :func:`feature_columns`) -> classes.

    Args:
        c: the SVM's inverse regularization strength (smaller = smoother).
        calibration: ``temperature`` (one softmax temperature), ``sigmoid`` (Platt,
            one-vs-rest then renormalized) or ``isotonic`` (needs thousands of examples).
    """
    col = {name: i for i, name in enumerate(COLUMNS)}
    features = ColumnTransformer(
        [
            (
                "text",
                TfidfVectorizer(sublinear_tf=True, min_df=2, max_df=0.5, dtype=np.float32),
                col["text"],
            ),
            (
                "stems",
                TfidfVectorizer(
                    token_pattern=STEM_PATTERN,
                    lowercase=False,  # feature_columns lowercased and folded it
                    sublinear_tf=True,
                    min_df=2,
                    max_df=0.5,
                    dtype=np.float32,
                ),
                col["stems"],
            ),
            (
                "subject",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(3, 5),
                    sublinear_tf=True,
                    min_df=2,
                    dtype=np.float32,
                ),
                col["subject"],
            ),
            (
                "sender",
                TfidfVectorizer(
                    token_pattern=r"\S+",  # noqa: S106 - a regular expression, not a password
                    lowercase=False,
                    dtype=np.float32,
                ),
                col["sender"],
            ),
        ],
        transformer_weights=FEATURE_WEIGHTS,
    )
    classifier = CalibratedClassifierCV(
        # No intercept: a message with no known word gets decision values of 0 for
        # every class, hence equal probabilities (1/k), and goes to the fallback
        # queue; with an intercept it went to the biggest class, confidently.
        # random_state: liblinear's dual solver shuffles; fixed, the same data gives the
        # same model (and the same confidences) every time.
        LinearSVC(C=c, fit_intercept=False, max_iter=10_000, random_state=0),
        method=calibration,
        cv=CALIBRATION_FOLDS,
        ensemble=False,
    )
    return Pipeline([("features", features), ("classifier", classifier)])


def _drop_stop_words(pipeline: Pipeline) -> None:
    # A fitted TfidfVectorizer keeps every term it pruned (min_df, max_df) in
    # `stop_words_`, only for introspection: on 20 Newsgroups that is most of the
    # model's size. scikit-learn documents that it can be deleted.
    for _name, transformer, _column in pipeline.named_steps["features"].transformers_:
        if hasattr(transformer, "stop_words_"):
            del transformer.stop_words_


def fingerprint(example: Example) -> int:
    """A 64-bit hash of an example's subject and body (to recognize data a model was trained on)."""
    digest = hashlib.blake2b(
        f"{example.subject}\0{example.body}".encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A fitted pipeline and what it was trained on.

    Attributes:
        pipeline: the fitted scikit-learn pipeline (see :func:`build_pipeline`).
        version: unique name, ``<target>-<UTC time>-<random hex>``.
        target: ``queue`` or ``priority``.
        classes: the labels it can predict, sorted.
        trained_at: when it was trained (aware, UTC).
        sklearn_version: the scikit-learn version that trained it.
        n_train: number of training examples.
        metrics: held-out evaluation (:meth:`classifiers.evaluation.Scores.to_dict`
            plus ``calibration`` and ``holdout_size``), {} when not evaluated.
        train_fingerprints: sorted :func:`fingerprint` values of the training examples.
        calibrator: maps the top-two margin to the probability that the top answer is
            right (:mod:`classifiers.calibration`); None for models trained before it
            existed, whose confidence is the top class probability.
        operating_points: coverage and accuracy per confidence threshold on the
            out-of-fold answers the calibrator was fitted on (0, 0.01, ... 1).
        second_stage: the cascade's second stage (:mod:`classifiers.cascade`), None
            without one; it answers only when :meth:`predict` is given its encoder.
    """

    pipeline: Any
    version: str
    target: str
    classes: tuple[str, ...]
    trained_at: datetime
    sklearn_version: str
    n_train: int
    metrics: dict[str, Any] = field(default_factory=dict)
    train_fingerprints: npt.NDArray[np.uint64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.uint64)
    )
    calibrator: ConfidenceCalibrator | None = None
    operating_points: tuple[OperatingPoint, ...] = ()
    second_stage: SecondStage | None = None

    def _answer(
        self, examples: Sequence[Example]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
        if not examples:
            return np.zeros((0, len(self.classes))), np.zeros(0), None
        steps = self.pipeline.named_steps
        matrix = steps["features"].transform(feature_columns(examples))
        probs = np.asarray(steps["classifier"].predict_proba(matrix), dtype=np.float64)
        if self.calibrator is None:
            return probs, probs.max(axis=1), None
        # The one SVM trained on all data (ensemble=False) gives the decision values.
        svm = steps["classifier"].calibrated_classifiers_[0].estimator
        decision = np.asarray(svm.decision_function(matrix), dtype=np.float64)
        _, margins = top_margins(decision)
        return probs, self.calibrator(margins), decision

    def scores(
        self, examples: Sequence[Example]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``(probabilities, confidence)`` of each example (the first stage).

        ``probabilities`` has shape (n, len(classes)) (the class distribution, columns
        in :attr:`classes` order, rows summing to 1; its largest entry is the answer);
        ``confidence`` has shape (n,): the calibrated probability that the answer is
        right (:attr:`calibrator`), or the top probability for older models.
        """
        probs, confidence, _ = self._answer(examples)
        return probs, confidence

    def threshold_for(self, target_accuracy: float) -> OperatingPoint | None:
        """The confidence threshold that reached ``target_accuracy`` with the most
        coverage on the training data's out-of-fold answers; None when none did (or
        the model has no such table)."""
        return threshold_for(self.operating_points, target_accuracy)

    def predict_proba(self, examples: Sequence[Example]) -> npt.NDArray[np.float64]:
        """Class probabilities, shape (n, len(classes)), columns in :attr:`classes` order.

        Each row sums to 1.
        """
        if not examples:
            return np.zeros((0, len(self.classes)))
        probs = self.pipeline.predict_proba(feature_columns(examples))
        return np.asarray(probs, dtype=np.float64)

    def predict(
        self, examples: Sequence[Example], *, encoder: Encoder | None = None
    ) -> list[Prediction]:
        """One :class:`Prediction` per example, in order (batch them: it is much faster).

        ``confidence`` is the calibrated probability that ``label`` is right; ``top``
        lists the label with that confidence, then the next classes with their share
        of the rest (the class distribution's, rescaled to ``1 - confidence``).

        With a :attr:`second_stage` and its ``encoder``, the examples whose first-stage
        confidence is under the second stage's gate are answered by the second stage
        (``Prediction.stage == 2``); without the encoder the first stage answers all.
        """
        probs, confidence, decision = self._answer(examples)
        labels = probs.argmax(axis=1) if len(examples) else np.zeros(0, dtype=np.intp)
        stage = np.ones(len(examples), dtype=np.intp)
        second = self.second_stage
        if (
            second is not None
            and encoder is not None
            and decision is not None
            and encoder.name == second.encoder
        ):
            unsure = np.flatnonzero(confidence < second.gate)
            if unsure.size:
                vectors = encoder.encode(
                    [encoder_text(examples[int(i)].subject, examples[int(i)].body) for i in unsure]
                )
                answers, conf = second.answer(vectors, decision[unsure])
                labels = labels.copy()
                confidence = confidence.copy()
                labels[unsure] = answers
                confidence[unsure] = conf
                stage[unsure] = 2
        out: list[Prediction] = []
        for row, answer, conf, used in zip(probs, labels, confidence, stage, strict=True):
            label = int(answer)
            order = [label, *(int(i) for i in np.argsort(-row, kind="stable") if i != label)]
            order = order[:TOP_K]
            first = float(row[order[0]])
            rest = (1.0 - float(conf)) / (1.0 - first) if first < 1.0 else 0.0
            others = tuple(
                (self.classes[i], round(min(float(row[i]) * rest, float(conf)), 6))
                for i in order[1:]
            )
            top = ((self.classes[order[0]], round(float(conf), 6)), *others)
            out.append(
                Prediction(
                    label=top[0][0],
                    confidence=float(conf),
                    top=top,
                    model_version=self.version,
                    stage=int(used),
                )
            )
        return out

    def predict_labels(self, examples: Sequence[Example]) -> list[str]:
        """The most probable label of each example."""
        probs = self.predict_proba(examples)
        return [self.classes[i] for i in np.argmax(probs, axis=1)]

    def has_seen(self, examples: Sequence[Example]) -> npt.NDArray[np.bool_]:
        """Which of ``examples`` (same subject and body) were in the training data."""
        prints = np.array([fingerprint(e) for e in examples], dtype=np.uint64)
        return np.isin(prints, self.train_fingerprints)


def check_training_data(
    labels: Sequence[str], *, min_per_class: int = MIN_EXAMPLES_PER_CLASS
) -> None:
    """Refuse labels a model cannot be trained on.

    Raises:
        UserError: fewer than two classes, or a class with fewer than
            ``min_per_class`` examples (the message names the classes and counts).
    """
    counts = Counter(labels)
    if len(counts) < 2:
        found = ", ".join(f"{k!r} ({v})" for k, v in counts.items()) or "no labeled examples"
        classes = f"{len(counts)} class{'es' if len(counts) != 1 else ''}: " if counts else ""
        raise UserError(f"training needs at least 2 classes with labels; found {classes}{found}")
    small = sorted((k, v) for k, v in counts.items() if v < min_per_class)
    if small:
        listed = ", ".join(f"{k!r} ({v})" for k, v in small)
        raise UserError(f"too few examples: every class needs at least {min_per_class}; {listed}")


def _oof_decision(matrix: Any, y: npt.NDArray[np.object_], *, c: float) -> npt.NDArray[np.float64]:
    """Out-of-fold SVM decision values: each example answered by an SVM (the same
    settings) trained on the other folds, on the already vectorized ``matrix``."""
    smallest = min(Counter(y.tolist()).values())
    wanted = CONFIDENCE_FOLDS if len(y) <= CONFIDENCE_FOLDS_MAX_EXAMPLES else CALIBRATION_FOLDS
    folds = max(CALIBRATION_FOLDS, min(wanted, smallest))
    svm = LinearSVC(C=c, fit_intercept=False, max_iter=10_000, random_state=0)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    decision = cross_val_predict(clone(svm), matrix, y, cv=splitter, method="decision_function")
    return np.asarray(decision, dtype=np.float64)


def _fit_confidence(
    matrix: Any, y: npt.NDArray[np.object_], classes: Sequence[str], *, c: float, method: str
) -> tuple[ConfidenceCalibrator, list[OperatingPoint]]:
    """The confidence calibrator and operating points, from out-of-fold SVM answers."""
    top, margins = top_margins(_oof_decision(matrix, y, c=c))
    correct = np.asarray(classes, dtype=object)[top] == y
    calibrator = fit_confidence(margins, correct, classes=len(classes), method=method)
    return calibrator, operating_points(calibrator(margins), correct)


def with_second_stage(
    model: TrainedModel,
    examples: Sequence[Example],
    labels: Sequence[str],
    encoder: Encoder,
    *,
    gate: float = DEFAULT_GATE,
    c: float = 0.3,
) -> TrainedModel:
    """``model`` with a second stage (:mod:`classifiers.cascade`) trained on the same data.

    ``examples`` and ``labels`` must be what ``model`` was trained on; every example
    is encoded once (slow: the encoder runs a transformer).
    """
    y = np.asarray(labels, dtype=object)
    matrix = model.pipeline.named_steps["features"].transform(feature_columns(examples))
    decision = _oof_decision(matrix, y, c=c)
    vectors = encoder.encode([encoder_text(e.subject, e.body) for e in examples])
    stage = train_second_stage(
        vectors, decision, labels, model.classes, encoder=encoder.name, gate=gate
    )
    return replace(model, second_stage=stage)


def train(
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    trained_at: datetime,
    target: str = "queue",
    metrics: dict[str, Any] | None = None,
    c: float = 0.3,
    calibration: str = "temperature",
    confidence: str = "auto",
) -> TrainedModel:
    """Fit the pipeline on ``examples`` labeled ``labels`` (same length, same order),
    and the confidence calibrator on out-of-fold answers (:mod:`classifiers.calibration`).

    Args:
        trained_at: the training time, timezone-aware (stored, and part of the version).
        target: ``queue`` or ``priority``.
        metrics: held-out evaluation to keep with the model.
        c, calibration: see :func:`build_pipeline` (``calibration`` shapes the class
            distribution shown in explanations; the routing confidence is ``confidence``).
        confidence: the top-label calibration, ``auto``, ``sigmoid`` or ``isotonic``.

    Raises:
        UserError: too few classes or examples (:func:`check_training_data`), or no
            usable text at all.
        ValueError: ``examples`` and ``labels`` differ in length, unknown target,
            naive ``trained_at``.
    """
    if len(examples) != len(labels):
        raise ValueError(f"{len(examples)} examples but {len(labels)} labels")
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
    if trained_at.tzinfo is None:
        raise ValueError("trained_at must be timezone-aware")
    check_training_data(labels)
    pipeline = build_pipeline(c=c, calibration=calibration)
    y = np.asarray(labels, dtype=object)
    features, classifier = pipeline.named_steps["features"], pipeline.named_steps["classifier"]
    try:
        matrix = features.fit_transform(feature_columns(examples), y)
    except ValueError as exc:
        if "vocabulary" in str(exc) or "no terms remain" in str(exc):
            raise UserError(
                f"the training data has too little text to learn from ({exc})"
            ) from None
        raise
    classifier.fit(matrix, y)
    _drop_stop_words(pipeline)
    classes = tuple(str(c) for c in pipeline.classes_)
    calibrator, points = _fit_confidence(matrix, y, classes, c=c, method=confidence)
    trained_at = trained_at.astimezone(UTC)
    stamp = trained_at.strftime("%Y%m%dT%H%M%SZ")
    return TrainedModel(
        pipeline=pipeline,
        version=f"{target}-{stamp}-{secrets.token_hex(3)}",
        target=target,
        classes=classes,
        trained_at=trained_at,
        sklearn_version=sklearn.__version__,
        n_train=len(examples),
        metrics=dict(metrics or {}),
        train_fingerprints=np.unique(np.array([fingerprint(e) for e in examples], dtype=np.uint64)),
        calibrator=calibrator,
        operating_points=tuple(points),
    )
