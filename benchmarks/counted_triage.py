"""Run the ``triage`` command with every SQL statement counted (for backlog_bench.py).

    python benchmarks/counted_triage.py [triage arguments...]

Environment:
    TRIAGE_ROOT: a checkout whose ``triage`` package to run instead of the installed
        one (a "before" measurement of an older commit), put first on ``sys.path``.
    TRIAGE_STATEMENTS: a file to write the counts to (JSON: statement kind -> count,
        e.g. ``"INSERT messages"``, ``"SAVEPOINT"``, plus ``"COMMIT"`` transactions).

The counter listens on every SQLAlchemy engine (``before_cursor_execute`` and
``commit``): one count per statement the driver sends, an executemany counted once.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

if os.environ.get("TRIAGE_ROOT"):
    sys.path.insert(0, os.environ["TRIAGE_ROOT"])
    for root in ("classifiers", "rules"):  # the checkout's own pure packages too
        sys.modules.pop(root, None)

from sqlalchemy import event
from sqlalchemy.engine import Engine

COUNTS: Counter[str] = Counter()
_TABLE = re.compile(
    r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO"
    r" SAVEPOINT|BEGIN(?: IMMEDIATE)?|[A-Z]+)\b(?:.*?\bFROM\s+(\w+)|\s+(\w+))?",
    re.DOTALL,
)


def kind(statement: str) -> str:
    """``INSERT messages``, ``SELECT outbox``, ``SAVEPOINT``... (first table named)."""
    match = _TABLE.match(statement)
    if match is None:
        return statement.split(None, 1)[0] if statement.strip() else "?"
    verb = match.group(1).replace(" INTO", "").replace(" FROM", "")
    if verb in {"SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"}:
        return verb
    if verb.startswith("BEGIN"):
        return verb
    table = match.group(2) if verb == "SELECT" else match.group(3)
    return f"{verb} {table}" if table else verb


@event.listens_for(Engine, "before_cursor_execute")
def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    COUNTS[kind(statement)] += 1


@event.listens_for(Engine, "commit")
def _commit(_conn: Any) -> None:
    COUNTS["COMMIT"] += 1


def _write() -> None:
    path = os.environ.get("TRIAGE_STATEMENTS")
    if path:
        Path(path).write_text(json.dumps(dict(COUNTS.most_common()), indent=1), encoding="utf-8")


atexit.register(_write)

if __name__ == "__main__":
    from triage.cli.main import main

    sys.exit(main(sys.argv[1:]))
