"""Every substring and regular expression on one field, looked for in one pass.

All ``contains`` needles and ``regex`` patterns a rule set uses on one field
(with one fold) go into one :class:`PatternIndex`. For each message the field's
text is scanned once by an RE2 ``Set`` (one automaton for all patterns, linear in
the text) and each condition then only checks whether one of its patterns was
among those found. With 200 rules this replaces hundreds of scans of the body by
one.

Safety and correctness: RE2 reports a set's matches only when the scan
succeeded; a scan that runs out of automaton memory reports nothing. Entry 0 is
the empty pattern, which matches every text, so an answer without it means the
scan failed, and the index then tests each pattern on its own (``in`` for
needles, a compiled RE2 expression for patterns) -- slower, never wrong. A set
RE2 refuses to build is never used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import re2

__all__ = ["PatternIndex"]

_SET_MEMORY = 64 << 20
"""Bytes RE2 may use for one set's automaton (the default 8 MiB is meant for one regex)."""

_ALWAYS = 0
"""Number of the sentinel entry (the empty pattern)."""
_SENTINEL = frozenset({_ALWAYS})
_NOTHING: frozenset[int] = frozenset()


def _options(*, memory: int = 0) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True  # only "found or not" is asked: no submatches
    if memory:
        options.max_mem = memory
    return options


class PatternIndex:
    """Needles and RE2 patterns for one field, numbered in the order added.

    Needles are plain substrings of the (folded) text; patterns are RE2 syntax,
    case-insensitive when added so. Numbers start at 1.
    """

    __slots__ = ("_fallback", "_numbers", "_set", "_sources")

    def __init__(self) -> None:
        self._sources: list[tuple[str, str, bool]] = [("regex", "", False)]
        self._numbers: dict[tuple[str, str, bool], int] = {}
        self._fallback: list[tuple[str | None, Any]] = [(None, None)]
        self._set: Any = None

    def add_needle(self, needle: str) -> int:
        """The number of the substring ``needle`` (compared as is: fold it first)."""
        return self._add(("needle", needle, False))

    def add_regex(self, pattern: str, *, ignore_case: bool) -> int:
        """The number of the RE2 ``pattern``.

        Raises:
            re2.error: RE2 cannot compile it (the loader reports this first).
        """
        return self._add(("regex", pattern, ignore_case))

    def _add(self, source: tuple[str, str, bool]) -> int:
        number = self._numbers.get(source)
        if number is not None:
            return number
        kind, text, ignore_case = source
        if kind == "needle":
            self._fallback.append((text, None))
        else:
            options = _options()
            options.case_sensitive = not ignore_case
            self._fallback.append((None, re2.compile(text, options)))
        number = len(self._sources)
        self._sources.append(source)
        self._numbers[source] = number
        self._set = None
        return number

    def compile(self) -> None:
        """Build the RE2 set; without it (RE2 refused) every scan uses the fallback."""
        self._set = None
        if len(self._sources) == 1:
            return
        candidate = re2.Set.SearchSet(_options(memory=_SET_MEMORY))
        try:
            for kind, text, ignore_case in self._sources:
                if kind == "needle":
                    candidate.Add(re2.escape(text))
                else:
                    candidate.Add(f"(?i:{text})" if ignore_case else f"(?:{text})")
            candidate.Compile()
        except re2.error:
            return
        self._set = candidate

    @property
    def uses_set(self) -> bool:
        """Whether scans use the RE2 set (False: each pattern on its own)."""
        return self._set is not None

    def present(self, texts: Sequence[str]) -> frozenset[int]:
        """Numbers of the needles and patterns found in any of ``texts``."""
        if len(texts) == 1 and self._set is not None:
            numbers = self._set.Match(texts[0].encode("utf-8", "replace"))
            if numbers and _ALWAYS in numbers:
                found_one = frozenset(numbers)
                return found_one - _SENTINEL if len(found_one) > 1 else _NOTHING
        found: set[int] = set()
        for text in texts:
            encoded = text.encode("utf-8", "replace")
            numbers = self._set.Match(encoded) if self._set is not None else None
            if numbers and _ALWAYS in numbers:
                found.update(numbers)
            else:
                found.update(self.scan_each(text, encoded))
        found.discard(_ALWAYS)
        return frozenset(found)

    def scan_each(self, text: str, encoded: bytes) -> list[int]:
        """The fallback: each needle and pattern tested on its own."""
        hits: list[int] = []
        for number, (needle, regex) in enumerate(self._fallback):
            if number == _ALWAYS:
                continue
            if needle is not None:
                if needle in text:
                    hits.append(number)
            elif regex.search(encoded) is not None:
                hits.append(number)
        return hits
