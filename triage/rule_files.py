"""The rule files a configuration names, loaded and checked against it.

Used by the daemon (which refuses to start on a broken file and keeps its old
rules when a reload fails), the pipeline and ``triage rules``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rules import RuleSet, load_rules, reload_rules
from triage.config import Settings

__all__ = ["load_configured_rules", "reload_configured_rules", "rule_paths"]


def rule_paths(settings: Settings, paths: Sequence[Path] | None = None) -> list[Path]:
    """``paths`` when given, else ``routing.rule_files`` resolved against the config's directory."""
    if paths:
        return list(paths)
    return [settings.resolve(p) for p in settings.routing.rule_files]


def load_configured_rules(settings: Settings, paths: Sequence[Path] | None = None) -> RuleSet:
    """Load ``paths`` (default: ``routing.rule_files``) checked against ``settings``.

    Queue, list and assistant names are checked against the config; received
    times are evaluated in ``[calendar] timezone``.

    Raises:
        RuleFileError: every problem in every file.
    """
    return load_rules(
        rule_paths(settings, paths),
        queues=settings.queues,
        lists=settings.lists,
        timezone=settings.calendar.timezone,
        assistants=settings.team.assistants,
    )


def reload_configured_rules(
    current: RuleSet, settings: Settings, paths: Sequence[Path] | None = None
) -> tuple[RuleSet, list[str]]:
    """Reload the rule files; on any problem keep ``current`` and return the problems."""
    return reload_rules(
        current,
        rule_paths(settings, paths),
        queues=settings.queues,
        lists=settings.lists,
        timezone=settings.calendar.timezone,
        assistants=settings.team.assistants,
    )
