"""The ``triage`` command run in-process with click's ``CliRunner``.

:func:`run_triage` goes through :func:`triage.cli.main.main`, so exit statuses and
one-line errors are exactly those of the installed command (2 for a user error),
without the second or so a subprocess spends importing triage. Keep a few real
subprocess runs for what only a process shows (the entry point, signals, stdin).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import structlog
from click.testing import CliRunner, Result

from triage.cli.main import main

__all__ = ["run_triage"]


class _Triage:
    """What ``CliRunner.invoke`` needs of a command: a name and ``main``."""

    name = "triage"

    def main(self, args: Sequence[str] = (), **_extra: Any) -> NoReturn:
        sys.exit(main(list(args)))


@contextlib.contextmanager
def _process_state(cwd: Path | str | None) -> Iterator[None]:
    """Give back what a command changes for its whole process: logging setup and cwd.

    ``triage`` configures structlog and the root logger once per process; in-process,
    that would leak into the tests that run after it (caplog, capture_logs).
    """
    saved_structlog = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_cwd = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(saved_cwd)
        structlog.configure(**saved_structlog)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def run_triage(
    *args: str,
    env: Mapping[str, str | None] | None = None,
    stdin: str | None = None,
    cwd: Path | str | None = None,
) -> Result:
    """Run ``triage ARGS``; ``result.exit_code``, ``.stdout`` and ``.stderr`` as a user sees them.

    ``env`` is applied on top of the process environment (None removes a variable);
    ``TRIAGE_USER``, ``TRIAGE_CONFIG`` and ``EDITOR`` are removed unless given.
    ``cwd`` is the working directory for the run (the test's is restored after).
    """
    full: dict[str, str | None] = {
        "TRIAGE_USER": None,
        "TRIAGE_CONFIG": None,
        "EDITOR": None,
        "VISUAL": None,
    }
    full.update(env or {})
    runner = CliRunner()
    with _process_state(cwd):
        return runner.invoke(
            _Triage(),  # type: ignore[arg-type]
            list(args),
            env=full,
            input=stdin,
            catch_exceptions=False,
        )
