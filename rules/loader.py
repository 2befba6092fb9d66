"""Reading rule files: TOML in, a compiled :class:`~rules.engine.RuleSet` out, or every problem.

A rule file (see ``rules/default.toml`` for a commented example)::

    [defaults]                       # optional, for every condition in this file
    ignore_case = true               # default true
    ignore_accents = false           # default false

    [[rule]]
    name = "invoice"                 # unique; letters, digits, - _ .
    description = "Invoices and payment reminders"   # optional
    enabled = true                   # optional; false keeps the rule but skips it
    when.any = [
      { field = "subject", contains = ["invoice", "számla"], ignore_accents = true },
      { field = "attachment.name", glob = "*szamla*.pdf" },
    ]
    then.queue = "billing"

A condition is ``{ field = F, OPERATOR = VALUE }`` with optional ``ignore_case``
and ``ignore_accents``, or a combinator: ``{ all = [...] }``, ``{ any = [...] }``,
``{ not = {...} }``, ``{ always = true }``. Actions (``then``): ``queue``,
``priority``, ``tags``, ``escalate`` (the reason), ``no_ack``, ``ack_template``,
``assign``, ``stop``.

Every problem in every file is collected before anything is raised, each as one
line ``FILE: rule 'NAME': where: problem`` (``rule #N`` when the name itself is
missing), so ``triage rules check`` can print them all at once.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rules.conditions import OPERATORS, OPERATORS_BY_TYPE, compile_glob, compile_regex
from rules.engine import RuleSet
from rules.fields import FIELDS, WEEKDAYS, FieldSpec, FieldType, field_spec
from rules.model import Actions, AllOf, Always, AnyOf, Condition, Match, Not, Rule
from rules.text import MAX_PATTERN_CHARS, Fold, fold
from triage.domain import Priority
from triage.errors import RuleFileError

__all__ = ["MAX_DEPTH", "load_rules", "parse_rules", "reload_rules"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_RULE_KEYS = ("name", "description", "enabled", "when", "then")
_ACTION_KEYS = (
    "queue",
    "priority",
    "tags",
    "escalate",
    "no_ack",
    "ack_template",
    "assign",
    "stop",
)
_COMBINATORS = ("all", "any", "not", "always")
_FLAGS = ("ignore_case", "ignore_accents")
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_CLOCK = re.compile(r"\s*(\d{1,2}):(\d{2})\s*")
_DAY_NAMES = {
    **{d.lower(): i for i, d in enumerate(WEEKDAYS)},
    **{d[:3].lower(): i for i, d in enumerate(WEEKDAYS)},
}
MAX_DEPTH = 50
"""Levels conditions may nest (``when`` itself is level 1): deeper is refused by name,
long before Python's recursion limit in the loader, the describer or the engine."""
_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _suggest(word: str, candidates: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Problem(Exception):  # noqa: N818 - internal signal carrying one problem line
    pass


@dataclass
class _FileReader:
    source: str
    queues: Collection[str] | None
    lists: Mapping[str, Sequence[str]] | None
    assistants: Collection[str] | None
    problems: list[str] = field(default_factory=list)
    too_deep: set[str] = field(default_factory=set)
    ignore_case: bool = True
    ignore_accents: bool = False

    # -- file ------------------------------------------------------------------------

    def read(self, data: Mapping[str, Any]) -> list[Rule]:
        for key in data:
            if key not in ("rule", "defaults"):
                hint = " (write each rule as a [[rule]] table)" if key == "rules" else ""
                self.problems.append(f"{self.source}: unknown top-level key '{key}'{hint}")
        defaults = data.get("defaults", {})
        if not isinstance(defaults, dict):
            self.problems.append(f"{self.source}: defaults: must be a table")
        else:
            for key, value in defaults.items():
                if key not in _FLAGS:
                    self.problems.append(
                        f"{self.source}: defaults: unknown key '{key}'{_suggest(key, _FLAGS)}"
                    )
                elif not isinstance(value, bool):
                    self.problems.append(f"{self.source}: defaults: {key} must be true or false")
                else:
                    setattr(self, key, value)
        entries = data.get("rule", [])
        if not isinstance(entries, list):
            self.problems.append(f"{self.source}: rule: write each rule as a [[rule]] table")
            return []
        rules: list[Rule] = []
        seen: set[str] = set()
        for number, entry in enumerate(entries, start=1):
            rule = self._rule(number, entry, seen)
            if rule is not None:
                rules.append(rule)
        return rules

    # -- rule ------------------------------------------------------------------------

    def _rule(self, number: int, entry: Any, seen: set[str]) -> Rule | None:
        if not isinstance(entry, dict):
            self.problems.append(f"{self.source}: rule #{number}: must be a [[rule]] table")
            return None
        name = entry.get("name")
        if isinstance(name, str) and _NAME.fullmatch(name):
            who = f"{self.source}: rule '{name}'"
        else:
            who = f"{self.source}: rule #{number}"
            if name is None:
                self.problems.append(f"{who}: name is missing")
            else:
                self.problems.append(
                    f"{who}: name {name!r} must be 1-100 letters, digits, '-', '_' or '.'"
                )
            name = None
        before = len(self.problems)
        if name is not None:
            if name in seen:
                self.problems.append(f"{who}: a rule with this name comes earlier in the file")
            seen.add(name)
        for key in entry:
            if key not in _RULE_KEYS:
                self.problems.append(f"{who}: unknown key '{key}'{_suggest(key, _RULE_KEYS)}")
        description = entry.get("description", "")
        if not isinstance(description, str):
            self.problems.append(f"{who}: description must be a string")
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            self.problems.append(f"{who}: enabled must be true or false")
        condition: Condition | None = None
        if "when" not in entry:
            self.problems.append(
                f"{who}: when is missing (use when = {{ always = true }} to match every message)"
            )
        else:
            condition = self._condition(entry["when"], "when", who)
        actions: Actions | None = None
        if "then" not in entry:
            self.problems.append(f"{who}: then is missing (what the rule does)")
        else:
            actions = self._actions(entry["then"], who)
        if len(self.problems) > before or name is None or condition is None or actions is None:
            return None
        if enabled is False:
            return None
        return Rule(
            name=name,
            condition=condition,
            actions=actions,
            description=description if isinstance(description, str) else "",
            source=self.source,
        )

    # -- conditions ------------------------------------------------------------------

    def _fail(self, who: str, where: str, problem: str) -> None:
        self.problems.append(f"{who}: {where}: {problem}")

    def _condition(self, node: Any, where: str, who: str, depth: int = 1) -> Condition | None:
        if depth > MAX_DEPTH:
            if who in self.too_deep:
                return None
            self.too_deep.add(who)
            self._fail(
                who,
                where.split(".", 1)[0],
                f"conditions nested more than {MAX_DEPTH} levels deep; flatten them"
                " (all = [...] and any = [...] take lists)",
            )
            return None
        if not isinstance(node, dict):
            self._fail(
                who,
                where,
                'a condition is a table such as { field = "subject", contains = "invoice" }'
                " or { any = [...] }",
            )
            return None
        combinators = [k for k in _COMBINATORS if k in node]
        if combinators:
            others = [k for k in node if k not in _COMBINATORS]
            if len(combinators) > 1 or others:
                self._fail(
                    who,
                    where,
                    f"{combinators[0]} must stand alone in its table (found also "
                    + ", ".join(repr(k) for k in [*combinators[1:], *others])
                    + "); nest tables to combine",
                )
                return None
            return self._combinator(combinators[0], node[combinators[0]], where, who, depth)
        return self._match(node, where, who)

    def _combinator(
        self, key: str, value: Any, where: str, who: str, depth: int
    ) -> Condition | None:
        here = f"{where}.{key}"
        if key == "always":
            if value is not True:
                self._fail(who, here, "write always = true (to match every message)")
                return None
            return Always()
        if key == "not":
            inner = self._condition(value, here, who, depth + 1)
            return Not(inner) if inner is not None else None
        if not isinstance(value, list) or not value:
            self._fail(who, here, f"{key} takes a non-empty list of conditions")
            return None
        children = [self._condition(c, f"{here}[{i}]", who, depth + 1) for i, c in enumerate(value)]
        if any(c is None for c in children):
            return None
        kept = tuple(c for c in children if c is not None)
        return AllOf(kept) if key == "all" else AnyOf(kept)

    def _match(self, node: dict[str, Any], where: str, who: str) -> Condition | None:
        ok = True
        name = node.get("field")
        if name is None:
            self._fail(who, where, "field is missing (or use all, any, not, always)")
            ok = False
            spec: FieldSpec | None = None
        elif not isinstance(name, str):
            self._fail(who, where, "field must be a string")
            ok = False
            spec = None
        else:
            spec = field_spec(name)
            if spec is None:
                known = [*FIELDS, "header.<Name>"]
                self._fail(
                    who,
                    where,
                    f"unknown field '{name}'{_suggest(name, known)}; fields are {', '.join(known)}",
                )
                ok = False
        operators = [k for k in node if k in OPERATORS]
        for key in node:
            if key not in ("field", *_FLAGS, *OPERATORS):
                self._fail(
                    who,
                    where,
                    f"unknown operator '{key}'{_suggest(key, [*OPERATORS, *_FLAGS])}",
                )
                ok = False
        flags: dict[str, bool] = {
            "ignore_case": self.ignore_case,
            "ignore_accents": self.ignore_accents,
        }
        for flag in _FLAGS:
            if flag in node:
                if not isinstance(node[flag], bool):
                    self._fail(who, where, f"{flag} must be true or false")
                    ok = False
                else:
                    flags[flag] = node[flag]
        if not operators:
            if ok:
                self._fail(who, where, f"no operator; use one of {', '.join(OPERATORS)}")
            return None
        if len(operators) > 1:
            self._fail(
                who,
                where,
                f"one operator per condition (found {', '.join(operators)});"
                " combine several with all = [...]",
            )
            return None
        operator = operators[0]
        if spec is None or not ok:
            return None
        allowed = OPERATORS_BY_TYPE[spec.type]
        if operator not in allowed:
            self._fail(
                who,
                where,
                f"operator '{operator}' does not apply to {spec.name} ({spec.type.value});"
                f" use {', '.join(allowed)}",
            )
            return None
        try:
            values = self._values(spec, operator, node[operator], flags)
        except _Problem as problem:
            self._fail(who, f"{where}: {spec.name} {operator}", str(problem))
            return None
        return Match(
            field=spec.name,
            operator=operator,
            values=values,
            ignore_case=flags["ignore_case"],
            ignore_accents=flags["ignore_accents"],
        )

    # -- operator values -------------------------------------------------------------

    def _values(
        self, spec: FieldSpec, operator: str, value: Any, flags: dict[str, bool]
    ) -> tuple[str | int | bool, ...]:
        if operator == "exists":
            if not isinstance(value, bool):
                raise _Problem("write exists = true or exists = false")
            return (value,)
        if operator == "in_list":
            if not isinstance(value, str) or not value:
                raise _Problem(
                    'name one list from the config\'s [lists], e.g. in_list = "vip_clients"'
                )
            if self.lists is not None and value not in self.lists:
                known = ", ".join(sorted(self.lists)) or "no lists"
                raise _Problem(f"unknown list '{value}' (the config's [lists] has {known})")
            return (value,)
        kind = spec.type
        if kind is FieldType.NUMBER:
            return self._numbers(spec, operator, value)
        if kind is FieldType.TIME:
            return self._times(operator, value)
        if kind is FieldType.WEEKDAY:
            return tuple(self._day(v) for v in self._strings(value))
        strings = self._strings(value)
        if kind is FieldType.CHOICE:
            for s in strings:
                if s not in spec.choices:
                    raise _Problem(f"'{s}' is not one of {', '.join(spec.choices)}")
            return strings
        if operator == "regex":
            for pattern in strings:
                if len(pattern) > MAX_PATTERN_CHARS:
                    raise _Problem(f"regex is longer than {MAX_PATTERN_CHARS} characters")
                try:
                    compile_regex(
                        pattern,
                        ignore_case=flags["ignore_case"],
                        ignore_accents=flags["ignore_accents"],
                    )
                except ValueError as exc:
                    raise _Problem(f"regex '{pattern}': {exc}") from None
        if operator == "glob":
            how = Fold.of(ignore_case=flags["ignore_case"], ignore_accents=flags["ignore_accents"])
            for glob in strings:
                if len(glob) > MAX_PATTERN_CHARS:
                    raise _Problem(f"glob is longer than {MAX_PATTERN_CHARS} characters")
                try:
                    compile_glob([fold(glob, how)])
                except ValueError as exc:
                    raise _Problem(f"glob '{glob}': {exc}") from None
        return strings

    @staticmethod
    def _strings(value: Any) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, str) and v for v in items):
            raise _Problem("takes a non-empty string or a non-empty list of non-empty strings")
        return tuple(items)

    @staticmethod
    def _day(value: str) -> int:
        day = _DAY_NAMES.get(value.strip().lower())
        if day is None:
            raise _Problem(f"'{value}' is not a weekday (mon, tue, wed, thu, fri, sat, sun)")
        return day

    @staticmethod
    def _number(spec: FieldSpec, value: Any) -> int:
        if isinstance(value, bool):
            raise _Problem("takes a number")
        if isinstance(value, int):
            if value < 0:
                raise _Problem("takes a number of zero or more")
            return value
        if isinstance(value, str) and spec.unit == "bytes":
            found = _SIZE.fullmatch(value)
            if found:
                return int(float(found.group(1)) * _SIZE_UNITS[(found.group(2) or "").lower()])
            raise _Problem(f'\'{value}\' is not a size such as 500000, "500kB" or "10MB"')
        raise _Problem("takes a whole number" + (' or a size such as "10MB"' if spec.unit else ""))

    def _numbers(self, spec: FieldSpec, operator: str, value: Any) -> tuple[int, ...]:
        if operator == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise _Problem("takes two values: between = [low, high]")
            low, high = self._number(spec, value[0]), self._number(spec, value[1])
            if low > high:
                raise _Problem("low is greater than high")
            return (low, high)
        if operator == "equals":
            items = value if isinstance(value, list) else [value]
            if not items:
                raise _Problem("takes a number or a list of numbers")
            return tuple(self._number(spec, v) for v in items)
        return (self._number(spec, value),)

    @staticmethod
    def _clock(value: Any) -> int:
        found = _CLOCK.fullmatch(value) if isinstance(value, str) else None
        if found is None:
            raise _Problem(f'{value!r} is not a time of day such as "18:00"')
        hours, minutes = int(found.group(1)), int(found.group(2))
        if hours > 23 or minutes > 59:
            raise _Problem(f"{value!r} is not a time of day (00:00 to 23:59)")
        return hours * 60 + minutes

    def _times(self, operator: str, value: Any) -> tuple[int, ...]:
        if operator == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise _Problem('takes two times: between = ["18:00", "08:00"]')
            start, end = self._clock(value[0]), self._clock(value[1])
            if start == end:
                raise _Problem("start and end are the same time")
            return (start, end)
        return (self._clock(value),)

    # -- actions ---------------------------------------------------------------------

    def _actions(self, node: Any, who: str) -> Actions | None:
        if not isinstance(node, dict):
            self._fail(who, "then", 'must be a table of actions, e.g. then.queue = "billing"')
            return None
        before = len(self.problems)
        for key in node:
            if key not in _ACTION_KEYS:
                self._fail(who, "then", f"unknown action '{key}'{_suggest(key, _ACTION_KEYS)}")
        queue = self._text_action(node, "queue", who)
        if queue is not None and self.queues is not None and queue not in self.queues:
            self._fail(
                who,
                "then.queue",
                f"unknown queue '{queue}'{_suggest(queue, self.queues)}"
                f" (the config's queues are {', '.join(sorted(self.queues))})",
            )
        priority: Priority | None = None
        raw_priority = node.get("priority")
        if raw_priority is not None:
            try:
                priority = Priority(raw_priority)
            except ValueError:
                self._fail(
                    who,
                    "then.priority",
                    f"{raw_priority!r} is not urgent, high, normal or low",
                )
        tags: tuple[str, ...] = ()
        if "tags" in node:
            raw_tags = node["tags"]
            items = raw_tags if isinstance(raw_tags, list) else [raw_tags]
            if not items or not all(isinstance(t, str) and t.strip() for t in items):
                self._fail(who, "then.tags", "takes a tag or a list of tags (non-empty strings)")
            else:
                tags = tuple(dict.fromkeys(t.strip() for t in items))
        escalate = self._text_action(node, "escalate", who, hint="the reason owners will read")
        ack_template = self._text_action(node, "ack_template", who)
        if ack_template is not None and not _TEMPLATE_NAME.fullmatch(ack_template):
            self._fail(who, "then.ack_template", f"{ack_template!r} is not a template name")
        assign = self._text_action(node, "assign", who)
        if assign is not None and self.assistants is not None and assign not in self.assistants:
            self._fail(
                who,
                "then.assign",
                f"unknown assistant '{assign}'{_suggest(assign, self.assistants)}"
                " (see [team.assistants])",
            )
        flags: dict[str, bool] = {}
        for key in ("no_ack", "stop"):
            value = node.get(key, False)
            if not isinstance(value, bool):
                self._fail(who, f"then.{key}", "must be true or false")
            flags[key] = value is True
        if len(self.problems) > before:
            return None
        actions = Actions(
            queue=queue,
            priority=priority,
            tags=tags,
            escalate=escalate,
            no_ack=flags["no_ack"],
            ack_template=ack_template,
            assign=assign,
            stop=flags["stop"],
        )
        if actions.is_empty():
            self._fail(who, "then", f"no actions; use {', '.join(_ACTION_KEYS)}")
            return None
        return actions

    def _text_action(self, node: dict[str, Any], key: str, who: str, hint: str = "") -> str | None:
        if key not in node:
            return None
        value = node[key]
        if not isinstance(value, str) or not value.strip():
            self._fail(
                who, f"then.{key}", "must be a non-empty string" + (f" ({hint})" if hint else "")
            )
            return None
        return value.strip()


def _read_file(path: Path, problems: list[str]) -> Mapping[str, Any] | None:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        problems.append(f"{path}: rule file not found")
        return None
    except UnicodeDecodeError:
        problems.append(f"{path}: rule file is not UTF-8 text")
        return None
    except OSError as exc:
        problems.append(f"{path}: cannot read rule file: {exc.strerror}")
        return None
    return _parse_toml(text, str(path), problems)


def _parse_toml(text: str, source: str, problems: list[str]) -> Mapping[str, Any] | None:
    """Parse a rule file's text; on failure add one problem line and return None."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{source}: not valid TOML: {exc}")
    except RecursionError:
        problems.append(
            f"{source}: nesting too deep: tables or arrays nested hundreds of levels deep"
            f" (conditions may nest at most {MAX_DEPTH} levels)"
        )
    except Exception as exc:  # noqa: BLE001 - a rule file must never end in a traceback
        problems.append(f"{source}: cannot read the TOML: {type(exc).__name__}")
    return None


def _read_all(
    sources: Sequence[tuple[str, Mapping[str, Any] | None]],
    problems: list[str],
    *,
    queues: Collection[str] | None,
    lists: Mapping[str, Sequence[str]] | None,
    timezone: str,
    assistants: Collection[str] | None,
) -> RuleSet:
    rules: list[Rule] = []
    names: dict[str, str] = {}
    for source, data in sources:
        if data is None:
            continue
        reader = _FileReader(source, queues=queues, lists=lists, assistants=assistants)
        for rule in reader.read(data):
            earlier = names.get(rule.name)
            if earlier is not None:
                reader.problems.append(
                    f"{source}: rule '{rule.name}': a rule with this name is already in {earlier}"
                )
                continue
            names[rule.name] = source
            rules.append(rule)
        problems.extend(reader.problems)
    if problems:
        raise RuleFileError(problems)
    return RuleSet(
        rules,
        timezone=timezone,
        lists=lists or {},
        names_checked=queues is not None and lists is not None,
    )


def load_rules(
    paths: Sequence[Path | str],
    *,
    queues: Collection[str] | None,
    lists: Mapping[str, Sequence[str]] | None,
    timezone: str = "UTC",
    assistants: Collection[str] | None = None,
) -> RuleSet:
    """Read, validate and compile rule files, evaluated in the order given.

    Args:
        paths: rule files (TOML), e.g. the config's ``routing.rule_files`` resolved.
        queues: the config's queue names; ``None`` skips checking them.
        lists: the config's ``[lists]``; ``None`` skips checking list names (and
            every ``in_list`` then matches nothing).
        timezone: the business time zone (``[calendar] timezone``).
        assistants: the config's assistant names for ``assign``; ``None`` skips the check.

    Raises:
        RuleFileError: every problem in every file, one line each:
            ``FILE: rule 'NAME': where: problem``.
    """
    problems: list[str] = []
    sources = [(str(p), _read_file(Path(p), problems)) for p in paths]
    return _read_all(
        sources, problems, queues=queues, lists=lists, timezone=timezone, assistants=assistants
    )


def parse_rules(
    text: str,
    *,
    source: str = "<rules>",
    queues: Collection[str] | None = None,
    lists: Mapping[str, Sequence[str]] | None = None,
    timezone: str = "UTC",
    assistants: Collection[str] | None = None,
) -> RuleSet:
    """Like :func:`load_rules` for one rule file's text (``source`` names it in problems).

    Raises:
        RuleFileError: every problem found.
    """
    problems: list[str] = []
    data = _parse_toml(text, source, problems)
    return _read_all(
        [(source, data)],
        problems,
        queues=queues,
        lists=lists,
        timezone=timezone,
        assistants=assistants,
    )


def reload_rules(
    current: RuleSet,
    paths: Sequence[Path | str],
    *,
    queues: Collection[str] | None,
    lists: Mapping[str, Sequence[str]] | None,
    timezone: str = "UTC",
    assistants: Collection[str] | None = None,
) -> tuple[RuleSet, list[str]]:
    """Reload rule files for a running daemon, keeping ``current`` if they are broken.

    Returns:
        ``(new_rules, [])`` when every file loads, else ``(current, problems)``:
        the daemon logs the problems and goes on routing with the old rules.
    """
    try:
        return (
            load_rules(paths, queues=queues, lists=lists, timezone=timezone, assistants=assistants),
            [],
        )
    except RuleFileError as exc:
        return current, list(exc.problems)
