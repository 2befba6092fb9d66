"""Honest confidence: the probability that the model's top answer is right.

Routing asks one question of a prediction: "is the top queue right?". So the
confidence is calibrated for exactly that (top-label calibration, Guo et al.
2017; Kumar et al. 2019), not as a full class distribution:

1. the score is the margin between the SVM's two highest decision values
   (:func:`top_margins`): a message that two queues fit about equally well gets
   a margin near 0, one that only fits one queue a large margin;
2. out-of-fold margins (each example scored by a model that did not see it:
   :func:`classifiers.model.train` makes them with stratified folds) and
   whether the top answer was right are what the calibrator is fitted on;
3. the calibrator (:class:`ConfidenceCalibrator`) is Platt's sigmoid
   (``sigmoid``: two parameters, right for a few hundred examples) or isotonic
   regression (``isotonic``: any monotone shape, needs more data;
   :data:`ISOTONIC_MIN` examples for ``auto``).

The SVM's ranking of the classes is untouched (the top class is still the
highest decision value), so accuracy does not change: Platt's one-vs-rest
sigmoids, which re-rank classes, cost 20 Newsgroups 0.2 points and isotonic
one-vs-rest 0.5 (0.863 -> 0.861 / 0.858, bydate split).

From the same out-of-fold answers :func:`operating_points` tabulates, for every
threshold, the share of mail routed automatically (coverage) and how often it
was right; :func:`threshold_for` picks the threshold that reaches a target
accuracy with the most coverage (``routing.target_accuracy``).

Pure: no I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

__all__ = [
    "CALIBRATION_METHODS",
    "ISOTONIC_MIN",
    "ConfidenceCalibrator",
    "OperatingPoint",
    "fit_confidence",
    "operating_points",
    "point_at",
    "threshold_for",
    "top_margins",
]

CALIBRATION_METHODS = ("auto", "sigmoid", "isotonic")
"""``auto`` is isotonic from :data:`ISOTONIC_MIN` out-of-fold examples on, else sigmoid."""

ISOTONIC_MIN = 2000
"""Out-of-fold examples from which ``auto`` picks isotonic regression (it overfits below)."""

CONFIDENCE_RANGE = (0.001, 0.999)
"""A confidence is never reported as certain either way."""


def top_margins(
    decision: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """The top class index and the top-two margin of each row of decision values.

    Args:
        decision: shape (n, k) for k >= 3 classes, or (n,) for two classes
            (scikit-learn's binary decision function: positive means the second class).

    Returns:
        ``(top, margin)``, shape (n,) each; ``margin >= 0``. With one decision value
        per row (two classes) the margin is twice its absolute value, as if the
        two classes had scores ``-d`` and ``d``.
    """
    values = np.asarray(decision, dtype=np.float64)
    if values.ndim == 1:
        top = (values > 0).astype(np.intp)
        return top, 2.0 * np.abs(values)
    if values.shape[1] == 1:
        return np.zeros(values.shape[0], dtype=np.intp), np.full(values.shape[0], np.inf)
    order = np.argsort(-values, axis=1, kind="stable")
    rows = np.arange(values.shape[0])
    top = order[:, 0]
    margin = values[rows, top] - values[rows, order[:, 1]]
    return top.astype(np.intp), margin


@dataclass(frozen=True, slots=True)
class ConfidenceCalibrator:
    """Maps a top-two margin to the probability that the top answer is right.

    Attributes:
        method: ``sigmoid`` (``1 / (1 + exp(-(a * margin + b)))``) or ``isotonic``
            (piecewise-linear through the points ``xs`` -> ``ys``, flat beyond them).
        a, b: the sigmoid's parameters (unused for isotonic).
        xs, ys: the isotonic fit's points, ascending (unused for sigmoid).
        n: out-of-fold examples it was fitted on.
        accuracy: how often the top answer was right on them.
    """

    method: str
    a: float = 0.0
    b: float = 0.0
    xs: tuple[float, ...] = ()
    ys: tuple[float, ...] = ()
    n: int = 0
    accuracy: float = 0.0

    def __call__(self, margins: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The confidence of each margin, within :data:`CONFIDENCE_RANGE`."""
        m = np.asarray(margins, dtype=np.float64)
        if self.method == "isotonic":
            out = np.interp(m, np.asarray(self.xs), np.asarray(self.ys))
        else:
            z = np.clip(self.a * m + self.b, -500.0, 500.0)
            out = 1.0 / (1.0 + np.exp(-z))
        return np.asarray(np.clip(out, *CONFIDENCE_RANGE), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stored in the model file's ``model.json``)."""
        return {
            "method": self.method,
            "a": self.a,
            "b": self.b,
            "xs": list(self.xs),
            "ys": list(self.ys),
            "n": self.n,
            "accuracy": self.accuracy,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfidenceCalibrator:
        """The calibrator :meth:`to_dict` wrote.

        Raises:
            ValueError: an unknown method, non-finite numbers, or isotonic points
                that are not ascending pairs.
        """
        method = data.get("method")
        if method not in ("sigmoid", "isotonic"):
            raise ValueError(f"unknown confidence calibration {method!r}")
        a, b = float(data.get("a", 0.0)), float(data.get("b", 0.0))
        xs = tuple(float(x) for x in data.get("xs", ()))
        ys = tuple(float(y) for y in data.get("ys", ()))
        numbers = (a, b, *xs, *ys)
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError("confidence calibration with non-finite numbers")
        if method == "isotonic" and (
            not xs or len(xs) != len(ys) or any(x2 < x1 for x1, x2 in itertools.pairwise(xs))
        ):
            raise ValueError("isotonic confidence calibration needs ascending points")
        return cls(
            method=method,
            a=a,
            b=b,
            xs=xs,
            ys=ys,
            n=int(data.get("n", 0)),
            accuracy=float(data.get("accuracy", 0.0)),
        )


ANCHOR_SHARE = 0.02
"""Weight of the tie anchor, as a share of the out-of-fold examples (at least
:data:`ANCHOR_MIN`)."""

ANCHOR_MIN = 3.0
"""The least weight of the tie anchor."""


def fit_confidence(
    margins: npt.ArrayLike,
    correct: npt.ArrayLike,
    *,
    classes: int,
    method: str = "auto",
) -> ConfidenceCalibrator:
    """Fit the confidence calibrator on out-of-fold margins and whether the top answer was right.

    Args:
        margins: top-two margins (:func:`top_margins`) of out-of-fold predictions.
        correct: for each, whether the top class was the true one.
        classes: how many classes the model chooses from (2 or more).
        method: ``sigmoid``, ``isotonic`` or ``auto`` (:data:`CALIBRATION_METHODS`).

    A margin of 0 is a tie: the model has no reason to prefer its answer, and a
    message with no known word ties every class. Out-of-fold data rarely shows
    that (on easy data every answer is right and every margin large, and a fit
    on it alone would call a tie certain), so the fit also sees a tie anchor: a
    weight of :data:`ANCHOR_SHARE` of the examples (at least :data:`ANCHOR_MIN`)
    at margin 0, right 1 time in ``classes``. Platt's smoothed targets keep
    the rest away from exactly 0 and 1.

    Raises:
        ValueError: unknown method, no examples, lengths differ, fewer than 2 classes.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration {method!r}; expected one of {CALIBRATION_METHODS}")
    if classes < 2:
        raise ValueError("confidence calibration needs at least 2 classes")
    m = np.asarray(margins, dtype=np.float64)
    y = np.asarray(correct, dtype=bool)
    if m.shape != y.shape or m.size == 0:
        raise ValueError("fit_confidence needs equally many (and some) margins and outcomes")
    finite = m[np.isfinite(m)]
    m = np.where(np.isfinite(m), m, (finite.max() if finite.size else 0.0) + 1.0)
    n = int(m.size)
    accuracy = float(y.mean())
    chosen = method if method != "auto" else ("isotonic" if n >= ISOTONIC_MIN else "sigmoid")
    # Platt (1999): smoothed targets, positives (N+ + 1)/(N+ + 2), negatives 1/(N- + 2);
    # each example becomes a right and a wrong row weighted by its target.
    positives, negatives = int(y.sum()), n - int(y.sum())
    targets = np.where(y, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0))
    anchor = max(ANCHOR_MIN, ANCHOR_SHARE * n)
    x = np.concatenate([m, m, [0.0, 0.0]])
    outcome = np.concatenate([np.ones(n), np.zeros(n), [1.0, 0.0]])
    weight = np.concatenate(
        [targets, 1.0 - targets, [anchor / classes, anchor * (1.0 - 1.0 / classes)]]
    )
    if chosen == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
        iso.fit(x, outcome, sample_weight=weight)
        return ConfidenceCalibrator(
            "isotonic",
            xs=tuple(float(v) for v in iso.X_thresholds_),
            ys=tuple(float(v) for v in iso.y_thresholds_),
            n=n,
            accuracy=accuracy,
        )
    model = LogisticRegression(C=1e6, max_iter=1000)
    model.fit(x.reshape(-1, 1), outcome, sample_weight=weight)
    a = float(model.coef_[0][0])
    b = float(model.intercept_[0])
    if a < 0:  # a larger margin never means less confidence: keep it monotone
        rate = min(max(accuracy, CONFIDENCE_RANGE[0]), CONFIDENCE_RANGE[1])
        a, b = 0.0, math.log(rate / (1.0 - rate))
    return ConfidenceCalibrator("sigmoid", a=a, b=b, n=n, accuracy=accuracy)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """What routing at one confidence threshold does on scored examples.

    Attributes:
        threshold: the confidence a prediction needs to be routed automatically.
        coverage: the share of examples routed automatically (0..1).
        accuracy: how often those were right (0..1; 0 when none is routed).
        routed: how many were routed automatically.
    """

    threshold: float
    coverage: float
    accuracy: float
    routed: int

    def to_dict(self) -> dict[str, float]:
        """A JSON-ready dict."""
        return {
            "threshold": self.threshold,
            "coverage": self.coverage,
            "accuracy": self.accuracy,
            "routed": self.routed,
        }


def point_at(confidence: npt.ArrayLike, correct: npt.ArrayLike, threshold: float) -> OperatingPoint:
    """Coverage and accuracy when predictions with ``confidence >= threshold`` are routed."""
    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    routed = conf >= threshold
    count = int(routed.sum())
    return OperatingPoint(
        threshold=float(threshold),
        coverage=count / conf.size if conf.size else 0.0,
        accuracy=float(right[routed].mean()) if count else 0.0,
        routed=count,
    )


def operating_points(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, *, step: float = 0.01
) -> list[OperatingPoint]:
    """:func:`point_at` for thresholds 0, ``step``, 2 ``step`` ... 1 (ascending)."""
    count = round(1.0 / step)
    return [point_at(confidence, correct, round(i * step, 6)) for i in range(count + 1)]


def threshold_for(
    points: Sequence[OperatingPoint], target_accuracy: float, *, min_routed: int = 1
) -> OperatingPoint | None:
    """The operating point reaching ``target_accuracy`` with the most coverage.

    Among points with at least ``min_routed`` routed examples and an accuracy of at
    least ``target_accuracy``, the one routing the most (then the lowest threshold).
    None when no threshold reaches the target.
    """
    good = [p for p in points if p.routed >= min_routed and p.accuracy >= target_accuracy]
    if not good:
        return None
    return max(good, key=lambda p: (p.routed, -p.threshold))
