"""Reading rule files: every problem reported at once with its file and rule; reloads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rules import RuleSet, load_rules, parse_rules, reload_rules
from triage.config import load_config
from triage.domain import Address, InboundMessage
from triage.errors import RuleFileError, UserError
from triage.rule_files import load_configured_rules, reload_configured_rules, rule_paths

ROOT = Path(__file__).resolve().parents[1]
QUEUES = ["billing", "records", "bulk"]
LISTS = {"vip_clients": ["bigclient.example"], "blocked_senders": []}

BROKEN = """
[[rule]]
name = "typo-field"
when = { field = "subjct", contains = "invoice" }
then.queue = "billing"

[[rule]]
name = "typo-operator"
when = { field = "subject", contain = "invoice" }
then.queue = "billing"

[[rule]]
name = "bad-regex"
when = { field = "body", regex = "(?<=EUR)\\\\d+" }
then.queue = "billing"

[[rule]]
name = "unknown-list"
when = { field = "from", in_list = "vips" }
then.priority = "high"

[[rule]]
name = "unknown-queue"
when = { field = "subject", contains = "receipt" }
then.queue = "recrods"

[[rule]]
name = "fine"
when = { field = "subject", contains = "ok" }
then.tags = "fine"
"""


def problems_of(text: str, **options) -> list[str]:
    options.setdefault("queues", QUEUES)
    options.setdefault("lists", LISTS)
    with pytest.raises(RuleFileError) as caught:
        parse_rules(text, source="rules.toml", **options)
    return caught.value.problems


def test_every_kind_of_error_is_reported_at_once_with_file_and_rule():
    problems = problems_of(BROKEN)
    assert len(problems) == 5
    assert problems[0].startswith("rules.toml: rule 'typo-field': when: unknown field 'subjct'")
    assert "(did you mean 'subject'?)" in problems[0]
    assert problems[1] == (
        "rules.toml: rule 'typo-operator': when: unknown operator 'contain'"
        " (did you mean 'contains'?)"
    )
    assert problems[2].startswith("rules.toml: rule 'bad-regex': when: body regex: regex '(?<=EUR)")
    assert "RE2 cannot compile it: invalid perl operator: (?<=" in problems[2]
    assert "no look-around or back-references" in problems[2]
    assert problems[3] == (
        "rules.toml: rule 'unknown-list': when: from in_list: unknown list 'vips'"
        " (the config's [lists] has blocked_senders, vip_clients)"
    )
    assert problems[4] == (
        "rules.toml: rule 'unknown-queue': then.queue: unknown queue 'recrods'"
        " (did you mean 'records'?) (the config's queues are billing, bulk, records)"
    )


def test_rule_file_error_is_a_user_error_whose_message_lists_every_problem():
    with pytest.raises(UserError) as caught:
        parse_rules(BROKEN, source="rules.toml", queues=QUEUES, lists=LISTS)
    assert str(caught.value).count("\n") == 4


def test_without_a_config_queue_and_list_names_are_not_checked():
    problems = problems_of(BROKEN, queues=None, lists=None)
    assert len(problems) == 3
    assert not any("unknown list" in p or "unknown queue" in p for p in problems)
    fine = parse_rules(
        "[[rule]]\nname = 'x'\nwhen = { field = 'from', in_list = 'vip' }\nthen.queue = 'any'\n"
    )
    assert fine.names_checked is False


@pytest.mark.parametrize(
    ("rule_text", "problem"),
    [
        ("when = { always = true }\nthen.queue = 'billing'", "rule #1: name is missing"),
        (
            "name = 'bad name!'\nwhen = { always = true }\nthen.queue = 'billing'",
            "rule #1: name 'bad name!' must be 1-100 letters",
        ),
        ("name = 'r'\nthen.queue = 'billing'", "rule 'r': when is missing"),
        ("name = 'r'\nwhen = { always = true }", "rule 'r': then is missing"),
        (
            "name = 'r'\nwhen = { always = true }\nthen = {}",
            "rule 'r': then: no actions",
        ),
        (
            "name = 'r'\nwhen = { always = true }\nthen.queu = 'billing'",
            "rule 'r': then: unknown action 'queu' (did you mean 'queue'?)",
        ),
        (
            "name = 'r'\nwhen = { always = true }\nthen.priority = 'critical'",
            "rule 'r': then.priority: 'critical' is not urgent, high, normal or low",
        ),
        (
            "name = 'r'\nwhen = { always = true }\nthen.escalate = ''",
            "rule 'r': then.escalate: must be a non-empty string (the reason owners will read)",
        ),
        (
            "name = 'r'\nwhen = { always = true }\nthen.stop = 'yes'",
            "rule 'r': then.stop: must be true or false",
        ),
        (
            "name = 'r'\nwhen = { always = true }\nthen.tags = []",
            "rule 'r': then.tags: takes a tag or a list of tags",
        ),
        (
            "name = 'r'\ndescripton = 'x'\nwhen = { always = true }\nthen.tags = 'x'",
            "rule 'r': unknown key 'descripton' (did you mean 'description'?)",
        ),
        (
            (
                "name = 'r'\nwhen = { field = 'subject', contains = 'a', equals = 'b' }\n"
                "then.tags = 'x'"
            ),
            "rule 'r': when: one operator per condition (found contains, equals)",
        ),
        (
            "name = 'r'\nwhen = { field = 'subject' }\nthen.tags = 'x'",
            "rule 'r': when: no operator",
        ),
        (
            "name = 'r'\nwhen = { field = 'size', contains = 'a' }\nthen.tags = 'x'",
            "rule 'r': when: operator 'contains' does not apply to size (number)",
        ),
        (
            "name = 'r'\nwhen = { field = 'subject', greater_than = 3 }\nthen.tags = 'x'",
            "rule 'r': when: operator 'greater_than' does not apply to subject (text)",
        ),
        (
            "name = 'r'\nwhen = { field = 'size', greater_than = 'big' }\nthen.tags = 'x'",
            "rule 'r': when: size greater_than: 'big' is not a size",
        ),
        (
            (
                "name = 'r'\nwhen = { field = 'attachment.count', greater_than = '1MB' }\n"
                "then.tags = 'x'"
            ),
            "rule 'r': when: attachment.count greater_than: takes a whole number",
        ),
        (
            "name = 'r'\nwhen = { field = 'size', between = [10, 1] }\nthen.tags = 'x'",
            "rule 'r': when: size between: low is greater than high",
        ),
        (
            "name = 'r'\nwhen = { field = 'received.time', after = '25:00' }\nthen.tags = 'x'",
            "rule 'r': when: received.time after: '25:00' is not a time of day",
        ),
        (
            "name = 'r'\nwhen = { field = 'received.time', between = ['08:00'] }\nthen.tags = 'x'",
            "rule 'r': when: received.time between: takes two times",
        ),
        (
            (
                "name = 'r'\nwhen = { field = 'received.weekday', equals = 'someday' }\n"
                "then.tags = 'x'"
            ),
            "rule 'r': when: received.weekday equals: 'someday' is not a weekday",
        ),
        (
            "name = 'r'\nwhen = { field = 'kind', equals = 'spam' }\nthen.tags = 'x'",
            (
                "rule 'r': when: kind equals: 'spam' is not one of normal, auto_reply, bounce,"
                " mailing_list"
            ),
        ),
        (
            "name = 'r'\nwhen = { field = 'subject', contains = '' }\nthen.tags = 'x'",
            "rule 'r': when: subject contains: takes a non-empty string",
        ),
        (
            "name = 'r'\nwhen = { field = 'subject', exists = 'yes' }\nthen.tags = 'x'",
            "rule 'r': when: subject exists: write exists = true or exists = false",
        ),
        (
            (
                "name = 'r'\nwhen = { field = 'subject', contains = 'a', ignore_case = 'no' }\n"
                "then.tags = 'x'"
            ),
            "rule 'r': when: ignore_case must be true or false",
        ),
        (
            "name = 'r'\nwhen = { any = [] }\nthen.tags = 'x'",
            "rule 'r': when.any: any takes a non-empty list of conditions",
        ),
        (
            "name = 'r'\nwhen = { always = false }\nthen.tags = 'x'",
            "rule 'r': when.always: write always = true",
        ),
        (
            (
                "name = 'r'\n"
                "when = { any = [{ field = 'subject', contains = 'a' }], field = 'x' }\n"
                "then.tags = 'x'"
            ),
            "rule 'r': when: any must stand alone in its table",
        ),
        (
            (
                "name = 'r'\nwhen.all = [{ always = true },"
                " { not = { field = 'nope', exists = true } }]\n"
                "then.tags = 'x'"
            ),
            "rule 'r': when.all[1].not: unknown field 'nope'",
        ),
        (
            "name = 'r'\nwhen = 'always'\nthen.tags = 'x'",
            "rule 'r': when: a condition is a table",
        ),
        (
            "name = 'r'\nwhen = { field = 'subject', regex = '(a)\\1' }\nthen.tags = 'x'",
            "rule 'r': when: subject regex: regex '(a)\\1': RE2 cannot compile it",
        ),
        (
            "name = 'r'\nwhen = { field = 'subject', regex = 'a{2000}' }\nthen.tags = 'x'",
            (
                "rule 'r': when: subject regex: regex 'a{2000}': RE2 cannot compile it: invalid"
                " repetition size"
            ),
        ),
        (
            "name = 'r'\nwhen = { field = 'subject', glob = '[z-a]*' }\nthen.tags = 'x'",
            "rule 'r': when: subject glob: glob '[z-a]*': not a valid glob",
        ),
        (
            "name = 'r'\nwhen = { field = 'header.', exists = true }\nthen.tags = 'x'",
            "rule 'r': when: unknown field 'header.'",
        ),
        (
            "name = 'r'\nenabled = 'no'\nwhen = { always = true }\nthen.tags = 'x'",
            "rule 'r': enabled must be true or false",
        ),
    ],
)
def test_single_problems(rule_text, problem):
    problems = problems_of(f"[[rule]]\n{rule_text}\n")
    assert len(problems) >= 1
    assert any(p.startswith(f"rules.toml: {problem}") for p in problems), problems


def test_file_level_problems():
    problems = problems_of(
        "[defaults]\nignore_accent = true\n[[rules]]\nname = 'x'\n[[rule]]\nname = 'ok'\n"
        "when = { always = true }\nthen.tags = 'x'\n"
    )
    assert problems == [
        "rules.toml: unknown top-level key 'rules' (write each rule as a [[rule]] table)",
        "rules.toml: defaults: unknown key 'ignore_accent' (did you mean 'ignore_accents'?)",
    ]


def test_regex_longer_than_the_limit_is_refused():
    long = "a" * 2001
    problems = problems_of(
        f"[[rule]]\nname = 'r'\nwhen = {{ field = 'subject', regex = '{long}' }}\nthen.tags = 'x'\n"
    )
    assert problems == [
        "rules.toml: rule 'r': when: subject regex: regex is longer than 2000 characters"
    ]


def test_unknown_assistant_is_reported_when_assistants_are_known():
    text = "[[rule]]\nname = 'r'\nwhen = { always = true }\nthen.assign = 'zoltan'\n"
    problems = problems_of(text, assistants=["anna", "bela"])
    assert problems == [
        "rules.toml: rule 'r': then.assign: unknown assistant 'zoltan' (see [team.assistants])"
    ]
    assert parse_rules(text).evaluate(_message()).assignee == "zoltan"


def test_duplicate_names_within_and_across_files(tmp_path):
    one = tmp_path / "one.toml"
    two = tmp_path / "two.toml"
    rule = "[[rule]]\nname = 'dup'\nwhen = { always = true }\nthen.tags = 'x'\n"
    one.write_text(rule + rule, encoding="utf-8")
    two.write_text(rule, encoding="utf-8")
    with pytest.raises(RuleFileError) as caught:
        load_rules([one, two], queues=QUEUES, lists=LISTS)
    assert caught.value.problems == [
        f"{one}: rule 'dup': a rule with this name comes earlier in the file",
        f"{two}: rule 'dup': a rule with this name is already in {one}",
    ]


def test_problems_in_several_files_are_all_reported(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text("[[rule]]\nname = 'g'\nwhen = { always = true }\nthen.tags = 'x'\n")
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[[rule]\nname = ")
    latin = tmp_path / "latin.toml"
    latin.write_bytes("# Számla\n".encode("latin-1"))
    broken = tmp_path / "broken.toml"
    broken.write_text(BROKEN, encoding="utf-8")
    missing = tmp_path / "missing.toml"
    with pytest.raises(RuleFileError) as caught:
        load_rules([good, bad_toml, latin, missing, broken], queues=QUEUES, lists=LISTS)
    problems = caught.value.problems
    assert problems[0].startswith(f"{bad_toml}: not valid TOML: ")
    assert problems[1] == f"{latin}: rule file is not UTF-8 text"
    assert problems[2] == f"{missing}: rule file not found"
    assert len([p for p in problems if p.startswith(f"{broken}: rule '")]) == 5
    assert len(problems) == 8


def test_rules_load_in_file_order(tmp_path):
    first = tmp_path / "first.toml"
    second = tmp_path / "second.toml"
    first.write_text("[[rule]]\nname = 'a'\nwhen = { always = true }\nthen.queue = 'billing'\n")
    second.write_text("[[rule]]\nname = 'b'\nwhen = { always = true }\nthen.queue = 'records'\n")
    ruleset = load_rules([second, first], queues=QUEUES, lists=LISTS)
    assert ruleset.names == ("b", "a")
    assert ruleset.evaluate(_message()).queue == "records"
    assert ruleset.rules[0].source == str(second)


def test_unknown_time_zone_is_refused():
    with pytest.raises(RuleFileError, match="unknown time zone 'Mars/Olympus'"):
        parse_rules("", timezone="Mars/Olympus")


def _message() -> InboundMessage:
    return InboundMessage(
        message_id="<m@x>",
        subject="hello",
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        from_=Address("", "a@bigclient.example"),
    )


# -- the shipped example and the config -------------------------------------------------------


def test_shipped_rules_resolve_wherever_the_config_is_copied(tmp_path):
    copy = tmp_path / "etc" / "triage.toml"
    copy.parent.mkdir()
    copy.write_text((ROOT / "config.example.toml").read_text(encoding="utf-8"), encoding="utf-8")
    settings = load_config(copy)
    assert [p.name for p in rule_paths(settings)] == ["default.toml"]
    assert rule_paths(settings)[0].read_text(encoding="utf-8") == (
        ROOT / "rules" / "default.toml"
    ).read_text(encoding="utf-8")
    assert len(load_configured_rules(settings)) >= 10


def test_shipped_default_rules_load_against_the_example_config():
    settings = load_config(ROOT / "config.example.toml")
    assert settings.routing.rule_files == ["shipped:default.toml"]
    ruleset = load_configured_rules(settings)
    assert ruleset.names_checked is True
    assert len(ruleset) >= 10
    assert ruleset.timezone == "Europe/Budapest"
    for name in ("vip-client", "auto-reply", "bounce", "legal-threat", "invoice"):
        assert name in ruleset.names
    vip = ruleset.evaluate(_message())
    assert (
        "rule 'vip-client': from domain bigclient.example is in vip_clients" in vip.explanation[0]
    )


def test_shipped_default_rules_file_is_the_package_data_path():
    assert (ROOT / "rules" / "default.toml").is_file()
    import rules  # noqa: PLC0415

    assert (Path(rules.__file__).parent / "default.toml").is_file()


# -- reloading ------------------------------------------------------------------------------


def test_reload_keeps_the_old_rules_when_the_new_file_is_broken(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text("[[rule]]\nname = 'a'\nwhen = { always = true }\nthen.queue = 'billing'\n")
    current = load_rules([path], queues=QUEUES, lists=LISTS)
    path.write_text(BROKEN, encoding="utf-8")
    kept, problems = reload_rules(current, [path], queues=QUEUES, lists=LISTS)
    assert kept is current
    assert len(problems) == 5
    assert kept.evaluate(_message()).queue == "billing"
    path.unlink()
    kept, problems = reload_rules(current, [path], queues=QUEUES, lists=LISTS)
    assert kept is current
    assert problems == [f"{path}: rule file not found"]


def test_reload_adopts_a_good_new_file(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text("[[rule]]\nname = 'a'\nwhen = { always = true }\nthen.queue = 'billing'\n")
    current = load_rules([path], queues=QUEUES, lists=LISTS)
    path.write_text("[[rule]]\nname = 'b'\nwhen = { always = true }\nthen.queue = 'records'\n")
    new, problems = reload_rules(current, [path], queues=QUEUES, lists=LISTS)
    assert problems == []
    assert new is not current
    assert isinstance(new, RuleSet)
    assert new.evaluate(_message()).queue == "records"


def test_reload_with_settings(tmp_path):
    settings = load_config(ROOT / "config.example.toml")
    current = load_configured_rules(settings)
    broken = tmp_path / "broken.toml"
    broken.write_text(BROKEN, encoding="utf-8")
    kept, problems = reload_configured_rules(current, settings, [broken])
    assert kept is current
    assert any("unknown queue 'recrods'" in p for p in problems)


def test_every_field_and_operator_is_documented_in_the_shipped_file():
    from rules import FIELDS, OPERATORS  # noqa: PLC0415

    text = (ROOT / "rules" / "default.toml").read_text(encoding="utf-8")
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for name in [*FIELDS, "header.<Name>", *OPERATORS]:
        assert f" {name}" in comments, name


def _nested_not(levels: int) -> str:
    when = '{ field = "subject", contains = "x" }'
    for _ in range(levels):
        when = "{ not = " + when + " }"
    return f'[[rule]]\nname = "deep"\nwhen = {when}\nthen.queue = "billing"\n'


def test_conditions_nested_too_deep_are_refused_by_rule_name():
    from rules.loader import MAX_DEPTH  # noqa: PLC0415

    assert len(parse_rules(_nested_not(MAX_DEPTH - 1), queues=QUEUES, lists=LISTS)) == 1
    problems = problems_of(_nested_not(MAX_DEPTH))
    expected = (
        f"rules.toml: rule 'deep': when: conditions nested more than {MAX_DEPTH} levels deep;"
        " flatten them (all = [...] and any = [...] take lists)"
    )
    assert problems == [expected]


def test_nesting_beyond_the_toml_parser_is_one_problem_line(tmp_path):
    """500 nested `not` tables exhaust Python's recursion in tomllib itself."""
    problems = problems_of(_nested_not(500))
    assert len(problems) == 1
    assert problems[0].startswith("rules.toml: nesting too deep")
    path = tmp_path / "deep.toml"
    path.write_text(_nested_not(500), encoding="utf-8")
    with pytest.raises(RuleFileError) as caught:
        load_rules([path], queues=QUEUES, lists=LISTS)
    assert caught.value.problems[0].startswith(f"{path}: nesting too deep")
