"""Training a new model and deciding whether it may replace the active one.

:func:`train_and_compare` keeps a stratified 20 % of the labeled examples
aside, trains on the rest, scores that model on the held-out part (these are
the metrics stored with the model) and, when there is an active model, scores
it on the same held-out examples. The new model replaces the active one only
if it is at least as good (:func:`classifiers.evaluation.at_least_as_good`).

The active model may have been trained on some of the held-out examples (it
was trained on the labels of last week, which are still in the database), and a
model scored on its own training data looks better than it is. So the
comparison uses only the held-out examples it has not seen, recognized by their
fingerprints. When fewer than :data:`MIN_FAIR_COMPARISON` are left (retraining
on nearly the same data), no fair comparison is possible and the new model,
trained on at least as much data, replaces the active one; the outcome says so.

Finally the model is refitted on all examples (the stored metrics are those of
the same recipe trained on 80 %). Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from classifiers.calibration import operating_points
from classifiers.evaluation import (
    CalibrationBin,
    Scores,
    at_least_as_good,
    expected_calibration_error,
    holdout_split,
    reliability,
    score,
)
from classifiers.features import Example
from classifiers.model import TrainedModel, check_training_data, train

__all__ = [
    "MIN_EXAMPLES_PER_CLASS_WITH_HOLDOUT",
    "MIN_FAIR_COMPARISON",
    "Comparison",
    "Outcome",
    "drop_rare_classes",
    "train_and_compare",
]

MIN_EXAMPLES_PER_CLASS_WITH_HOLDOUT = 5
"""A class needs this many examples so that 80 % still covers the calibration folds."""

MIN_FAIR_COMPARISON = 20
"""Held-out examples unseen by the active model needed to compare it with a new one."""


def drop_rare_classes(
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    min_per_class: int = MIN_EXAMPLES_PER_CLASS_WITH_HOLDOUT,
) -> tuple[list[Example], list[str], dict[str, int]]:
    """Leave out the classes with fewer than ``min_per_class`` examples.

    A new queue with two corrections so far should not stop retraining the rest.
    Returns the kept examples and labels (in order) and ``{left-out label: count}``.
    """
    counts = Counter(labels)
    rare = {label: n for label, n in sorted(counts.items()) if n < min_per_class}
    kept = [(e, y) for e, y in zip(examples, labels, strict=True) if y not in rare]
    return [e for e, _ in kept], [y for _, y in kept], rare


@dataclass(frozen=True, slots=True)
class Comparison:
    """The new and the active model scored on the same held-out examples.

    The held-out examples the active model was not trained on (recognized by
    fingerprint) are used when there are at least :data:`MIN_FAIR_COMPARISON`:
    scoring a model on its own training data flatters it. Otherwise both are
    scored on the whole held-out part.

    Attributes:
        incumbent_version: the active model's version.
        n_held_out: size of the held-out part.
        n_unseen: held-out examples the active model was not trained on.
        n_compared: examples both models were scored on.
        candidate: the new model's scores on them.
        incumbent: the active model's scores on the same examples.
        replace: the new model is at least as good (macro-F1, then accuracy).
    """

    incumbent_version: str
    n_held_out: int
    n_unseen: int
    n_compared: int
    candidate: Scores
    incumbent: Scores
    replace: bool

    @property
    def fair(self) -> bool:
        """Whether only examples the active model never saw were compared."""
        return self.n_compared == self.n_unseen


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :func:`train_and_compare` produced.

    Attributes:
        model: the new model (refitted on all examples), metrics included.
        holdout: its recipe's scores on the held-out examples.
        calibration: reliability bins of the held-out confidences.
        comparison: against the active model, None when there was none.
    """

    model: TrainedModel
    holdout: Scores
    calibration: tuple[CalibrationBin, ...]
    comparison: Comparison | None

    @property
    def replace(self) -> bool:
        """Whether the new model may become the active one (no active model, or not worse)."""
        return self.comparison is None or self.comparison.replace


def _compare(
    candidate: TrainedModel,
    incumbent: TrainedModel,
    held: Sequence[Example],
    held_labels: Sequence[str],
) -> Comparison:
    unseen = np.flatnonzero(~incumbent.has_seen(held)).tolist()
    # Prefer the held-out examples the active model never saw (a fair test); when too
    # few, both models are scored on the whole held-out part: the active model may be
    # flattered, so the new one must then beat it on its own ground (or be --forced).
    subset = unseen if len(unseen) >= MIN_FAIR_COMPARISON else list(range(len(held)))
    examples = [held[i] for i in subset]
    truth = [held_labels[i] for i in subset]
    cand = score(truth, candidate.predict_labels(examples))
    inc = score(truth, incumbent.predict_labels(examples))
    return Comparison(
        incumbent_version=incumbent.version,
        n_held_out=len(held),
        n_unseen=len(unseen),
        n_compared=len(subset),
        candidate=cand,
        incumbent=inc,
        replace=at_least_as_good(cand, inc),
    )


def train_and_compare(
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    trained_at: datetime,
    target: str = "queue",
    incumbent: TrainedModel | None = None,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    refit: bool = True,
) -> Outcome:
    """Train, score on a stratified held-out part, compare with ``incumbent``, refit.

    Args:
        examples, labels: the labeled data (same length).
        trained_at: aware training time (see :func:`classifiers.model.train`).
        target: ``queue`` or ``priority``.
        incumbent: the active model for ``target``, or None.
        holdout_fraction: share of examples kept aside (stratified).
        seed: makes the split reproducible.
        refit: refit on all examples at the end (False keeps the 80 % model: faster).

    Raises:
        UserError: fewer than 2 classes, or a class with fewer than
            :data:`MIN_EXAMPLES_PER_CLASS_WITH_HOLDOUT` examples.
    """
    check_training_data(labels, min_per_class=MIN_EXAMPLES_PER_CLASS_WITH_HOLDOUT)
    train_idx, held_idx = holdout_split(labels, fraction=holdout_fraction, seed=seed)
    tr_ex = [examples[i] for i in train_idx]
    tr_y = [labels[i] for i in train_idx]
    held = [examples[i] for i in held_idx]
    held_y = [labels[i] for i in held_idx]

    candidate = train(tr_ex, tr_y, trained_at=trained_at, target=target)
    probs, confidence = candidate.scores(held)
    predicted = [candidate.classes[i] for i in probs.argmax(axis=1)]
    holdout = score(held_y, predicted)
    bins = tuple(reliability(held_y, probs, candidate.classes, confidence=confidence))
    right = np.asarray(predicted, dtype=object) == np.asarray(held_y, dtype=object)
    comparison = _compare(candidate, incumbent, held, held_y) if incumbent is not None else None

    metrics = holdout.to_dict()
    metrics["holdout_fraction"] = holdout_fraction
    metrics["calibration_error"] = expected_calibration_error(bins)
    metrics["holdout_operating_points"] = [
        p.to_dict() for p in operating_points(confidence, right, step=0.05)
    ]
    if refit:
        final = train(examples, labels, trained_at=trained_at, target=target, metrics=metrics)
    else:
        final = TrainedModel(
            pipeline=candidate.pipeline,
            version=candidate.version,
            target=target,
            classes=candidate.classes,
            trained_at=candidate.trained_at,
            sklearn_version=candidate.sklearn_version,
            n_train=candidate.n_train,
            metrics=metrics,
            train_fingerprints=candidate.train_fingerprints,
            calibrator=candidate.calibrator,
            operating_points=candidate.operating_points,
        )
    return Outcome(model=final, holdout=holdout, calibration=bins, comparison=comparison)
