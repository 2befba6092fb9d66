"""The ``triage`` command run in-process with click's ``CliRunner``.

:func:`run_triage` goes through :func:`triage.cli.main.main`, so exit statuses and
one-line errors are exactly those of the installed command (2 for a user error),
without the second or so a subprocess spends importing triage. Keep a few real
subprocess runs for what only a process shows (the entry point, signals, stdin).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from click.testing import CliRunner, Result

from triage.cli.main import main

__all__ = ["run_triage"]


class _Triage:
    """What ``CliRunner.invoke`` needs of a command: a name and ``main``."""

    name = "triage"

    def main(self, args: Sequence[str] = (), **_extra: Any) -> NoReturn:
        sys.exit(main(list(args)))


def run_triage(
    *args: str, env: Mapping[str, str | None] | None = None, stdin: str | None = None
) -> Result:
    """Run ``triage ARGS``; ``result.exit_code``, ``.stdout`` and ``.stderr`` as a user sees them.

    ``env`` is applied on top of the process environment (None removes a variable);
    ``TRIAGE_USER`` and ``EDITOR`` are removed unless given.
    """
    full: dict[str, str | None] = {"TRIAGE_USER": None, "EDITOR": None, "VISUAL": None}
    full.update(env or {})
    runner = CliRunner()
    return runner.invoke(_Triage(), list(args), env=full, input=stdin, catch_exceptions=False)  # type: ignore[arg-type]
