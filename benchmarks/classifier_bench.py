"""Classifier speed and size on 20 Newsgroups (../shared/corpus), not a timed test.

Targets (issue 5), on the project's 2-core machine:
- training on the 20 Newsgroups training split (about 11,000 messages) under 60 s;
- prediction at least 2,000 messages/s in batches;
- the model file under 50 MB.
(And issue 8: the daemon with a model loaded under 300 MB resident.)

Also reports parsing speed, one-at-a-time latency, model load time, resident
memory, accuracy and calibration, and the machine's load average (the machine
may be shared: re-measure on a quiet one before judging).

    .venv/bin/python benchmarks/classifier_bench.py [--corpus DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from classifiers import persistence
from classifiers.evaluation import expected_calibration_error, reliability, score
from classifiers.model import train
from triage.training.sources import load_tree

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
BATCH = 1000


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Peak RSS from /proc (VmHWM): ru_maxrss would carry the parent's peak over fork and exec.
_LOAD_AND_MEASURE = """
import sys
from classifiers import persistence
from classifiers.features import Example
model = persistence.loads(open(sys.argv[1], "rb").read())
model.predict([Example("Invoice overdue", "Please pay the invoice.")])
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]) // 1024)
"""


def _fresh_process_rss(blob: bytes) -> int:
    """Peak resident memory (MB) of a new Python process that loads the model and predicts."""
    with tempfile.NamedTemporaryFile(suffix=".model") as fh:
        fh.write(blob)
        fh.flush()
        done = subprocess.run(
            [sys.executable, "-c", _LOAD_AND_MEASURE, fh.name],
            capture_output=True,
            text=True,
            check=True,
        )
    return int(done.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    root = args.corpus / "20newsgroups"
    if not root.is_dir():
        print(f"no 20 Newsgroups corpus at {root}", file=sys.stderr)
        return 2

    figures: dict[str, float | int | str] = {
        "cpus": os.cpu_count() or 0,
        "load_before": round(os.getloadavg()[0], 2),
    }
    t0 = time.perf_counter()
    train_set = load_tree(root / "train")
    test_set = load_tree(root / "test")
    parse_s = time.perf_counter() - t0
    n_parsed = len(train_set) + len(test_set)
    figures["parse_messages_per_s"] = round(n_parsed / parse_s)

    t0 = time.perf_counter()
    model = train(train_set.examples, train_set.labels, trained_at=datetime.now(UTC))
    figures["train_s"] = round(time.perf_counter() - t0, 1)
    figures["n_train"] = len(train_set)

    examples = list(test_set.examples)
    model.scores(examples[:50])  # warm up
    t0 = time.perf_counter()
    predicted: list[str] = []
    probs_parts = []
    conf_parts = []
    for start in range(0, len(examples), BATCH):
        # what routing computes: the class distribution and the calibrated confidence
        probs, conf = model.scores(examples[start : start + BATCH])
        probs_parts.append(probs)
        conf_parts.append(conf)
        predicted.extend(model.classes[i] for i in probs.argmax(axis=1))
    predict_s = time.perf_counter() - t0
    figures["predict_messages_per_s"] = round(len(examples) / predict_s)

    t0 = time.perf_counter()
    for example in examples[:200]:
        model.predict([example])
    figures["predict_one_ms"] = round((time.perf_counter() - t0) / 200 * 1000, 2)

    import numpy as np  # noqa: PLC0415 - only for stacking the batches

    all_probs = np.vstack(probs_parts)
    all_conf = np.concatenate(conf_parts)
    scores = score(test_set.labels, predicted)
    figures["accuracy"] = round(scores.accuracy, 4)
    figures["macro_f1"] = round(scores.macro_f1, 4)
    figures["calibration_error"] = round(
        expected_calibration_error(
            reliability(test_set.labels, all_probs, model.classes, confidence=all_conf)
        ),
        4,
    )

    t0 = time.perf_counter()
    blob = persistence.dumps(model)
    figures["dump_s"] = round(time.perf_counter() - t0, 1)
    figures["model_file_mb"] = round(len(blob) / 1_000_000, 1)
    t0 = time.perf_counter()
    persistence.loads(blob, expected_sha256=persistence.sha256(blob))
    figures["load_s"] = round(time.perf_counter() - t0, 1)
    figures["bench_max_rss_mb"] = round(_rss_mb())
    figures["fresh_process_with_model_rss_mb"] = _fresh_process_rss(blob)
    figures["load_after"] = round(os.getloadavg()[0], 2)

    verdicts = {
        "train_s": figures["train_s"] < 60,
        "predict_messages_per_s": figures["predict_messages_per_s"] >= 2000,
        "model_file_mb": figures["model_file_mb"] < 50,
    }
    for key, value in figures.items():
        mark = "" if key not in verdicts else ("  ok" if verdicts[key] else "  MISSED")
        print(f"{key}: {value}{mark}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
