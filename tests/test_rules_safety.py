"""No message and no rule can hang routing: RE2, input bounds, the pattern index's fallback.

Also: the rules package imports nothing but the standard library, re2 and the
pure parts of triage (it never touches IMAP, SMTP, the database or logging).
"""

from __future__ import annotations

import ast
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import MAX_BODY_CHARS, MAX_SHORT_CHARS, parse_rules
from rules.conditions import _searcher, compile_regex
from rules.fields import FIELDS, MessageView, SlotTable
from rules.patterns import PatternIndex
from rules.text import Fold, fold
from triage.domain import Address, Attachment, InboundMessage

ROOT = Path(__file__).resolve().parents[1]


def message(**kw) -> InboundMessage:
    base = {
        "message_id": "<m@x>",
        "subject": "hello",
        "received_at": datetime(2026, 1, 1, tzinfo=UTC),
        "from_": Address("", "a@example.com"),
    }
    base.update(kw)
    return InboundMessage(**base)


def one_rule(when: str) -> str:
    return f"[[rule]]\nname = 'r'\nwhen = {when}\nthen.tags = 'hit'\n"


def test_catastrophic_regex_on_a_long_body_returns_fast():
    # (a+)+$ backtracks exponentially in Python's re on "aaaa...b"; RE2 is linear.
    rules = parse_rules(one_rule("{ field = 'body', regex = '(a+)+$' }"))
    body = "a" * (MAX_BODY_CHARS - 1) + "b"
    start = time.perf_counter()
    decision = rules.evaluate(message(body_text=body))
    elapsed = time.perf_counter() - start
    assert decision.hits == ()
    assert elapsed < 1.0
    assert rules.evaluate(message(body_text="x" + "a" * 5000)).hits  # and it still works


def test_nested_quantifiers_on_every_field_are_linear():
    patterns = ["(a|aa)+$", "(x+x+)+y", "(.*a){12}", "^(\\w+\\s?)*$"]
    text = "".join(
        one_rule(f"{{ field = '{field}', regex = {pattern!r} }}").replace("'r'", f"'r{i}{j}'")
        for i, field in enumerate(["subject", "body", "body.all", "header.x-long", "from.name"])
        for j, pattern in enumerate(patterns)
    )
    rules = parse_rules(text)
    long = "a" * 50_000 + "!"
    msg = message(
        subject=long,
        body_text=long,
        quoted_text=long,
        headers=(("X-Long", long),),
        from_=Address(long, "a@example.com"),
    )
    start = time.perf_counter()
    rules.evaluate(msg)
    assert time.perf_counter() - start < 2.0


def test_a_huge_body_is_read_only_up_to_the_limit():
    rules = parse_rules(one_rule("{ field = 'body', contains = 'needle' }"))
    early = "x" * (MAX_BODY_CHARS - 10) + "needle" + "x" * 10_000_000
    late = "x" * MAX_BODY_CHARS + "needle" + "x" * 10_000_000
    start = time.perf_counter()
    assert rules.evaluate(message(body_text=early)).hits
    assert not rules.evaluate(message(body_text=late)).hits
    assert time.perf_counter() - start < 2.0


def test_the_limits_apply_to_subject_headers_recipients_and_attachments():
    rules = parse_rules(
        one_rule("{ field = 'subject', ends_with = 'needle' }").replace("'r'", "'s'")
        + one_rule("{ field = 'header.x-many', equals = 'needle' }").replace("'r'", "'h'")
        + one_rule("{ field = 'to', equals = 'needle@example.com' }").replace("'r'", "'t'")
        + one_rule("{ field = 'attachment.name', equals = 'needle' }").replace("'r'", "'a'")
    )
    many = 100_000
    msg = message(
        subject="x" * MAX_SHORT_CHARS + "needle",
        headers=(*(("X-Many", "no") for _ in range(many)), ("X-Many", "needle")),
        to=(
            *(Address("", f"u{i}@example.com") for i in range(many)),
            Address("", "needle@example.com"),
        ),
        attachments=(
            *(Attachment(f"f{i}", "text/plain", 1, "0") for i in range(many)),
            Attachment("needle", "text/plain", 1, "0"),
        ),
    )
    start = time.perf_counter()
    decision = rules.evaluate(msg)
    assert time.perf_counter() - start < 2.0
    assert decision.hits == ()


def test_accent_folding_of_a_huge_non_ascii_body_is_bounded():
    rules = parse_rules(
        one_rule("{ field = 'body.all', contains = 'szamla', ignore_accents = true }")
    )
    body = "Árvíztűrő tükörfúrógép " * 1_000_000  # 23 MB of accented text
    start = time.perf_counter()
    assert not rules.evaluate(message(body_text=body, quoted_text=body, signature=body)).hits
    assert time.perf_counter() - start < 3.0


def test_glob_cannot_backtrack():
    rules = parse_rules(one_rule("{ field = 'subject', glob = '*a*a*a*a*a*a*a*a*a*b' }"))
    start = time.perf_counter()
    assert not rules.evaluate(message(subject="a" * MAX_SHORT_CHARS)).hits
    assert time.perf_counter() - start < 1.0


# -- the RE2 fast path and the pattern index ----------------------------------------------

TEXTS = st.text(alphabet="abcáéőű AB1.\n-", max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.sampled_from(["a", "^a", "b$", "(a|b)+", "á.", "\\d", "^$", "a*", "[éő]{2}"]),
    text=TEXTS,
    ignore_case=st.booleans(),
)
def test_fast_search_agrees_with_the_public_re2_api(pattern, text, ignore_case):
    regex = compile_regex(pattern, ignore_case=ignore_case)
    data = text.encode()
    assert _searcher(regex, full=False)(data) is (regex.search(data) is not None)
    assert _searcher(regex, full=True)(data) is (regex.fullmatch(data) is not None)


@settings(max_examples=300, deadline=None)
@given(
    needles=st.lists(st.text(alphabet="abcá.*(", min_size=1, max_size=4), min_size=1, max_size=8),
    regexes=st.lists(st.sampled_from(["a+b", "^c", "á$", "(a|c)\\.", "\\("]), max_size=3),
    texts=st.lists(TEXTS, min_size=1, max_size=3),
)
def test_pattern_index_set_agrees_with_testing_each_pattern(needles, regexes, texts):
    index = PatternIndex()
    numbers = [index.add_needle(n) for n in needles]
    numbers += [index.add_regex(r, ignore_case=True) for r in regexes]
    index.compile()
    assert index.uses_set
    expected = set()
    for text in texts:
        expected.update(index.scan_each(text, text.encode()))
    assert index.present(texts) == frozenset(expected)
    for number, needle in zip(numbers, needles, strict=False):
        assert (number in expected) is any(needle in t for t in texts)


class _FailingSet:
    """What RE2 answers when a set's automaton runs out of memory: no matches at all."""

    def Match(self, _text):  # noqa: N802 - RE2's name
        return None


def test_pattern_index_falls_back_when_the_set_scan_fails():
    index = PatternIndex()
    szamla = index.add_needle("számla")
    invoice = index.add_regex("inv(oice)?\\s*\\d+", ignore_case=True)
    index.compile()
    assert index.present(["a számla és INVOICE 42"]) == {szamla, invoice}
    index._set = _FailingSet()
    assert index.present(["a számla és INVOICE 42"]) == {szamla, invoice}
    assert index.present(["nothing here"]) == frozenset()


def test_rules_still_match_when_every_set_scan_fails(monkeypatch):
    monkeypatch.setattr(re2.Set, "Match", lambda _self, _text: None)
    rules = parse_rules(
        one_rule("{ field = 'body', contains = 'számla' }")
        + one_rule("{ field = 'body', regex = 'ügyvéd' }").replace("'r'", "'r2'")
    )
    assert rules.evaluate(message(body_text="Számla és ügyvéd")).matched == ("r", "r2")
    assert rules.evaluate(message(body_text="semmi")).matched == ()


# -- folding ------------------------------------------------------------------------------


@given(st.text(max_size=50))
def test_folding_is_idempotent(text):
    for how in Fold:
        once = fold(text, how)
        assert fold(once, how) == once


PARTS = st.text(alphabet="aá e\u0301İß\n ﬁŐ-", max_size=12)


@settings(max_examples=300, deadline=None)
@given(body=PARTS, quoted=PARTS, signature=PARTS, how=st.sampled_from(list(Fold)))
def test_body_all_folded_from_its_parts_equals_folding_the_whole(body, quoted, signature, how):
    msg = message(body_text=body, quoted_text=quoted, signature=signature)
    table = SlotTable()
    slot = table.slot(FIELDS["body.all"], how)
    view = MessageView(msg, ZoneInfo("UTC"), table.fillers)
    whole = FIELDS["body.all"].extract(view)
    assert view.get(slot) == tuple(fold(v, how) for v in whole)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("SZÁMLA", "szamla"),
        ("Árvíztűrő tükörfúrógép", "arvizturo tukorfurogep"),
        ("ŐSZ ÜGY", "osz ugy"),
        ("Straße", "strasse"),
        ("ﬁnance", "finance"),
        ("e\u0301lmény", "elmeny"),  # an already decomposed accent
    ],
)
def test_accent_and_case_folding(text, folded):
    assert fold(text, Fold.BOTH) == folded


# -- import boundary ------------------------------------------------------------------------

ALLOWED = {"re2", "unicodedata", "tomllib", "triage.domain", "triage.errors"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_rules_package_imports_only_the_standard_library_re2_and_pure_triage():
    stdlib = set(sys.stdlib_module_names)
    for path in sorted((ROOT / "rules").glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            assert (
                top in stdlib or top in {"rules", "__future__"} or name in ALLOWED or top == "re2"
            ), f"{path.name} imports {name}"


# -- regular expressions too costly to run --------------------------------------------------


def test_a_regex_with_a_huge_program_is_refused_naming_file_rule_and_size(tmp_path):
    """`(.*){1,1000}(.*){1,1000}z` is valid RE2 but took ~3 s per 100k-character body."""
    from rules import load_rules  # noqa: PLC0415
    from rules.conditions import MAX_PROGRAM_SIZE  # noqa: PLC0415
    from triage.errors import RuleFileError  # noqa: PLC0415

    path = tmp_path / "slow.toml"
    path.write_text(
        "[[rule]]\nname = 'slow'\nwhen = { field = 'body', regex = '(.*){1,1000}(.*){1,1000}z' }\n"
        "then.tags = 'x'\n",
        encoding="utf-8",
    )
    with pytest.raises(RuleFileError) as caught:
        load_rules([path], queues=None, lists=None)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}: rule 'slow': when: body regex: ")
    assert f"regular expression too complex: program size 20001 > limit {MAX_PROGRAM_SIZE}" in (
        problem
    )


def test_every_shipped_regex_is_far_below_the_program_size_limit():
    import tomllib  # noqa: PLC0415

    from rules.conditions import MAX_PROGRAM_SIZE  # noqa: PLC0415

    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "regex" in node:
                value = node["regex"]
                found.extend(value if isinstance(value, list) else [value])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(tomllib.loads((ROOT / "rules" / "default.toml").read_text(encoding="utf-8")))
    assert found
    for pattern in found:
        for ignore_case in (True, False):
            for ignore_accents in (True, False):
                regex = compile_regex(
                    pattern, ignore_case=ignore_case, ignore_accents=ignore_accents
                )
                assert max(regex.programsize, regex.reverseprogramsize) < MAX_PROGRAM_SIZE / 4


def test_a_matching_regex_near_the_limit_explains_itself_quickly():
    """The evidence (where it matched) needs only the whole match: no capture groups,
    so RE2 finds it with its DFAs; with groups this took ~0.2 s per message."""
    pattern = "(.*){1,44}(.*){1,44}z"
    regex = compile_regex(pattern, ignore_case=True)
    assert regex.groups == 0
    assert regex.programsize <= 1000
    rules = parse_rules(one_rule(f"{{ field = 'body', regex = '{pattern}' }}"))
    body = ("hello world z " * 8000)[:MAX_BODY_CHARS]
    start = time.perf_counter()
    for _ in range(5):
        decision = rules.evaluate(message(body_text=body))
    assert time.perf_counter() - start < 0.5
    assert decision.hits[0].reasons[0].startswith("body matches /(.*){1,44}(.*){1,44}z/ at")
