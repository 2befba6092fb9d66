"""The rule files a configuration names, loaded and checked against it.

Used by the daemon (which refuses to start on a broken file and keeps its old
rules when a reload fails), the pipeline and ``triage rules``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from rules import RuleSet, load_rules, reload_rules
from triage.config import Settings

__all__ = [
    "SHIPPED",
    "load_configured_rules",
    "reload_configured_rules",
    "resolve_rule_file",
    "rule_paths",
]


SHIPPED = "shipped:"
"""Prefix of a rule file shipped with triage: ``"shipped:default.toml"`` is rules/default.toml."""


def resolve_rule_file(settings: Settings, entry: str) -> Path:
    """One ``routing.rule_files`` entry as a path: ``shipped:NAME`` is a rule file shipped
    in the package (``rules/NAME``); anything else is relative to the config's directory."""
    if entry.startswith(SHIPPED):
        return Path(str(files("rules") / entry.removeprefix(SHIPPED)))
    return settings.resolve(entry)


def rule_paths(settings: Settings, paths: Sequence[Path] | None = None) -> list[Path]:
    """``paths`` when given, else ``routing.rule_files`` resolved (:func:`resolve_rule_file`)."""
    if paths:
        return list(paths)
    return [resolve_rule_file(settings, p) for p in settings.routing.rule_files]


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
