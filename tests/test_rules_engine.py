"""The interpreter: combinators, actions and their precedence, stop, and explanations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rules import (
    Actions,
    AllOf,
    Always,
    AnyOf,
    Match,
    Not,
    Rule,
    RuleDecision,
    RuleSet,
    parse_rules,
)
from triage.domain import Address, InboundMessage, Priority
from triage.errors import RuleFileError


def message(subject: str = "Invoice 42 overdue", sender: str = "anna@bigclient.example", **kw):
    return InboundMessage(
        message_id="<m@example.com>",
        subject=subject,
        received_at=datetime(2026, 3, 4, 10, 0, tzinfo=UTC),
        from_=Address("Anna", sender),
        body_text=kw.pop("body", "Please pay the invoice."),
        **kw,
    )


def decide(text: str, msg: InboundMessage | None = None, **options) -> RuleDecision:
    return parse_rules(text, **options).evaluate(msg or message())


def rule(name: str, when: str, then: str) -> str:
    return f"[[rule]]\nname = '{name}'\nwhen = {when}\nthen = {then}\n\n"


SUBJECT_INVOICE = "{ field = 'subject', contains = 'invoice' }"
SUBJECT_NOPE = "{ field = 'subject', contains = 'nope' }"


# -- combinators ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (f"{{ all = [{SUBJECT_INVOICE}, {SUBJECT_INVOICE}] }}", True),
        (f"{{ all = [{SUBJECT_INVOICE}, {SUBJECT_NOPE}] }}", False),
        (f"{{ any = [{SUBJECT_NOPE}, {SUBJECT_INVOICE}] }}", True),
        (f"{{ any = [{SUBJECT_NOPE}, {SUBJECT_NOPE}] }}", False),
        (f"{{ not = {SUBJECT_NOPE} }}", True),
        (f"{{ not = {SUBJECT_INVOICE} }}", False),
        (f"{{ not = {{ not = {SUBJECT_INVOICE} }} }}", True),
        (f"{{ all = [{SUBJECT_INVOICE}, {{ not = {{ any = [{SUBJECT_NOPE}] }} }}] }}", True),
        (
            (
                f"{{ any = [{{ all = [{SUBJECT_INVOICE}, {SUBJECT_NOPE}] }},"
                f" {{ all = [{{ not = {SUBJECT_NOPE} }}, {SUBJECT_INVOICE}] }}] }}"
            ),
            True,
        ),
        (f"{{ all = [{SUBJECT_INVOICE}, {SUBJECT_INVOICE}, {SUBJECT_NOPE}] }}", False),
        (f"{{ all = [{SUBJECT_INVOICE}, {SUBJECT_INVOICE}, {SUBJECT_INVOICE}] }}", True),
        ("{ always = true }", True),
    ],
)
def test_combinators(when, expected):
    decision = decide(rule("r", when, "{ tags = ['hit'] }"))
    assert bool(decision.hits) is expected


def test_nested_tables_syntax():
    text = """
[[rule]]
name = "nested"
[[rule.when.all]]
field = "subject"
contains = "invoice"
[[rule.when.all]]
any = [
  { field = "from.domain", equals = "bigclient.example" },
  { field = "from", equals = "x@y.z" },
]
[rule.then]
queue = "billing"
"""
    assert decide(text).queue == "billing"


def test_rule_sets_built_in_code_evaluate_like_files():
    rules = RuleSet(
        [
            Rule(
                "code",
                AllOf((Match("subject", "contains", ("invoice",)), Not(AnyOf((Always(),))))),
                Actions(tags=("never",)),
            ),
            Rule(
                "code2", Match("from.domain", "equals", ("bigclient.example",)), Actions(queue="q")
            ),
        ]
    )
    decision = rules.evaluate(message())
    assert decision.matched == ("code2",)
    assert decision.queue == "q"


def test_rule_sets_built_in_code_refuse_broken_conditions():
    with pytest.raises(RuleFileError) as caught:
        RuleSet(
            [
                Rule("a", Match("subjct", "contains", ("x",)), Actions(tags=("t",))),
                Rule("a", Match("size", "contains", ("x",)), Actions(tags=("t",))),
            ]
        )
    text = str(caught.value)
    assert "rule 'a': unknown field 'subjct'" in text
    assert "operator 'contains' does not apply to size" in text
    assert "a rule with this name comes earlier" in text


# -- actions and their precedence -------------------------------------------------------


def test_every_action():
    text = rule(
        "all-actions",
        "{ always = true }",
        "{ queue = 'billing', priority = 'urgent', tags = ['a', 'b'], escalate = 'owner must see',"
        " no_ack = true, ack_template = 'vip', assign = 'anna' }",
    )
    decision = decide(text)
    assert decision.queue == "billing"
    assert decision.priority is Priority.URGENT
    assert decision.tags == ("a", "b")
    assert decision.escalate == ("rule 'all-actions': owner must see",)
    assert decision.suppress_ack is True
    assert decision.ack_template == "vip"
    assert decision.assignee == "anna"
    assert decision.stopped_by is None


def test_no_rule_matching_decides_nothing():
    decision = decide(rule("r", SUBJECT_NOPE, "{ queue = 'billing' }"))
    assert decision == RuleDecision()
    assert decision.queue is None
    assert decision.priority is None
    assert decision.explanation == ()


def test_first_rule_that_sets_the_queue_keeps_it_later_rules_still_apply():
    text = (
        rule("first", SUBJECT_INVOICE, "{ queue = 'billing' }")
        + rule("second", SUBJECT_INVOICE, "{ queue = 'records', tags = ['records'] }")
        + rule("third", SUBJECT_INVOICE, "{ queue = 'billing', tags = 'again' }")
    )
    decision = decide(text)
    assert decision.queue == "billing"
    assert decision.tags == ("records", "again")
    assert decision.matched == ("first", "second", "third")
    assert decision.hits[1].overridden == (
        "queue records not applied: rule 'first' already chose billing",
    )
    assert decision.hits[2].overridden == ()  # the same queue is no conflict
    assert (
        "rule 'second': queue records not applied: rule 'first' already chose billing"
        in decision.explanation
    )


@pytest.mark.parametrize(
    ("priorities", "expected"),
    [
        (["low", "high"], Priority.HIGH),
        (["high", "low"], Priority.HIGH),
        (["normal", "urgent", "high"], Priority.URGENT),
        (["low"], Priority.LOW),
        (["normal", "normal"], Priority.NORMAL),
    ],
)
def test_priority_is_only_ever_raised(priorities, expected):
    text = "".join(
        rule(f"p{i}", "{ always = true }", f"{{ priority = '{p}' }}")
        for i, p in enumerate(priorities)
    )
    assert decide(text).priority is expected


def test_a_lower_priority_is_noted_as_not_applied():
    text = rule("up", "{ always = true }", "{ priority = 'high' }") + rule(
        "down", "{ always = true }", "{ priority = 'low' }"
    )
    decision = decide(text)
    assert decision.hits[1].applied == ()
    assert decision.hits[1].overridden == (
        "priority low not applied: it is already high and rules only raise it",
    )


def test_tags_accumulate_without_duplicates_and_escalations_accumulate():
    text = rule("a", "{ always = true }", "{ tags = ['vip', 'legal'], escalate = 'one' }") + rule(
        "b", "{ always = true }", "{ tags = ['legal', 'late'], escalate = 'two' }"
    )
    decision = decide(text)
    assert decision.tags == ("vip", "legal", "late")
    assert decision.escalate == ("rule 'a': one", "rule 'b': two")


def test_ack_template_and_assignee_first_rule_wins():
    text = rule("a", "{ always = true }", "{ ack_template = 'hu', assign = 'anna' }") + rule(
        "b", "{ always = true }", "{ ack_template = 'en', assign = 'bela', no_ack = true }"
    )
    decision = decide(text)
    assert decision.ack_template == "hu"
    assert decision.assignee == "anna"
    assert decision.suppress_ack is True
    assert decision.hits[1].overridden == (
        "acknowledgment template en not applied: rule 'a' already chose hu",
        "assignment to bela not applied: rule 'a' already assigned anna",
    )


def test_stop_ends_evaluation():
    text = (
        rule("tag", "{ always = true }", "{ tags = 'seen' }")
        + rule("stopper", SUBJECT_INVOICE, "{ queue = 'bulk', stop = true }")
        + rule("later", "{ always = true }", "{ queue = 'billing', priority = 'urgent' }")
    )
    decision = decide(text)
    assert decision.matched == ("tag", "stopper")
    assert decision.queue == "bulk"
    assert decision.priority is None
    assert decision.stopped_by == "stopper"
    assert decision.explanation[-1] == "rule 'stopper' stopped evaluation; later rules did not run"


def test_stop_that_does_not_match_stops_nothing():
    text = rule("stopper", SUBJECT_NOPE, "{ queue = 'bulk', stop = true }") + rule(
        "later", "{ always = true }", "{ queue = 'billing' }"
    )
    decision = decide(text)
    assert decision.queue == "billing"
    assert decision.stopped_by is None


def test_stop_on_the_last_rule_mentions_no_later_rules():
    decision = decide(rule("only", "{ always = true }", "{ tags = 'x', stop = true }"))
    assert decision.stopped_by is None
    assert decision.explanation == ("rule 'only': every message → tag x",)


def test_disabled_rules_are_checked_but_never_run():
    text = (
        "[[rule]]\nname = 'off'\nenabled = false\nwhen = { always = true }\n"
        "then.queue = 'billing'\n"
    )
    ruleset = parse_rules(text)
    assert len(ruleset) == 0
    assert ruleset.evaluate(message()).queue is None


# -- explanations -----------------------------------------------------------------------


def test_explanation_sentence_from_the_issue():
    text = rule(
        "vip-client", "{ field = 'from', in_list = 'vip_clients' }", "{ priority = 'high' }"
    )
    decision = decide(
        text,
        message(sender="someone@example.com"),
        lists={"vip_clients": ["example.com"]},
    )
    assert decision.explanation == (
        "rule 'vip-client': from domain example.com is in vip_clients → priority high",
    )
    assert decision.hits[0].reasons == ("from domain example.com is in vip_clients",)


@pytest.mark.parametrize(
    ("when", "msg", "reason"),
    [
        (
            "{ field = 'subject', contains = ['nope', 'INVOICE'] }",
            message(),
            "subject 'Invoice 42 overdue' contains 'INVOICE'",
        ),
        (
            "{ field = 'subject', contains = 'szamla', ignore_accents = true }",
            message(subject="SZÁMLA kérdés"),
            "subject 'SZÁMLA kérdés' contains 'szamla'",
        ),
        ("{ field = 'body', contains = 'pay' }", message(), "body contains 'pay'"),
        (
            "{ field = 'body', regex = 'ügyvéd\\w*', ignore_accents = true }",
            message(body="Az ügyvédem szerint"),
            "body matches /ügyvéd\\w*/ at 'ügyvédem'",
        ),
        (
            "{ field = 'subject', regex = '\\d+' }",
            message(),
            "subject matches /\\d+/ at '42'",
        ),
        (
            "{ field = 'subject', starts_with = 'invoice' }",
            message(),
            "subject 'Invoice 42 overdue' starts with 'invoice'",
        ),
        (
            "{ field = 'from', glob = '*@*.example' }",
            message(),
            "from address anna@bigclient.example matches '*@*.example'",
        ),
        (
            "{ field = 'from.domain', equals = 'bigclient.example' }",
            message(),
            "from domain is bigclient.example",
        ),
        ("{ field = 'kind', equals = 'normal' }", message(), "kind is normal"),
        (
            "{ field = 'size', greater_than = '1kB' }",
            message(size=12_345),
            "size 12,345 bytes is greater than 1,000 bytes",
        ),
        ("{ field = 'header.List-Id', exists = false }", message(), "header List-Id is absent"),
        (
            "{ field = 'received.time', between = ['10:00', '12:00'] }",
            message(),
            "received at 10:00 (UTC), between 10:00 and 12:00",
        ),
        ("{ always = true }", message(), "every message"),
        (f"{{ not = {SUBJECT_NOPE} }}", message(), "subject does not contain 'nope'"),
        (
            "{ not = { field = 'subject', contains = ['a1', 'b2'] } }",
            message(),
            "subject contains none of 'a1' and 'b2'",
        ),
        (
            (
                "{ not = { any = [{ field = 'kind', equals = 'bounce' }, "
                "{ field = 'from', in_list = 'vip_clients' }] } }"
            ),
            message(),
            "kind is not bounce and from address is not in vip_clients",
        ),
        (
            (
                "{ not = { all = [{ field = 'kind', equals = 'normal' }, "
                "{ field = 'from', in_list = 'vip_clients' }] } }"
            ),
            message(),
            "kind is not normal or from address is not in vip_clients",
        ),
    ],
)
def test_reasons_in_words(when, msg, reason):
    decision = decide(rule("r", when, "{ tags = 'x' }"), msg, lists={"vip_clients": ["x.example"]})
    assert decision.hits[0].reasons == (reason,)


def test_all_gives_every_reason_any_gives_the_matching_ones():
    when = (
        "{ all = [ { field = 'subject', contains = 'invoice' },"
        " { any = [ { field = 'body', contains = 'nope' }, { field = 'body', contains = 'pay' },"
        " { field = 'kind', equals = 'normal' } ] } ] }"
    )
    decision = decide(rule("combo", when, "{ queue = 'billing' }"))
    assert decision.hits[0].reasons == (
        "subject 'Invoice 42 overdue' contains 'invoice'",
        "body contains 'pay'",
        "kind is normal",
    )
    assert decision.explanation == (
        (
            "rule 'combo': subject 'Invoice 42 overdue' contains 'invoice' and body contains 'pay'"
            " and kind is normal → queue billing"
        ),
    )


def test_long_values_are_shortened_in_reasons():
    subject = "x" * 200 + " invoice"
    decision = decide(rule("r", SUBJECT_INVOICE, "{ tags = 't' }"), message(subject=subject))
    reason = decision.hits[0].reasons[0]
    assert len(reason) < 100
    assert "…" in reason


def test_decision_lists_matched_rule_names_for_storage():
    text = rule("a", SUBJECT_INVOICE, "{ tags = 'a' }") + rule("b", SUBJECT_NOPE, "{ tags = 'b' }")
    text += rule("c", "{ always = true }", "{ tags = 'c' }")
    assert decide(text).matched == ("a", "c")
