"""Scores, reports, calibration bins, and the rule that a new model replaces the active one
only when it is at least as good."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest
from test_classifier_data import dataset

from classifiers.evaluation import (
    CalibrationBin,
    at_least_as_good,
    confusion_table,
    expected_calibration_error,
    format_report,
    holdout_split,
    reliability,
    score,
    stratified_folds,
)
from classifiers.features import Example
from classifiers.selection import _compare, drop_rare_classes, train_and_compare
from triage.errors import UserError

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_scores_per_class_and_confusion() -> None:
    truth = ["billing", "billing", "billing", "records", "records", "scheduling"]
    guess = ["billing", "billing", "records", "records", "billing", "scheduling"]
    s = score(truth, guess)
    assert s.n == 6
    assert s.accuracy == pytest.approx(4 / 6)
    assert s.labels == ("billing", "records", "scheduling")
    assert s.confusion == ((2, 1, 0), (1, 1, 0), (0, 0, 1))
    billing = s.per_class[0]
    assert (billing.precision, billing.recall, billing.support) == (
        pytest.approx(2 / 3),
        pytest.approx(2 / 3),
        3,
    )
    assert s.macro_f1 == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert s.to_dict()["per_class"]["scheduling"]["f1"] == 1.0


def test_report_has_the_promised_lines_and_a_text_confusion_matrix() -> None:
    s = score(["a", "a", "b"], ["a", "b", "b"])
    report = format_report(s)
    lines = report.splitlines()
    assert "accuracy: 0.667" in lines
    assert "macro_f1: 0.667" in lines
    assert any(line.split()[:5] == ["a", "1.000", "0.500", "0.667", "2"] for line in lines)
    table = confusion_table(s).splitlines()
    assert table[0].startswith("confusion matrix")
    assert table[2].split() == ["1", "a", "1", "1"]
    assert table[3].split() == ["2", "b", "0", "1"]


def test_at_least_as_good_prefers_macro_f1_then_accuracy() -> None:
    truth = ["a"] * 8 + ["b"] * 2
    drops_b = score(truth, ["a"] * 10)  # accuracy 0.8, ignores the small class
    keeps_b = score(truth, ["a"] * 6 + ["b"] * 2 + ["b"] * 2)  # accuracy 0.8, both classes
    assert at_least_as_good(keeps_b, drops_b)
    assert not at_least_as_good(drops_b, keeps_b)
    assert at_least_as_good(keeps_b, keeps_b)
    with pytest.raises(ValueError, match="same examples"):
        at_least_as_good(keeps_b, score(["a"], ["a"]))


def test_reliability_bins_and_calibration_error() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    table = reliability(["a", "b", "a", "b"], probs, ["a", "b"], bins=10)
    assert [(b.low, b.count) for b in table] == [
        (pytest.approx(0.5), 1),
        (pytest.approx(0.6), 1),
        (pytest.approx(0.8), 2),
    ]
    top = table[-1]
    assert (top.mean_confidence, top.accuracy) == (pytest.approx(0.9), 0.5)
    perfect = [CalibrationBin(0.8, 0.9, 10, 0.85, 0.85)]
    assert expected_calibration_error(perfect) == 0.0
    assert expected_calibration_error(table) == pytest.approx((0.4 + 0.3 + 2 * 0.4) / 4)


def test_splits_are_stratified_and_reproducible() -> None:
    labels = ["a"] * 50 + ["b"] * 10
    train, held = holdout_split(labels)
    assert Counter(labels[i] for i in held) == {"a": 10, "b": 2}
    assert sorted(train + held) == list(range(60))
    assert holdout_split(labels) == (train, held)
    folds = stratified_folds(labels, folds=5)
    assert sorted(i for _, te in folds for i in te) == list(range(60))
    assert all(Counter(labels[i] for i in te) == {"a": 10, "b": 2} for _, te in folds)


def test_the_predicted_confidence_is_roughly_calibrated_on_held_out_data() -> None:
    # Noisy labels: a fifth of them are wrong, so a calibrated model cannot be
    # sure of everything; its confidence should track how often it is right.
    examples, labels = dataset(40, seed=3)
    rng = random.Random(4)
    queues = sorted(set(labels))
    noisy = [rng.choice(queues) if rng.random() < 0.2 else y for y in labels]
    outcome = train_and_compare(examples, noisy, trained_at=NOW, refit=False)
    assert outcome.model.metrics["calibration_error"] < 0.15
    mean_conf = sum(b.count * b.mean_confidence for b in outcome.calibration) / outcome.holdout.n
    assert abs(mean_conf - outcome.holdout.accuracy) < 0.15


def test_new_model_on_good_data_replaces_the_active_one() -> None:
    examples, labels = dataset(20)
    first = train_and_compare(examples, labels, trained_at=NOW, refit=False)
    assert first.comparison is None
    assert first.replace
    assert first.model.metrics["accuracy"] >= 0.9
    more, more_labels = dataset(20, seed=2)
    second = train_and_compare(
        more + examples, more_labels + labels, trained_at=NOW, incumbent=first.model
    )
    assert second.comparison is not None
    assert second.comparison.candidate is not None
    assert second.comparison.n_unseen >= 20
    assert second.replace


def test_new_model_trained_on_scrambled_labels_does_not_replace_the_active_one() -> None:
    examples, labels = dataset(20)
    good = train_and_compare(examples, labels, trained_at=NOW, refit=False).model
    fresh, fresh_labels = dataset(20, seed=5)
    scrambled = fresh_labels[:]
    random.Random(0).shuffle(scrambled)
    outcome = train_and_compare(fresh, scrambled, trained_at=NOW, incumbent=good, refit=False)
    comparison = outcome.comparison
    assert comparison is not None
    assert comparison.candidate is not None
    assert comparison.incumbent is not None
    assert comparison.incumbent.macro_f1 > comparison.candidate.macro_f1
    assert not outcome.replace


def test_retraining_on_the_same_data_is_compared_on_the_whole_held_out_part() -> None:
    examples, labels = dataset(20)
    active = train_and_compare(examples, labels, trained_at=NOW).model
    again = train_and_compare(examples, labels, trained_at=NOW, incumbent=active, refit=False)
    comparison = again.comparison
    assert comparison is not None
    assert comparison.n_unseen == 0
    assert not comparison.fair
    assert comparison.n_compared == comparison.n_held_out  # scored on the same data
    # the active model saw those examples, so the new one replaces it only if not worse
    assert again.replace == at_least_as_good(comparison.candidate, comparison.incumbent)


def test_a_worse_new_model_never_replaces_on_a_small_held_out_part() -> None:
    examples, labels = dataset(20)
    good = train_and_compare(examples, labels, trained_at=NOW).model
    wrong = labels[1:] + labels[:1]  # every label shifted: a model that learned nonsense
    bad = train_and_compare(examples, wrong, trained_at=NOW).model
    held, held_labels = dataset(3)  # few, and all seen by the good model
    comparison = _compare(bad, good, held, held_labels)
    assert comparison.n_compared == len(held)
    assert not comparison.fair
    assert comparison.candidate.macro_f1 < comparison.incumbent.macro_f1
    assert not comparison.replace


def test_rare_classes_are_left_out_and_too_few_is_an_error() -> None:
    examples, labels = dataset(5)
    ex = [*examples, Example("x", "y"), Example("z", "w")]
    lab = [*labels, "new-queue", "new-queue"]
    kept, kept_labels, rare = drop_rare_classes(ex, lab)
    assert rare == {"new-queue": 2}
    assert len(kept) == len(examples)
    assert "new-queue" not in kept_labels
    with pytest.raises(UserError, match="at least 5"):
        train_and_compare(ex, lab, trained_at=NOW)
