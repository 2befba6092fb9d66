"""Rule engine: declarative routing rules, evaluated without I/O.

Rule files (TOML) are read by :func:`load_rules` into a :class:`RuleSet`;
:meth:`RuleSet.evaluate` turns an :class:`~triage.domain.InboundMessage` into a
:class:`RuleDecision` (queue, priority, tags, escalations, acknowledgment
choices, assignee) that records every rule that matched and why.

This package imports only the standard library, ``re2`` (google-re2) and
``triage.domain`` / ``triage.errors``: never IMAP, SMTP, the database or logging.
"""

from rules.conditions import OPERATORS
from rules.engine import RuleSet
from rules.fields import FIELDS
from rules.loader import load_rules, parse_rules, reload_rules
from rules.model import (
    Actions,
    AllOf,
    Always,
    AnyOf,
    Condition,
    Match,
    Not,
    Rule,
    RuleDecision,
    RuleHit,
)
from rules.text import MAX_BODY_CHARS, MAX_PATTERN_CHARS, MAX_SHORT_CHARS, MAX_VALUES

__all__ = [
    "FIELDS",
    "MAX_BODY_CHARS",
    "MAX_PATTERN_CHARS",
    "MAX_SHORT_CHARS",
    "MAX_VALUES",
    "OPERATORS",
    "Actions",
    "AllOf",
    "Always",
    "AnyOf",
    "Condition",
    "Match",
    "Not",
    "Rule",
    "RuleDecision",
    "RuleHit",
    "RuleSet",
    "load_rules",
    "parse_rules",
    "reload_rules",
]
