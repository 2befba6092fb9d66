"""Scoring a model: accuracy, macro-F1, per-class precision/recall, confusion, calibration.

Everything here is pure: labels and probabilities in, frozen values and text out.
:func:`at_least_as_good` is the rule deciding whether a new model may replace
the active one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.metrics import precision_recall_fscore_support as prfs
from sklearn.model_selection import StratifiedKFold, train_test_split

__all__ = [
    "CalibrationBin",
    "ClassScore",
    "Scores",
    "at_least_as_good",
    "calibration_table",
    "confusion_table",
    "expected_calibration_error",
    "format_report",
    "holdout_split",
    "reliability",
    "reliability_of",
    "score",
    "stratified_folds",
]


@dataclass(frozen=True, slots=True)
class ClassScore:
    """Precision, recall and F1 (0..1) of one class, over ``support`` true examples."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class Scores:
    """How well predictions matched the true labels.

    Attributes:
        n: number of examples scored.
        accuracy: fraction predicted right, 0..1.
        macro_f1: unweighted mean of the per-class F1 over ``labels``.
        per_class: one :class:`ClassScore` per label, in ``labels`` order.
        labels: the classes (true or predicted), sorted.
        confusion: ``confusion[i][j]`` = examples of ``labels[i]`` predicted as ``labels[j]``.
    """

    n: int
    accuracy: float
    macro_f1: float
    per_class: tuple[ClassScore, ...]
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stored with the model as its metrics)."""
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "labels": list(self.labels),
            "per_class": {
                c.label: {
                    "precision": c.precision,
                    "recall": c.recall,
                    "f1": c.f1,
                    "support": c.support,
                }
                for c in self.per_class
            },
            "confusion": [list(row) for row in self.confusion],
        }


def score(y_true: Sequence[str], y_pred: Sequence[str]) -> Scores:
    """Score predictions ``y_pred`` against ``y_true`` (same length, at least one).

    A class that is never predicted has precision 0 (no warning); macro-F1
    averages over every class that is true or predicted.
    """
    if len(y_true) != len(y_pred) or not y_true:
        raise ValueError("score needs equally many (and some) true and predicted labels")
    labels = sorted(set(y_true) | set(y_pred))
    precision, recall, f1, support = prfs(
        y_true, y_pred, labels=labels, average=None, zero_division=0.0
    )
    per_class = tuple(
        ClassScore(lab, float(p), float(r), float(f), int(s))
        for lab, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    )
    if len(labels) == 1:  # scikit-learn warns about a 1x1 matrix; it is simply n
        matrix = np.array([[len(y_true)]])
    else:
        matrix = confusion_matrix(y_true, y_pred, labels=labels)
    return Scores(
        n=len(y_true),
        accuracy=float(accuracy_score(y_true, y_pred)),
        macro_f1=float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0.0)),
        per_class=per_class,
        labels=tuple(labels),
        confusion=tuple(tuple(int(v) for v in row) for row in matrix),
    )


def at_least_as_good(candidate: Scores, incumbent: Scores, *, tolerance: float = 1e-9) -> bool:
    """Whether a new model may replace the active one: scored on the same examples,
    its macro-F1 is at least the active model's (ties in macro-F1 go to accuracy).

    Macro-F1 rather than accuracy, so a model that drops a small queue is not
    preferred for doing well on the big ones.
    """
    if candidate.n != incumbent.n:
        raise ValueError("compare scores on the same examples")
    if candidate.macro_f1 > incumbent.macro_f1 + tolerance:
        return True
    if candidate.macro_f1 < incumbent.macro_f1 - tolerance:
        return False
    return candidate.accuracy >= incumbent.accuracy - tolerance


def holdout_split(
    labels: Sequence[str], *, fraction: float = 0.2, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Indices ``(train, held_out)``, ascending, of a stratified split keeping ``fraction`` aside.

    Every class keeps its share in both parts (each class needs 2 examples or more).
    Deterministic for a given ``seed``.
    """
    idx = np.arange(len(labels))
    train, held = train_test_split(
        idx, test_size=fraction, random_state=seed, stratify=np.asarray(labels, dtype=object)
    )
    return sorted(int(i) for i in train), sorted(int(i) for i in held)


def stratified_folds(
    labels: Sequence[str], *, folds: int = 5, seed: int = 0
) -> list[tuple[list[int], list[int]]]:
    """``folds`` stratified (train, test) index pairs covering every example once as test."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    y = np.asarray(labels, dtype=object)
    return [(tr.tolist(), te.tolist()) for tr, te in splitter.split(np.zeros(len(y)), y)]


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """Predictions whose confidence fell in ``(low, high]``: how sure vs how often right."""

    low: float
    high: float
    count: int
    mean_confidence: float
    accuracy: float


def reliability(
    y_true: Sequence[str],
    probabilities: npt.NDArray[np.float64],
    classes: Sequence[str],
    *,
    bins: int = 10,
    confidence: npt.ArrayLike | None = None,
) -> list[CalibrationBin]:
    """Reliability of the top-class confidence: predictions binned by confidence.

    Args:
        y_true: the true labels.
        probabilities: shape (n, len(classes)), as from ``TrainedModel.scores``; the
            prediction is the largest entry of each row.
        classes: the column labels of ``probabilities``.
        bins: equal-width confidence bins over 0..1; empty bins are left out.
        confidence: shape (n,): the confidence of each prediction (the routing
            confidence of ``TrainedModel.scores``); default: the largest probability.

    For a calibrated model each bin's accuracy is close to its mean confidence.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    conf = probs.max(axis=1) if confidence is None else np.asarray(confidence, dtype=np.float64)
    predicted = np.asarray(classes, dtype=object)[probs.argmax(axis=1)]
    right = predicted == np.asarray(y_true, dtype=object)
    edges = np.linspace(0.0, 1.0, bins + 1)
    out: list[CalibrationBin] = []
    for i in range(bins):
        low, high = float(edges[i]), float(edges[i + 1])
        mask = (conf > low) & (conf <= high) if i else (conf >= low) & (conf <= high)
        if mask.any():
            out.append(
                CalibrationBin(
                    low, high, int(mask.sum()), float(conf[mask].mean()), float(right[mask].mean())
                )
            )
    return out


def reliability_of(
    y_true: Sequence[str],
    predicted: Sequence[str],
    confidence: Sequence[float] | npt.NDArray[np.float64],
    *,
    bins: int = 10,
) -> list[CalibrationBin]:
    """:func:`reliability` from predicted labels and their confidences (same length)."""
    labels = sorted(set(y_true) | set(predicted))
    index = {label: i for i, label in enumerate(labels)}
    probs = np.zeros((len(predicted), len(labels)))
    probs[np.arange(len(predicted)), [index[p] for p in predicted]] = 1.0
    return reliability(y_true, probs, labels, bins=bins, confidence=confidence)


def expected_calibration_error(table: Sequence[CalibrationBin]) -> float:
    """The count-weighted mean gap between confidence and accuracy over ``table`` (0 = perfect)."""
    total = sum(b.count for b in table)
    if not total:
        return 0.0
    return sum(b.count * abs(b.accuracy - b.mean_confidence) for b in table) / total


def confusion_table(scores: Scores) -> str:
    """The confusion matrix as a text table: rows true labels, columns predicted.

    Columns are numbered (labels can be long); the legend is the row order.
    """
    labels = scores.labels
    width = max(len(str(max((max(r) for r in scores.confusion), default=0))), 3)
    name_w = max(len(lab) for lab in labels) + 5
    head = " " * name_w + " ".join(f"{j + 1:>{width}}" for j in range(len(labels)))
    lines = ["confusion matrix (rows: true, columns: predicted)", head]
    for i, (lab, row) in enumerate(zip(labels, scores.confusion, strict=True)):
        name = f"{i + 1:>2} {lab}"
        lines.append(f"{name:<{name_w}}" + " ".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def calibration_table(table: Sequence[CalibrationBin]) -> str:
    """Reliability bins as text, with the expected calibration error."""
    lines = [f"calibration_error: {expected_calibration_error(table):.3f}"]
    lines.append("reliability (predictions binned by confidence: a calibrated model's accuracy")
    lines.append("matches its mean confidence in every bin)")
    lines.append("confidence       n  mean_conf  accuracy")
    lines.extend(
        f"{b.low:.1f}-{b.high:.1f}  {b.count:>8}  {b.mean_confidence:>9.3f}  {b.accuracy:>8.3f}"
        for b in table
    )
    return "\n".join(lines)


def format_report(scores: Scores) -> str:
    """The evaluation report: ``accuracy:`` and ``macro_f1:`` lines, per-class
    precision/recall/F1/support, then the confusion matrix."""
    name_w = max([len(c.label) for c in scores.per_class] + [5])
    lines = [
        f"examples: {scores.n}",
        f"accuracy: {scores.accuracy:.3f}",
        f"macro_f1: {scores.macro_f1:.3f}",
        "",
        f"{'class':<{name_w}}  precision  recall     f1  support",
    ]
    lines.extend(
        f"{c.label:<{name_w}}  {c.precision:>9.3f}  {c.recall:>6.3f}  {c.f1:>5.3f}  {c.support:>7}"
        for c in scores.per_class
    )
    lines.extend(["", confusion_table(scores)])
    return "\n".join(lines)
