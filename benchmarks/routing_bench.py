"""Routing quality on realistic office mail the model never saw (issue 16), not a timed test.

Trains the shipped recipe on the shipped training set (triage/training/corpus:
every record rendered as a mail and parsed as live mail is) and measures, on the
separately written held-out set (benchmarks/heldout, never trained on):

- the model alone: accuracy, macro-F1, reliability of its confidence;
- automatic routing: coverage and accuracy of automatically routed mail at the
  threshold the model estimates for a target accuracy (routing.target_accuracy,
  default 0.90) and at the demo's fixed threshold; the threshold that would have
  been best on the held-out set itself (an oracle, for comparison only);
- end to end: the shipped rules (rules/default.toml) first, then the model, as
  the daemon routes (triage.routing.route), with per-rule accuracy;
- after corrections: 20 held-out mails per queue stored as corrections
  (shipped set + corrections retrained), scored on the rest of the held-out set,
  averaged over several draws;
- the cascade's second stage, when the optional embedding package is installed;
- the time routing adds to one live message (rules + model, p50/p95).

Targets: >= 0.90 accuracy on automatically routed mail at >= 80 % coverage;
end to end not below the model alone; after 20 corrections per queue >= 0.93 at
85 % coverage; one message's routing under 0.3 s p95.

    .venv/bin/python benchmarks/routing_bench.py [--target-accuracy 0.9] [--draws 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.calibration import operating_points, point_at, threshold_for
from classifiers.evaluation import expected_calibration_error, reliability_of, score
from classifiers.features import Example, example_from_message
from classifiers.model import TrainedModel, train
from rules import load_rules
from triage.config import RoutingSettings
from triage.domain import DecidedBy, InboundMessage
from triage.mail import parse_message
from triage.routing import route
from triage.training.corpus import CorpusRecord, read_records, render, shipped_dataset

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "benchmarks" / "heldout"
QUEUES = ("billing", "scheduling", "records", "client-support")
ALL_QUEUES = {*QUEUES, "unsorted", "bulk"}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _load_heldout() -> list[tuple[CorpusRecord, InboundMessage]]:
    out = []
    for path in sorted(HELDOUT.glob("*.jsonl")):
        for record in read_records(path):
            out.append((record, parse_message(render(record, index=len(out)))))
    return out


def _rules() -> Any:
    path = Path(str(files("rules") / "default.toml"))
    return load_rules(
        [path],
        queues=ALL_QUEUES,
        lists={"vip_clients": ["partner.example"], "blocked_senders": []},
    )


def _auto(model: TrainedModel, examples: list[Example], truth: list[str], threshold: float) -> Any:
    probs, conf = model.scores(examples)
    predicted = [model.classes[i] for i in probs.argmax(axis=1)]
    right = np.asarray(predicted, dtype=object) == np.asarray(truth, dtype=object)
    return predicted, conf, right, point_at(conf, right, threshold)


def _fmt(point: Any) -> str:
    return (
        f"threshold {point.threshold:.2f}: coverage {point.coverage:.3f}"
        f" ({point.routed}), accuracy {point.accuracy:.3f}"
    )


def _end_to_end(
    model: TrainedModel,
    held: list[tuple[CorpusRecord, InboundMessage]],
    threshold: float,
    ruleset: Any,
) -> dict[str, Any]:
    settings = RoutingSettings(
        fallback_queue="unsorted", confidence_threshold=threshold, bulk_queue="bulk"
    )
    predictions = model.predict([example_from_message(m) for _, m in held])
    auto = right = 0
    per_rule: dict[str, Counter[str]] = defaultdict(Counter)
    by: Counter[str] = Counter()
    for (record, message), prediction in zip(held, predictions, strict=True):
        decision = ruleset.evaluate(message)
        r = route(
            message,
            settings=settings,
            queues=ALL_QUEUES,
            rules=decision,
            prediction=prediction,
            threshold=threshold,
        )
        by[r.decided_by.value] += 1
        if r.decided_by == DecidedBy.RULE:
            rule = next(
                (h.rule for h in decision.hits if any(a.startswith("queue") for a in h.applied)),
                "?",
            )
            per_rule[rule]["decided"] += 1
            per_rule[rule]["right"] += r.queue == record.queue
        if r.decided_by != DecidedBy.FALLBACK:
            auto += 1
            right += r.queue == record.queue
    return {
        "coverage": auto / len(held),
        "accuracy": right / auto if auto else 0.0,
        "decided_by": dict(by),
        "per_rule": {k: dict(v) for k, v in per_rule.items()},
    }


def _corrections(
    base: Any,
    held: list[tuple[CorpusRecord, InboundMessage]],
    *,
    per_queue: int,
    draws: int,
    target: float,
) -> dict[str, Any]:
    results = []
    for seed in range(draws):
        rng = random.Random(seed)
        by_queue: dict[str, list[int]] = defaultdict(list)
        for i, (record, _) in enumerate(held):
            by_queue[record.queue].append(i)
        chosen: set[int] = set()
        for indices in by_queue.values():
            chosen |= set(rng.sample(indices, min(per_queue, len(indices))))
        corr = [example_from_message(held[i][1]) for i in sorted(chosen)]
        corr_y = [held[i][0].queue for i in sorted(chosen)]
        rest = [i for i in range(len(held)) if i not in chosen]
        rest_x = [example_from_message(held[i][1]) for i in rest]
        rest_y = [held[i][0].queue for i in rest]
        model = train(corr + list(base.examples), corr_y + list(base.labels), trained_at=NOW)
        estimated = model.threshold_for(target)
        t = estimated.threshold if estimated is not None else 1.0
        _, conf, right, point = _auto(model, rest_x, rest_y, t)
        at85 = max(
            (p for p in operating_points(conf, right) if p.coverage >= 0.85),
            key=lambda p: p.threshold,
        )
        results.append(
            {
                "accuracy": float(right.mean()),
                "at_target": point.to_dict(),
                "at_85_coverage": at85.to_dict(),
            }
        )
    return {
        "draws": results,
        "mean_accuracy": statistics.mean(r["accuracy"] for r in results),
        "mean_at_target_accuracy": statistics.mean(r["at_target"]["accuracy"] for r in results),
        "mean_at_target_coverage": statistics.mean(r["at_target"]["coverage"] for r in results),
        "mean_at_85_accuracy": statistics.mean(r["at_85_coverage"]["accuracy"] for r in results),
    }


def _cascade(model: TrainedModel, base: Any, held: list[Any], threshold: float) -> dict[str, Any]:
    from classifiers.model import with_second_stage  # noqa: PLC0415
    from triage.embeddings import load_encoder  # noqa: PLC0415

    encoder, why = load_encoder()
    if encoder is None:
        print(f"\ncascade: not measured ({why})")
        return {"skipped": why}
    start = time.perf_counter()
    staged = with_second_stage(model, list(base.examples), list(base.labels), encoder)
    train_s = time.perf_counter() - start
    examples = [example_from_message(m) for _, m in held]
    truth = np.asarray([r.queue for r, _ in held], dtype=object)
    start = time.perf_counter()
    answers = staged.predict(examples, encoder=encoder)
    batch_s = time.perf_counter() - start
    predicted = np.asarray([a.label for a in answers], dtype=object)
    conf = np.asarray([a.confidence for a in answers])
    right = predicted == truth
    second = np.asarray([a.stage == 2 for a in answers])
    point = point_at(conf, right, threshold)
    singles = []
    for i in np.flatnonzero(second)[:30]:
        t0 = time.perf_counter()
        staged.predict([examples[i]], encoder=encoder)
        singles.append(time.perf_counter() - t0)
    singles.sort()
    out = {
        "train_s": train_s,
        "accuracy": float(right.mean()),
        "second_stage_share": float(second.mean()),
        "second_stage_accuracy": float(right[second].mean()) if second.any() else None,
        "at_threshold": point.to_dict(),
        "batch_msgs_per_s": len(examples) / batch_s,
        "one_unsure_message_p50_s": singles[len(singles) // 2] if singles else None,
        "one_unsure_message_p95_s": singles[int(len(singles) * 0.95) - 1] if singles else None,
    }
    print(
        f"\ncascade ({encoder.name}, trained in {train_s:.0f} s): accuracy {out['accuracy']:.3f};"
        f" {out['second_stage_share']:.1%} of mail went to the second stage"
        f" (right {out['second_stage_accuracy'] or 0:.3f}); {_fmt(point)};"
        f" {out['batch_msgs_per_s']:.1f} msg/s in a batch; one unsure message p50"
        f" {out['one_unsure_message_p50_s'] or 0:.2f} s,"
        f" p95 {out['one_unsure_message_p95_s'] or 0:.2f} s"
    )
    return out


def _latency(model: TrainedModel, ruleset: Any, held: list[Any], n: int = 200) -> dict[str, float]:
    settings = RoutingSettings(fallback_queue="unsorted", bulk_queue="bulk")
    times = []
    for _, message in held[:n]:
        start = time.perf_counter()
        decision = ruleset.evaluate(message)
        prediction = model.predict([example_from_message(message)])[0]
        route(message, settings=settings, queues=ALL_QUEUES, rules=decision, prediction=prediction)
        times.append(time.perf_counter() - start)
    times.sort()
    return {"p50_s": times[len(times) // 2], "p95_s": times[int(len(times) * 0.95) - 1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target-accuracy", type=float, default=0.90)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--cascade",
        action="store_true",
        help="also train and score the second stage (needs requirements/embeddings.txt; slow)",
    )
    args = parser.parse_args()
    if not any(HELDOUT.glob("*.jsonl")):
        print(f"no held-out set at {HELDOUT}", file=sys.stderr)
        return 2
    report: dict[str, Any] = {"load_average": os.getloadavg()}
    start = time.perf_counter()
    base = shipped_dataset()
    held = _load_heldout()
    report["load_s"] = time.perf_counter() - start
    report["train_size"] = dict(Counter(base.labels))
    report["heldout_size"] = dict(Counter(r.queue for r, _ in held))
    langs = Counter(r.lang for r, _ in held)
    print(f"training set: {len(base)} mails {dict(Counter(base.labels))} ({base.source})")
    print(f"held-out set: {len(held)} mails, languages {dict(langs)}")

    start = time.perf_counter()
    model = train(list(base.examples), list(base.labels), trained_at=NOW)
    report["train_s"] = time.perf_counter() - start
    print(f"trained in {report['train_s']:.1f} s; confidence calibration {model.calibrator}")

    examples = [example_from_message(m) for _, m in held]
    truth = [r.queue for r, _ in held]
    target = args.target_accuracy
    estimated = model.threshold_for(target)
    t_est = estimated.threshold if estimated is not None else 1.0
    predicted, conf, right, at_est = _auto(model, examples, truth, t_est)
    scores = score(truth, predicted)
    bins = reliability_of(truth, predicted, conf)
    oracle = threshold_for(operating_points(conf, right), target)
    at_demo = point_at(conf, right, 0.6)
    print(f"\nmodel alone: accuracy {scores.accuracy:.3f}, macro-F1 {scores.macro_f1:.3f}")
    for c in scores.per_class:
        print(f"  {c.label:<15} precision {c.precision:.3f} recall {c.recall:.3f}")
    print(f"  calibration error {expected_calibration_error(bins):.3f}")
    print("  confidence      n  mean_conf  accuracy")
    for b in bins:
        row = f"{b.count:>6}  {b.mean_confidence:>9.3f}  {b.accuracy:>8.3f}"
        print(f"  {b.low:.1f}-{b.high:.1f}  {row}")
    print(f"  target {target:.2f}, threshold estimated on the training folds: {_fmt(at_est)}")
    print(f"  the demo's threshold 0.60: {_fmt(at_demo)}")
    if oracle is not None:
        print(f"  (oracle: best threshold on the held-out set itself: {_fmt(oracle)})")
    for lang in sorted(langs):
        mask = np.array([r.lang == lang for r, _ in held])
        p = point_at(conf[mask], right[mask], t_est)
        print(f"  {lang}: accuracy {right[mask].mean():.3f}; routed {_fmt(p)}")
    report["model"] = {
        "accuracy": scores.accuracy,
        "macro_f1": scores.macro_f1,
        "calibration_error": expected_calibration_error(bins),
        "at_estimated_threshold": at_est.to_dict(),
        "at_0.60": at_demo.to_dict(),
        "oracle": oracle.to_dict() if oracle is not None else None,
    }

    ruleset = _rules()
    e2e = _end_to_end(model, held, t_est, ruleset)
    print(
        f"\nend to end (shipped rules, then the model at {t_est:.2f}): coverage"
        f" {e2e['coverage']:.3f}, accuracy {e2e['accuracy']:.3f}; decided by {e2e['decided_by']}"
    )
    for rule, counts in sorted(e2e["per_rule"].items()):
        print(f"  rule {rule}: decided {counts['decided']}, right {counts.get('right', 0)}")
    report["end_to_end"] = e2e

    corrected = _corrections(base, held, per_queue=20, draws=args.draws, target=target)
    print(
        f"\nafter 20 corrections per queue ({args.draws} draws, scored on the rest of the"
        f" held-out set): accuracy {corrected['mean_accuracy']:.3f}; at the estimated"
        f" threshold coverage {corrected['mean_at_target_coverage']:.3f}, accuracy"
        f" {corrected['mean_at_target_accuracy']:.3f}; at 85 % coverage accuracy"
        f" {corrected['mean_at_85_accuracy']:.3f}"
    )
    report["after_corrections"] = corrected

    if args.cascade:
        report["cascade"] = _cascade(model, base, held, t_est)

    report["latency"] = _latency(model, ruleset, held)
    print(
        f"\none live message, rules + model: p50 {report['latency']['p50_s'] * 1000:.1f} ms,"
        f" p95 {report['latency']['p95_s'] * 1000:.1f} ms"
    )
    report["load_average_after"] = os.getloadavg()
    print(f"load average before/after: {report['load_average']} / {report['load_average_after']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
