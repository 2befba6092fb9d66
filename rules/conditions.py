"""Operators: turning a condition tree into fast tests with owner-readable reasons.

Operators by field type (see :mod:`rules.fields` for the fields):

=============  =====================================================================
text, address, ``equals``, ``contains``, ``starts_with``, ``ends_with``, ``glob``,
domain         ``regex``, ``in_list``, ``exists``
number         ``equals``, ``greater_than``, ``less_than``, ``between`` (inclusive)
time of day    ``before`` (strictly), ``after`` (at or after), ``between``
               (start included, end excluded; wraps past midnight: 18:00-08:00)
weekday, kind  ``equals``
=============  =====================================================================

Text operators take one value or a list (any one may match) and compare folded
text (:mod:`rules.text`): case-insensitive unless ``ignore_case = false``,
accent-insensitive when ``ignore_accents = true``. ``glob`` matches the whole
value (``*``, ``?``, ``[abc]``, ``[!abc]``). ``regex`` searches with RE2
(google-re2): linear time in the input, no look-around or back-references, so a
pathological pattern such as ``(a+)+$`` cannot hang routing. ``in_list`` looks
a value up in a named list from the config; on address fields an entry with an
``@`` matches that address and an entry without one (``example.com``,
``@example.com``, ``*.example.com``) matches that domain and its subdomains.

:func:`compile_condition` returns a :class:`Check`: ``test(view) -> bool`` is the
fast path run for every rule and message; ``reasons(view)`` runs only for rules
that matched and says why; ``describe(negated)`` words the condition itself
(used under ``not``, where the message has nothing to point at).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import re2

from rules.fields import WEEKDAYS, FieldSpec, FieldType, MessageView, SlotTable, field_spec
from rules.model import AllOf, Always, AnyOf, Condition, Match, Not
from rules.text import Fold, fold, strip_accents

__all__ = [
    "MAX_PROGRAM_SIZE",
    "OPERATORS",
    "OPERATORS_BY_TYPE",
    "Check",
    "compile_condition",
    "compile_glob",
    "compile_regex",
    "describe_condition",
    "list_entries",
]

Test = Callable[[MessageView], bool]

_TEXT_OPS = (
    "equals",
    "contains",
    "starts_with",
    "ends_with",
    "glob",
    "regex",
    "in_list",
    "exists",
)
OPERATORS_BY_TYPE: dict[FieldType, tuple[str, ...]] = {
    FieldType.TEXT: _TEXT_OPS,
    FieldType.ADDRESS: _TEXT_OPS,
    FieldType.DOMAIN: _TEXT_OPS,
    FieldType.NUMBER: ("equals", "greater_than", "less_than", "between"),
    FieldType.TIME: ("before", "after", "between"),
    FieldType.WEEKDAY: ("equals",),
    FieldType.CHOICE: ("equals",),
}
"""Which operators each field type accepts."""

OPERATORS: tuple[str, ...] = (
    *_TEXT_OPS,
    "greater_than",
    "less_than",
    "between",
    "before",
    "after",
)
"""Every operator name a rule file may use."""

_SHOW_CHARS = 60


def _q(text: object) -> str:
    s = str(text)
    if len(s) > _SHOW_CHARS:
        s = s[: _SHOW_CHARS - 1] + "…"
    return "'" + s.replace("'", "’") + "'"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _either(items: Sequence[str], word: str) -> str:
    if len(items) == 1:
        return items[0]
    if word == ",":
        return ", ".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]


MAX_PROGRAM_SIZE = 1000
"""Most RE2 instructions a rule's regular expression may compile to (forward or reverse).

RE2 matches in linear time, but the factor is the program size whenever its DFA
gives up (too many states) and it simulates the NFA: up to about 1 ms per
instruction for each 100,000 characters of body. ``(.*){1,1000}(.*){1,1000}z``
is 20,001 instructions (seconds per message). The shipped rules stay under 150;
a 100-word alternation is about 1,000 (split longer ones into several patterns,
or use ``contains`` with a list)."""


def _regex_options(*, ignore_case: bool) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = not ignore_case
    # Only the whole match is used (its span, for the evidence); without capture
    # groups RE2 can find it with its DFAs instead of simulating the NFA.
    options.never_capture = True
    return options


def compile_regex(pattern: str, *, ignore_case: bool, ignore_accents: bool = False) -> Any:
    """Compile ``pattern`` with RE2 (linear-time matching).

    With ``ignore_accents`` the pattern's diacritics are removed, as they are
    from the text it is matched against.

    Raises:
        ValueError: RE2 cannot compile it; the message says why (look-around
            and back-references are not supported, repetition is bounded at 1000),
            or its program is larger than :data:`MAX_PROGRAM_SIZE`.
    """
    if ignore_accents:
        pattern = strip_accents(pattern)
    try:
        regex = re2.compile(pattern, _regex_options(ignore_case=ignore_case))
    except re2.error as exc:
        detail = exc.args[0] if exc.args else b""
        text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        hint = ""
        if any(t in pattern for t in ("(?=", "(?!", "(?<=", "(?<!")) or "invalid escape" in text:
            hint = (
                " (RE2 has no look-around or back-references: they can take exponential"
                " time; rewrite it, or combine conditions with all/any/not)"
            )
        raise ValueError(f"RE2 cannot compile it: {text}{hint}") from None
    size = max(regex.programsize, regex.reverseprogramsize)
    if size > MAX_PROGRAM_SIZE:
        raise ValueError(
            f"regular expression too complex: program size {size} > limit {MAX_PROGRAM_SIZE}"
            " (it could take seconds per message; use smaller repetition counts, or split"
            " a long alternation into several patterns: regex takes a list, or use contains)"
        )
    return regex


def _glob_regex(glob: str) -> str:
    out: list[str] = []
    i = 0
    n = len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            start = i + 1
            if start < n and glob[start] == "!":
                start += 1
            if start < n and glob[start] == "]":
                start += 1
            end = glob.find("]", start)
            if end < 0:
                out.append(re2.escape("["))
            else:
                body = glob[i + 1 : end]
                negate = body.startswith("!")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\").replace("[", "\\[")
                if body.startswith("^"):
                    body = "\\" + body
                out.append("[" + ("^" if negate else "") + body + "]")
                i = end
        else:
            out.append(re2.escape(c))
        i += 1
    return "".join(out)


def compile_glob(globs: Sequence[str]) -> Any:
    """One RE2 expression that fully matches any of ``globs`` (already folded).

    Raises:
        ValueError: a glob cannot be compiled (e.g. a bad character range ``[z-a]``).
    """
    pattern = "(?s)" + "|".join(f"(?:{_glob_regex(g)})" for g in globs)
    try:
        return re2.compile(pattern, _regex_options(ignore_case=False))
    except re2.error as exc:
        detail = exc.args[0] if exc.args else b""
        text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        raise ValueError(f"not a valid glob: {text}") from None


def list_entries(
    entries: Sequence[str], how: Fold, kind: FieldType
) -> tuple[frozenset[str], frozenset[str]]:
    """Split a config list into (addresses, domains), folded by ``how``.

    For address and domain fields, an entry with an ``@`` (and text before it) is an
    address; any other is a domain (a leading ``@`` or ``*.`` is dropped). For other
    fields every entry is compared whole and returned as "addresses".
    """
    addresses: set[str] = set()
    domains: set[str] = set()
    for entry in entries:
        text = fold(entry.strip(), how)
        if not text:
            continue
        if kind not in (FieldType.ADDRESS, FieldType.DOMAIN) or "@" in text.lstrip("@"):
            addresses.add(text)
        else:
            domains.add(text.removeprefix("*.").lstrip("@"))
    return frozenset(addresses), frozenset(domains)


def _domain_hit(domain: str, domains: frozenset[str]) -> str | None:
    """The entry of ``domains`` equal to ``domain`` or one of its parent domains."""
    d = domain
    while d:
        if d in domains:
            return d
        dot = d.find(".")
        if dot < 0:
            return None
        d = d[dot + 1 :]
    return None


class Check:
    """A compiled condition. ``test`` is a plain function attribute (fast to call)."""

    __slots__ = ("test",)

    test: Test

    def reasons(self, view: MessageView) -> list[str]:
        """Why it matched ``view`` (call only after ``test(view)`` returned True)."""
        raise NotImplementedError

    def describe(self, *, negated: bool = False) -> str:
        """The condition in words (negated: what it means for it not to hold)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _Context:
    slots: SlotTable
    lists: Mapping[str, Sequence[str]]
    zone_name: str


class _Always(Check):
    __slots__ = ()

    def __init__(self) -> None:
        self.test = _true

    def reasons(self, view: MessageView) -> list[str]:  # noqa: ARG002 - same signature as siblings
        return ["every message"]

    def describe(self, *, negated: bool = False) -> str:
        return "never" if negated else "every message"


def _true(_view: MessageView) -> bool:
    return True


class _Not(Check):
    __slots__ = ("inner",)

    def __init__(self, inner: Check) -> None:
        self.inner = inner
        test = inner.test

        def negation(view: MessageView) -> bool:
            return not test(view)

        self.test = negation

    def reasons(self, view: MessageView) -> list[str]:  # noqa: ARG002 - nothing to point at
        return [self.inner.describe(negated=True)]

    def describe(self, *, negated: bool = False) -> str:
        return self.inner.describe(negated=not negated)


def _wrap(check: Check, text: str) -> str:
    if isinstance(check, _All | _Any) and len(check.children) > 1:
        return f"({text})"
    if isinstance(check, _Leaf) and " or " in text:
        return f"({text})"
    return text


class _All(Check):
    __slots__ = ("children",)

    def __init__(self, children: Sequence[Check]) -> None:
        self.children = tuple(children)
        tests = tuple(c.test for c in self.children)
        if len(tests) == 1:
            self.test = tests[0]
        elif len(tests) == 2:
            first, second = tests

            def both(view: MessageView) -> bool:
                return first(view) and second(view)

            self.test = both
        else:

            def every(view: MessageView) -> bool:
                for test in tests:  # noqa: SIM110 - a plain loop beats any() on the hot path
                    if not test(view):
                        return False
                return True

            self.test = every

    def reasons(self, view: MessageView) -> list[str]:
        return [reason for child in self.children for reason in child.reasons(view)]

    def describe(self, *, negated: bool = False) -> str:
        # De Morgan: not (a and b) == (not a) or (not b).
        word = " or " if negated else " and "
        return word.join(_wrap(c, c.describe(negated=negated)) for c in self.children)


class _Any(Check):
    __slots__ = ("children",)

    def __init__(self, children: Sequence[Check]) -> None:
        self.children = tuple(children)
        tests = tuple(c.test for c in self.children)
        if len(tests) == 1:
            self.test = tests[0]
        else:

            def some(view: MessageView) -> bool:
                for test in tests:  # noqa: SIM110 - a plain loop beats any() on the hot path
                    if test(view):
                        return True
                return False

            self.test = some

    def reasons(self, view: MessageView) -> list[str]:
        return [r for child in self.children if child.test(view) for r in child.reasons(view)]

    def describe(self, *, negated: bool = False) -> str:
        word = " and " if negated else " or "
        return word.join(_wrap(c, c.describe(negated=negated)) for c in self.children)


_NEGATED_VERB = {
    "contains": ("contains", "does not contain", "contains none of"),
    "starts_with": ("starts with", "does not start with", "starts with none of"),
    "ends_with": ("ends with", "does not end with", "ends with none of"),
    "glob": ("matches", "does not match", "matches none of"),
    "regex": ("matches", "does not match", "matches none of"),
}


class _Leaf(Check):
    """One field tested by one operator."""

    __slots__ = (
        "descriptions",
        "domains",
        "entries",
        "fold",
        "match",
        "needles",
        "patterns",
        "raw_slot",
        "regex",
        "spec",
        "text_slot",
        "zone_name",
    )

    def __init__(self, match: Match, spec: FieldSpec, context: _Context) -> None:
        self.match = match
        self.spec = spec
        self.zone_name = context.zone_name
        self.fold = Fold.of(ignore_case=match.ignore_case, ignore_accents=match.ignore_accents)
        self.entries: frozenset[Any] = frozenset()
        self.domains: frozenset[str] = frozenset()
        self.patterns: tuple[Any, ...] = ()
        self.regex: Any = None
        self.needles: tuple[str, ...] = ()
        self.text_slot = -1
        self.raw_slot = -1
        self.test = self._compile(context)
        self.descriptions = (self._describe(negated=False), self._describe(negated=True))

    # -- the fast path ---------------------------------------------------------------

    def _compile(self, context: _Context) -> Test:
        match, spec, slots = self.match, self.spec, context.slots
        op = match.operator
        kind = spec.type
        self.raw_slot = slots.slot(spec)
        if op == "exists":
            raw = slots.slot(spec)
            want = bool(match.values[0])

            def exists(view: MessageView) -> bool:
                values = view.cache[raw]
                if values is None:
                    values = view.get(raw)
                return bool(values) is want

            return exists
        if kind in (FieldType.NUMBER, FieldType.TIME, FieldType.WEEKDAY, FieldType.CHOICE):
            return self._compile_scalar(slots.slot(spec))
        if op == "regex":
            how = Fold.ACCENTS if match.ignore_accents else Fold.RAW
            self.text_slot = slots.slot(spec, how)
            self.patterns = tuple(
                compile_regex(
                    str(p), ignore_case=match.ignore_case, ignore_accents=match.ignore_accents
                )
                for p in match.values
            )
            index_slot, index = slots.patterns(spec, how)
            prepared = (
                strip_accents(str(p)) if match.ignore_accents else str(p) for p in match.values
            )
            ids = frozenset(index.add_regex(p, ignore_case=match.ignore_case) for p in prepared)
            return _found(index_slot, ids)
        slot = slots.slot(spec, self.fold)
        self.text_slot = slot
        needles = tuple(fold(str(v), self.fold) for v in match.values)
        self.needles = needles
        if op == "glob":
            self.patterns = tuple(compile_glob([n]) for n in needles)
            self.regex = compile_glob(needles)
            return _search(
                slots.slot(spec, self.fold, encoded=True), _searcher(self.regex, full=True)
            )
        if op == "equals":
            self.entries = frozenset(needles)
            return _member(slot, self.entries)
        if op == "contains":
            index_slot, index = slots.patterns(spec, self.fold)
            return _found(index_slot, frozenset(index.add_needle(n) for n in needles))
        if op == "starts_with":
            return _affix(slot, needles, start=True)
        if op == "ends_with":
            return _affix(slot, needles, start=False)
        if op == "in_list":
            entries = context.lists.get(str(match.values[0]), ())
            self.entries, self.domains = list_entries(entries, self.fold, kind)
            if kind is FieldType.TEXT or not self.domains:
                return _member(slot, self.entries)
            return _listed(slot, self.entries, self.domains, addresses=kind is FieldType.ADDRESS)
        raise ValueError(f"operator {op!r} does not apply to {spec.name}")

    def _compile_scalar(self, slot: int) -> Test:
        op = self.match.operator
        values = self.match.values
        if op == "equals":
            self.entries = frozenset(values)
            return _member(slot, self.entries)
        bound = int(values[0])
        if op in ("greater_than", "after"):
            strict = op == "greater_than"

            def above(view: MessageView) -> bool:
                return any(v > bound or (not strict and v == bound) for v in view.get(slot))

            return above
        if op in ("less_than", "before"):

            def below(view: MessageView) -> bool:
                return any(v < bound for v in view.get(slot))

            return below
        if op == "between":
            low, high = int(values[0]), int(values[1])
            if self.spec.type is FieldType.TIME:
                return _clock_between(slot, low, high)

            def within(view: MessageView) -> bool:
                return any(low <= v <= high for v in view.get(slot))

            return within
        raise ValueError(f"operator {op!r} does not apply to {self.spec.name}")

    # -- explanations ----------------------------------------------------------------

    def _shown(self, value: Any) -> str:
        spec = self.spec
        if spec.type is FieldType.TIME:
            return _hhmm(int(value))
        if spec.type is FieldType.WEEKDAY:
            return WEEKDAYS[int(value)]
        if spec.type is FieldType.NUMBER:
            return f"{int(value):,}" + (f" {spec.unit}" if spec.unit else "")
        if spec.type in (FieldType.ADDRESS, FieldType.DOMAIN, FieldType.CHOICE):
            return str(value)
        return _q(value)

    def _values_text(self, word: str) -> str:
        m = self.match
        if m.operator == "regex":
            return _either([f"/{p}/" for p in m.values], word)
        if m.operator == "in_list":
            return str(m.values[0])
        if self.spec.type in (
            FieldType.NUMBER,
            FieldType.TIME,
            FieldType.WEEKDAY,
            FieldType.CHOICE,
        ):
            return _either([self._shown(v) for v in m.values], word)
        return _either([_q(v) for v in m.values], word)

    def describe(self, *, negated: bool = False) -> str:
        return self.descriptions[negated]

    def _describe(self, *, negated: bool) -> str:
        m, label = self.match, self.spec.label
        op = m.operator
        many = len(m.values) > 1
        if op == "exists":
            present = bool(m.values[0]) is not negated
            return f"{label} is {'present' if present else 'absent'}"
        if self.spec.type is FieldType.WEEKDAY:
            days = self._values_text("or")
            return f"not received on {days}" if negated else f"received on {days}"
        if self.spec.type is FieldType.TIME:
            if op == "between":
                span = f"between {self._shown(m.values[0])} and {self._shown(m.values[1])}"
            elif op == "before":
                span = f"before {self._shown(m.values[0])}"
            else:
                span = f"at or after {self._shown(m.values[0])}"
            return f"not received {span}" if negated else f"received {span}"
        if op == "equals":
            if many:
                return f"{label} is {'none' if negated else 'one'} of {self._values_text(',')}"
            return f"{label} is {'not ' if negated else ''}{self._values_text('or')}"
        if op == "in_list":
            return f"{label} is {'not ' if negated else ''}in {m.values[0]}"
        if op in ("greater_than", "less_than"):
            word = "greater" if op == "greater_than" else "less"
            return f"{label} is {'not ' if negated else ''}{word} than {self._values_text('or')}"
        if op == "between":
            low, high = (self._shown(v) for v in m.values[:2])
            return f"{label} is {'not ' if negated else ''}between {low} and {high}"
        positive, negative, none_of = _NEGATED_VERB[op]
        if negated:
            return f"{label} {none_of if many else negative} {self._values_text('and')}"
        if many:
            return f"{label} {positive} any of {self._values_text(',')}"
        return f"{label} {positive} {self._values_text('or')}"

    def reasons(self, view: MessageView) -> list[str]:
        reason = self._evidence(view)
        return [reason if reason is not None else self.describe()]

    def _evidence(self, view: MessageView) -> str | None:
        m, spec, label = self.match, self.spec, self.spec.label
        op = m.operator
        raw_values = view.get(self.raw_slot)
        if op == "exists" or spec.type is FieldType.WEEKDAY:
            if spec.type is FieldType.WEEKDAY:
                return f"received on {self._shown(raw_values[0])} ({self.zone_name})"
            return self.describe()
        if spec.type is FieldType.TIME:
            return f"received at {self._shown(raw_values[0])} ({self.zone_name}), " + (
                self.describe().removeprefix("received ")
            )
        if spec.type in (FieldType.NUMBER, FieldType.CHOICE):
            for value in raw_values:
                if self._scalar_holds(value):
                    shown = self._shown(value)
                    if op == "equals":
                        return f"{label} is {shown}"
                    rest = self.describe().removeprefix(f"{label} is ")
                    return f"{label} {shown} is {rest}"
            return None
        folded_values = view.get(self.text_slot) if self.text_slot >= 0 else raw_values
        for value, folded in zip(raw_values, folded_values, strict=True):
            reason = self._text_evidence(value, folded)
            if reason is not None:
                return reason
        return None

    def _scalar_holds(self, value: Any) -> bool:
        m = self.match
        op = m.operator
        if op == "equals":
            return value in self.entries
        if op == "greater_than":
            return bool(value > m.values[0])
        if op == "less_than":
            return bool(value < m.values[0])
        return bool(m.values[0] <= value <= m.values[1])

    def _text_evidence(self, value: str, folded: str) -> str | None:
        """Why ``value`` (``folded`` as the condition folds it) satisfies the condition."""
        m, spec, label = self.match, self.spec, self.spec.label
        op = m.operator
        subject = f"{label} {self._shown(value)}" if spec.show else label
        if op == "regex":
            how = Fold.ACCENTS if m.ignore_accents else Fold.RAW
            text = folded.encode("utf-8", "replace")
            for pattern, regex in zip(m.values, self.patterns, strict=True):
                found = regex.search(text)
                if found is not None:
                    start, end = found.span()
                    hit = _original_text(value, folded, text, start=start, end=end, how=how)
                    return f"{label} matches /{pattern}/ at {_q(hit)}"
            return None
        if op == "in_list":
            name = m.values[0]
            if folded in self.entries:
                return f"{label} {value if spec.show else ''} is in {name}".replace("  ", " ")
            domain = folded.rpartition("@")[2]
            entry = _domain_hit(domain, self.domains)
            if entry is None:
                return None
            domain_label = label.replace("address", "domain")
            via = "" if entry == domain else f" (as a subdomain of {entry})"
            return f"{domain_label} {domain} is in {name}{via}"
        if op == "equals":
            return f"{label} is {self._shown(value)}" if folded in self.entries else None
        if op == "glob":
            encoded = folded.encode("utf-8", "replace")
            for glob, regex in zip(m.values, self.patterns, strict=True):
                if regex.fullmatch(encoded) is not None:
                    return f"{subject} matches {_q(glob)}"
            return None
        verb = _NEGATED_VERB[op][0]
        for needle, folded_needle in zip(m.values, self.needles, strict=True):
            if (
                (op == "contains" and folded_needle in folded)
                or (op == "starts_with" and folded.startswith(folded_needle))
                or (op == "ends_with" and folded.endswith(folded_needle))
            ):
                return f"{subject} {verb} {_q(needle)}"
        return None


def _original_text(
    value: str, folded: str, encoded: bytes, *, start: int, end: int, how: Fold
) -> str:
    """The part of ``value`` that became ``encoded[start:end]`` when folded by ``how``."""
    first = len(encoded[:start].decode("utf-8", "replace"))
    last = len(encoded[:end].decode("utf-8", "replace"))
    if how is Fold.RAW or folded == value:
        return value[first:last]
    # Fold character by character, keeping where each original character starts.
    position = 0
    begin = stop = None
    for index, char in enumerate(value):
        if begin is None and position >= first:
            begin = index
        if position >= last:
            stop = index
            break
        position += len(fold(char, how))
    if begin is None:
        return folded[first:last]
    return value[begin : stop if stop is not None else len(value)]


def _member(slot: int, entries: frozenset[Any]) -> Test:
    def member(view: MessageView) -> bool:
        values = view.cache[slot]
        if values is None:
            values = view.get(slot)
        for v in values:  # noqa: SIM110 - a plain loop beats any() on the hot path
            if v in entries:
                return True
        return False

    return member


def _found(slot: int, ids: frozenset[int]) -> Test:
    """Whether any of the patterns ``ids`` was found (the slot holds the numbers found)."""

    def found(view: MessageView) -> bool:
        present = view.cache[slot]
        if present is None:
            present = view.get(slot)
        return not ids.isdisjoint(present)

    return found


def _affix(slot: int, needles: tuple[str, ...], *, start: bool) -> Test:
    def starts(view: MessageView) -> bool:
        values = view.cache[slot]
        if values is None:
            values = view.get(slot)
        for v in values:  # noqa: SIM110 - a plain loop beats any() on the hot path
            if v.startswith(needles):
                return True
        return False

    def ends(view: MessageView) -> bool:
        values = view.cache[slot]
        if values is None:
            values = view.get(slot)
        for v in values:  # noqa: SIM110 - a plain loop beats any() on the hot path
            if v.endswith(needles):
                return True
        return False

    return starts if start else ends


def _searcher(regex: Any, *, full: bool) -> Callable[[bytes], bool]:
    """``text -> bool``: does ``regex`` match (anywhere, or the whole text when ``full``)?

    Calls RE2's match directly when this google-re2 exposes it (``_regexp.Match``,
    as 1.x does), skipping the wrapper's generator and match object; else the
    public ``search`` / ``fullmatch``. tests/test_rules_safety.py checks both agree.
    """
    low = getattr(regex, "_regexp", None)
    anchors = getattr(re2, "_Anchor", None)
    if low is not None and anchors is not None and hasattr(low, "Match"):
        anchor = anchors.ANCHOR_BOTH if full else anchors.UNANCHORED
        match = low.Match
        null = (-1, -1)

        def fast(text: bytes) -> bool:
            return bool(match(anchor, text, 0, len(text))[0] != null)

        return fast
    public = regex.fullmatch if full else regex.search

    def wrapped(text: bytes) -> bool:
        return public(text) is not None

    return wrapped


def _search(slot: int, search: Callable[[bytes], bool]) -> Test:
    def matches(view: MessageView) -> bool:
        values = view.cache[slot]
        if values is None:
            values = view.get(slot)
        for v in values:  # noqa: SIM110 - a plain loop beats any() on the hot path
            if search(v):
                return True
        return False

    return matches


def _listed(
    slot: int, entries: frozenset[str], domains: frozenset[str], *, addresses: bool
) -> Test:
    def listed(view: MessageView) -> bool:
        values = view.cache[slot]
        if values is None:
            values = view.get(slot)
        for v in values:
            if v in entries:
                return True
            d = v.rpartition("@")[2] if addresses else v
            while d:
                if d in domains:
                    return True
                dot = d.find(".")
                if dot < 0:
                    break
                d = d[dot + 1 :]
        return False

    return listed


def _clock_between(slot: int, low: int, high: int) -> Test:
    if low <= high:

        def inside(view: MessageView) -> bool:
            return any(low <= v < high for v in view.get(slot))

        return inside

    def wrapped(view: MessageView) -> bool:
        return any(v >= low or v < high for v in view.get(slot))

    return wrapped


def compile_condition(
    condition: Condition,
    *,
    slots: SlotTable,
    lists: Mapping[str, Sequence[str]],
    zone_name: str,
) -> Check:
    """Compile a condition tree into a :class:`Check` whose values live in ``slots``.

    Raises:
        ValueError: an unknown field or an operator that does not apply to it, or
            a pattern RE2 cannot compile (the loader reports these before).
    """
    context = _Context(slots=slots, lists=lists, zone_name=zone_name)
    return _compile(condition, context)


def _compile(condition: Condition, context: _Context) -> Check:
    if isinstance(condition, Match):
        spec = field_spec(condition.field)
        if spec is None:
            raise ValueError(f"unknown field {condition.field!r}")
        if condition.operator not in OPERATORS_BY_TYPE[spec.type]:
            raise ValueError(f"operator {condition.operator!r} does not apply to {spec.name}")
        return _Leaf(condition, spec, context)
    if isinstance(condition, AllOf):
        return _All([_compile(c, context) for c in condition.conditions])
    if isinstance(condition, AnyOf):
        return _Any([_compile(c, context) for c in condition.conditions])
    if isinstance(condition, Not):
        return _Not(_compile(condition.condition, context))
    if isinstance(condition, Always):
        return _Always()
    raise TypeError(f"not a condition: {condition!r}")


def describe_condition(condition: Condition, *, zone_name: str = "UTC") -> str:
    """A condition in words, without a message (for ``triage rules check`` listings)."""
    check = compile_condition(condition, slots=SlotTable(), lists={}, zone_name=zone_name)
    return check.describe()
