"""Where a profiled triage run spent its time, from ``py-spy record -f raw`` output.

    .venv/bin/python benchmarks/profile_summary.py PROFILE.txt [--top 25]

Input: py-spy's raw (collapsed) stacks, one line per distinct stack:
``frame;frame;...;frame COUNT`` (root first, each frame ``function (file:line)``).
``backlog_bench.py --py-spy DIR`` writes one per run.

Prints (shares of all samples, wall clock at 100 samples/s):

- **by area**: each sample is charged to the innermost frame that belongs to a known
  area (SQLAlchemy, the database driver, the MIME parser, rules, the classifier,
  IMAP, logging, ...), and to "start-up imports" when it is under an import;
- **inclusive**: the functions of triage's own packages (and a few SQLAlchemy entry
  points) with the share of samples that have them anywhere on the stack.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# (area, pattern on a frame's file): the first that matches the innermost frame wins
AREAS: list[tuple[str, re.Pattern[str]]] = [
    ("sqlite3 driver", re.compile(r"sqlite3/|sqlite/pysqlite")),
    ("psycopg driver", re.compile(r"psycopg")),
    ("sqlalchemy orm", re.compile(r"sqlalchemy/orm/")),
    ("sqlalchemy core/sql", re.compile(r"sqlalchemy/(sql|engine|dialects|pool|event|util)/")),
    ("imap (imapclient, ssl, socket)", re.compile(r"imapclient/|imaplib|ssl\.py|socket\.py")),
    ("mime parser (triage.mail, email)", re.compile(r"triage/mail/|^email/|/email/")),
    ("rules", re.compile(r"(^|/)rules/")),
    (
        "classifier (classifiers, sklearn, scipy, numpy)",
        re.compile(r"classifiers/|sklearn/|scipy/|numpy/"),
    ),
    ("logging (structlog, json)", re.compile(r"structlog/|(^|/)json/|logging/")),
    ("triage: intake", re.compile(r"triage/services/intake|triage/imap/")),
    (
        "triage: pipeline, tickets, outbox, sla",
        re.compile(
            r"triage/services/pipeline|triage/tickets/|triage/outbox/|triage/sla/|triage/routing|triage/escalation/"
        ),
    ),
    ("triage: store", re.compile(r"triage/store/")),
    ("triage: other", re.compile(r"triage/")),
]
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]*):\d+\)$")
_IMPORT = "_find_and_load"


def frames(stack: str) -> list[tuple[str, str]]:
    """[(function, file)] root first."""
    out = []
    for part in stack.split(";"):
        match = _FRAME.match(part.strip())
        if match:
            out.append((match["func"], match["file"]))
    return out


def area(stack: list[tuple[str, str]]) -> str:
    """The area a sample is charged to (see the module docstring)."""
    if any(func == _IMPORT for func, _ in stack):
        return "start-up imports"
    for _func, file in reversed(stack):
        for name, pattern in AREAS:
            if pattern.search(file):
                return name
    return "other (stdlib, threads, idle)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    by_area: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in args.profile.read_text(errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        stack = frames(stack_text)
        total += count
        by_area[area(stack)] += count
        seen = set()
        for func, file in stack:
            if file.startswith(("triage/", "rules/", "classifiers/")) or (
                file.startswith("sqlalchemy/orm/session") and func in {"flush", "commit", "execute"}
            ):
                key = f"{file}:{func}"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += count
    if not total:
        print("no samples")
        return 1
    print(f"{total} samples ({total / 100:.1f} s at 100/s)\n\nby area (innermost known frame):")
    for name, n in by_area.most_common():
        print(f"  {100 * n / total:5.1f} %  {name}")
    print(f"\ninclusive (on the stack), top {args.top}:")
    for key, n in inclusive.most_common(args.top):
        print(f"  {100 * n / total:5.1f} %  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
