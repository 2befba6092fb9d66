"""Every field type and operator of the rule engine, one condition at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rules import parse_rules
from triage.domain import Address, Attachment, InboundMessage, MessageKind

RECEIVED = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday, 11:00 in Budapest


def message(**fields) -> InboundMessage:
    base = {
        "message_id": "<m1@example.com>",
        "subject": "Számla kérdés – sürgős",
        "received_at": RECEIVED,
        "from_": Address("Kovács Ödön", "Odon.Kovacs@Mail.BigClient.example"),
        "to": (Address("Office", "office@example.com"),),
        "cc": (Address("", "anna@example.com"), Address("", "boss@partner.example")),
        "reply_to": (Address("", "replies@bigclient.example"),),
        "body_text": "Tisztelt Ügyfélszolgálat!\nA májusi SZÁMLÁN szereplő összeg hibásnak tűnik.",
        "quoted_text": "> Korábbi levél: a díjbekérő rendben van.",
        "signature": "Kovács Ödön\nPénzügy",
        "attachments": (
            Attachment("Számla_2026-05.PDF", "application/pdf", 120_000, "0" * 64),
            Attachment("meghívó.ics", "text/calendar", 900, "1" * 64),
        ),
        "headers": (
            ("From", "Kovács Ödön <odon.kovacs@mail.bigclient.example>"),
            ("X-Priority", "1 (Highest)"),
            ("Received", "from a"),
            ("Received", "from b"),
            ("X-Empty", ""),
        ),
        "size": 250_000,
        "language": "hu",
        "list_id": "",
        "kind": MessageKind.NORMAL,
    }
    base.update(fields)
    return InboundMessage(**base)


def matches(condition: str, msg: InboundMessage | None = None, **options) -> bool:
    text = f"[[rule]]\nname = 'probe'\nwhen = {condition}\nthen.tags = 'hit'\n"
    ruleset = parse_rules(text, **options)
    return bool(ruleset.evaluate(msg or message()).hits)


def reasons(condition: str, msg: InboundMessage | None = None, **options) -> tuple[str, ...]:
    text = f"[[rule]]\nname = 'probe'\nwhen = {condition}\nthen.tags = 'hit'\n"
    decision = parse_rules(text, **options).evaluate(msg or message())
    assert decision.hits, "the condition did not match"
    return decision.hits[0].reasons


# -- text operators ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{ field = 'subject', equals = 'számla kérdés – sürgős' }", True),
        ("{ field = 'subject', equals = 'számla kérdés' }", False),
        ("{ field = 'subject', equals = ['nope', 'SZÁMLA KÉRDÉS – SÜRGŐS'] }", True),
        ("{ field = 'subject', contains = 'KÉRDÉS' }", True),
        ("{ field = 'subject', contains = ['invoice', 'sürgős'] }", True),
        ("{ field = 'subject', contains = ['invoice', 'receipt'] }", False),
        ("{ field = 'subject', starts_with = 'számla' }", True),
        ("{ field = 'subject', starts_with = 'kérdés' }", False),
        ("{ field = 'subject', ends_with = ['x', 'SÜRGŐS'] }", True),
        ("{ field = 'subject', ends_with = 'számla' }", False),
        ("{ field = 'subject', glob = 'számla*' }", True),
        ("{ field = 'subject', glob = '*kérdés' }", False),
        ("{ field = 'subject', glob = 's?ámla [kx]érdés*' }", True),
        ("{ field = 'subject', glob = '[!s]*' }", False),
        ("{ field = 'subject', regex = 'k.rd.s\\s+–' }", True),
        ("{ field = 'subject', regex = '^kérdés' }", False),
        ("{ field = 'subject', exists = true }", True),
        ("{ field = 'list_id', exists = true }", False),
        ("{ field = 'list_id', exists = false }", True),
    ],
)
def test_text_operators(condition, expected):
    assert matches(condition) is expected


def test_matching_ignores_case_by_default_and_can_be_strict():
    assert matches("{ field = 'subject', contains = 'SZÁMLA' }")
    assert not matches("{ field = 'subject', contains = 'SZÁMLA', ignore_case = false }")
    assert matches("{ field = 'subject', contains = 'Számla', ignore_case = false }")
    assert not matches("{ field = 'subject', regex = 'SZÁMLA', ignore_case = false }")
    assert matches("{ field = 'subject', regex = 'SZÁMLA' }")


@pytest.mark.parametrize("written", ["Számla", "SZÁMLA", "számla", "szamla", "SZAMLA"])
@pytest.mark.parametrize("operator", ["contains", "starts_with", "glob", "regex", "equals"])
def test_accent_insensitive_hungarian(written, operator):
    value = {
        "contains": "szamla",
        "starts_with": "szamla",
        "glob": "szamla*",
        "regex": "^szamla\\b",
        "equals": "szamla kerdes",
    }[operator]
    msg = message(subject=f"{written} kérdés")
    assert matches(f"{{ field = 'subject', {operator} = '{value}', ignore_accents = true }}", msg)
    # ...and the accented form of the pattern matches an unaccented subject too.
    plain = message(subject="szamla kerdes")
    accented = value.replace("szamla", "számla").replace("kerdes", "kérdés")
    assert matches(
        f"{{ field = 'subject', {operator} = '{accented}', ignore_accents = true }}", plain
    )


def test_accents_matter_unless_ignored():
    msg = message(subject="Számla kérdés")
    assert not matches("{ field = 'subject', contains = 'szamla' }", msg)
    assert matches("{ field = 'subject', contains = 'szamla', ignore_accents = true }", msg)


def test_double_acute_letters_fold_to_their_base():
    msg = message(body_text="Fizetési határidő: június 15. A tűnő összeg")
    assert matches("{ field = 'body', contains = 'hatarido', ignore_accents = true }", msg)
    assert matches("{ field = 'body', contains = 'TUNO OSSZEG', ignore_accents = true }", msg)


def test_file_defaults_apply_to_every_condition_unless_overridden():
    text = (
        "[defaults]\nignore_accents = true\nignore_case = false\n"
        "[[rule]]\nname = 'a'\nwhen = { field = 'subject', contains = 'Szamla' }\nthen.tags = 'a'\n"
        "[[rule]]\nname = 'b'\nwhen = { field = 'subject', contains = 'szamla' }\nthen.tags = 'b'\n"
        "[[rule]]\nname = 'c'\n"
        "when = { field = 'subject', contains = 'szamla', ignore_case = true }\nthen.tags = 'c'\n"
    )
    decision = parse_rules(text).evaluate(message(subject="Számla"))
    assert decision.tags == ("a", "c")


def test_case_insensitive_regex_uses_unicode_case_folding():
    msg = message(subject="ÁRAJÁNLAT kérése")
    assert matches("{ field = 'subject', regex = 'árajánlat' }", msg)


def test_glob_character_class_and_literal_brackets():
    msg = message(subject="[#4711] Re: számla")
    assert matches("{ field = 'subject', glob = '[[]#4711]*' }", msg)
    assert matches("{ field = 'subject', glob = '*[0-9]] re:*' }", msg)
    assert not matches("{ field = 'subject', glob = '#4711*' }", msg)


# -- fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{ field = 'from', equals = 'odon.kovacs@mail.bigclient.example' }", True),
        ("{ field = 'from', ends_with = '@mail.bigclient.example' }", True),
        ("{ field = 'from.domain', equals = 'mail.bigclient.example' }", True),
        ("{ field = 'from.domain', ends_with = 'bigclient.example' }", True),
        ("{ field = 'from.domain', equals = 'bigclient.example' }", False),
        ("{ field = 'from.name', contains = 'ödön' }", True),
        ("{ field = 'reply_to', starts_with = 'replies@' }", True),
        ("{ field = 'to', equals = 'office@example.com' }", True),
        ("{ field = 'to', equals = 'anna@example.com' }", False),
        ("{ field = 'cc', equals = 'anna@example.com' }", True),
        ("{ field = 'cc.domain', equals = 'partner.example' }", True),
        ("{ field = 'to.domain', equals = 'partner.example' }", False),
        ("{ field = 'recipients', equals = ['anna@example.com'] }", True),
        ("{ field = 'recipients.domain', equals = 'example.com' }", True),
        ("{ field = 'body', contains = 'hibásnak' }", True),
        ("{ field = 'body', contains = 'díjbekérő' }", False),
        ("{ field = 'body.quoted', contains = 'díjbekérő' }", True),
        ("{ field = 'body.quoted', contains = 'hibásnak' }", False),
        ("{ field = 'body.all', contains = 'díjbekérő' }", True),
        ("{ field = 'body.all', contains = 'pénzügy' }", True),
        ("{ field = 'header.X-Priority', starts_with = '1' }", True),
        ("{ field = 'header.x-priority', contains = 'highest' }", True),
        ("{ field = 'header.Received', equals = 'from b' }", True),
        ("{ field = 'header.X-Empty', exists = true }", True),
        ("{ field = 'header.List-Unsubscribe', exists = true }", False),
        ("{ field = 'attachment.name', glob = '*.pdf' }", True),
        ("{ field = 'attachment.name', ends_with = '.ics' }", True),
        ("{ field = 'attachment.type', equals = 'text/calendar' }", True),
        ("{ field = 'attachment.type', equals = 'image/png' }", False),
        ("{ field = 'language', equals = 'hu' }", True),
        ("{ field = 'language', equals = 'en' }", False),
        ("{ field = 'kind', equals = 'normal' }", True),
        ("{ field = 'kind', equals = ['bounce', 'auto_reply'] }", False),
    ],
)
def test_fields(condition, expected):
    assert matches(condition) is expected


@pytest.mark.parametrize("kind", list(MessageKind))
def test_kind_field_for_every_kind(kind):
    msg = message(kind=kind)
    assert matches(f"{{ field = 'kind', equals = '{kind.value}' }}", msg)
    others = [k.value for k in MessageKind if k is not kind]
    assert not matches(f"{{ field = 'kind', equals = {others!r} }}", msg)


def test_missing_sender_and_empty_subject_match_nothing_but_not_exists():
    msg = message(from_=None, subject="")
    assert not matches("{ field = 'from', glob = '*' }", msg)
    assert not matches("{ field = 'from.domain', ends_with = 'example' }", msg)
    assert matches("{ field = 'from', exists = false }", msg)
    assert matches("{ field = 'subject', exists = false }", msg)


# -- in_list ----------------------------------------------------------------------------------

LISTS = {
    "vip_clients": ["bigclient.example", "ceo@partner.example"],
    "blocked_senders": ["@spam.example", "*.junk.example"],
    "languages": ["HU", "de"],
}


@pytest.mark.parametrize(
    ("sender", "list_name", "expected"),
    [
        ("anyone@bigclient.example", "vip_clients", True),
        ("Anyone@MAIL.BigClient.example", "vip_clients", True),  # a subdomain
        ("anyone@notbigclient.example", "vip_clients", False),  # not a subdomain
        ("ceo@partner.example", "vip_clients", True),
        ("CEO@Partner.Example", "vip_clients", True),
        ("cfo@partner.example", "vip_clients", False),
        ("x@spam.example", "blocked_senders", True),
        ("x@a.junk.example", "blocked_senders", True),
        ("x@junk.example", "blocked_senders", True),
        ("x@example.com", "blocked_senders", False),
    ],
)
def test_in_list_on_addresses_matches_addresses_domains_and_subdomains(sender, list_name, expected):
    msg = message(from_=Address("", sender))
    condition = f"{{ field = 'from', in_list = '{list_name}' }}"
    assert matches(condition, msg, lists=LISTS) is expected


def test_in_list_on_domain_fields_ignores_address_entries():
    msg = message(from_=Address("", "ceo@partner.example"))
    assert not matches("{ field = 'from.domain', in_list = 'vip_clients' }", msg, lists=LISTS)
    msg = message(from_=Address("", "x@sub.bigclient.example"))
    assert matches("{ field = 'from.domain', in_list = 'vip_clients' }", msg, lists=LISTS)


def test_in_list_on_text_fields_compares_whole_values():
    assert matches("{ field = 'language', in_list = 'languages' }", lists=LISTS)
    assert not matches(
        "{ field = 'language', in_list = 'languages' }", message(language="en"), lists=LISTS
    )


def test_in_list_on_recipients_matches_any_recipient():
    msg = message(cc=(Address("", "boss@partner.example"), Address("", "ceo@partner.example")))
    assert matches("{ field = 'recipients', in_list = 'vip_clients' }", msg, lists=LISTS)


def test_in_list_reason_names_the_domain_and_the_list():
    msg = message(from_=Address("", "anna@bigclient.example"))
    got = reasons("{ field = 'from', in_list = 'vip_clients' }", msg, lists=LISTS)
    assert got == ("from domain bigclient.example is in vip_clients",)
    msg = message(from_=Address("", "ceo@partner.example"))
    got = reasons("{ field = 'from', in_list = 'vip_clients' }", msg, lists=LISTS)
    assert got == ("from address ceo@partner.example is in vip_clients",)


# -- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{ field = 'size', greater_than = 249999 }", True),
        ("{ field = 'size', greater_than = 250000 }", False),
        ("{ field = 'size', less_than = 250001 }", True),
        ("{ field = 'size', less_than = 250000 }", False),
        ("{ field = 'size', equals = 250000 }", True),
        ("{ field = 'size', equals = [1, 2] }", False),
        ("{ field = 'size', between = [250000, 250000] }", True),
        ("{ field = 'size', between = [1, 249999] }", False),
        ("{ field = 'size', greater_than = '200kB' }", True),
        ("{ field = 'size', greater_than = '0.25MB' }", False),
        ("{ field = 'size', less_than = '245KiB' }", True),
        ("{ field = 'size', less_than = '244KiB' }", False),
        ("{ field = 'attachment.count', equals = 2 }", True),
        ("{ field = 'attachment.count', greater_than = 2 }", False),
        ("{ field = 'attachment.size', greater_than = '100kB' }", True),
        ("{ field = 'attachment.size', less_than = 1000 }", True),
        ("{ field = 'attachment.size', between = [1000, 100000] }", False),
    ],
)
def test_number_operators(condition, expected):
    assert matches(condition) is expected


def test_no_attachments_count_is_zero():
    assert matches("{ field = 'attachment.count', equals = 0 }", message(attachments=()))
    assert not matches("{ field = 'attachment.size', greater_than = -0 }", message(attachments=()))


# -- received day and time in the business time zone -------------------------------------------


def at(utc: datetime) -> InboundMessage:
    return message(received_at=utc)


BUDAPEST = {"timezone": "Europe/Budapest"}


@pytest.mark.parametrize(
    ("utc", "local_hhmm"),
    [
        (datetime(2026, 1, 15, 16, 30, tzinfo=UTC), "17:30"),  # winter: CET, UTC+1
        (datetime(2026, 7, 15, 16, 30, tzinfo=UTC), "18:30"),  # summer: CEST, UTC+2
        (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "01:59"),  # just before the spring change
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "03:00"),  # 02:00 local never happens
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "02:30"),  # first 02:30 (CEST)
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "02:30"),  # second 02:30 (CET)
    ],
)
def test_received_time_is_local_including_daylight_saving(utc, local_hhmm):
    got = reasons("{ field = 'received.time', after = '00:00' }", at(utc), **BUDAPEST)
    assert got[0].startswith(f"received at {local_hhmm} (Europe/Budapest)")


def test_same_utc_time_is_after_hours_in_summer_only():
    rule = "{ field = 'received.time', after = '18:00' }"
    assert not matches(rule, at(datetime(2026, 1, 15, 16, 30, tzinfo=UTC)), **BUDAPEST)
    assert matches(rule, at(datetime(2026, 7, 15, 16, 30, tzinfo=UTC)), **BUDAPEST)


@pytest.mark.parametrize(
    ("local", "expected"),
    [("07:59", True), ("08:00", False), ("12:00", False), ("17:59", False), ("18:00", True)],
)
def test_between_wraps_past_midnight(local, expected):
    hour, minute = (int(x) for x in local.split(":"))
    utc = datetime(2026, 1, 14, hour - 1, minute, tzinfo=UTC)  # CET = UTC+1
    rule = "{ field = 'received.time', between = ['18:00', '08:00'] }"
    assert matches(rule, at(utc), **BUDAPEST) is expected


def test_before_and_after_bounds():
    utc = datetime(2026, 1, 14, 7, 0, tzinfo=UTC)  # 08:00 Budapest
    assert matches("{ field = 'received.time', after = '08:00' }", at(utc), **BUDAPEST)
    assert not matches("{ field = 'received.time', before = '08:00' }", at(utc), **BUDAPEST)
    assert matches("{ field = 'received.time', before = '08:01' }", at(utc), **BUDAPEST)
    assert matches("{ field = 'received.time', between = ['08:00', '08:01'] }", at(utc), **BUDAPEST)


def test_weekday_is_local_across_midnight():
    # Friday 23:30 UTC in summer is Saturday 01:30 in Budapest.
    utc = datetime(2026, 7, 17, 23, 30, tzinfo=UTC)
    assert matches("{ field = 'received.weekday', equals = ['sat', 'sun'] }", at(utc), **BUDAPEST)
    assert not matches("{ field = 'received.weekday', equals = ['sat', 'sun'] }", at(utc))
    assert matches("{ field = 'received.weekday', equals = 'Friday' }", at(utc))
    got = reasons("{ field = 'received.weekday', equals = 'sat' }", at(utc), **BUDAPEST)
    assert got == ("received on Saturday (Europe/Budapest)",)


def test_naive_received_at_is_taken_as_utc():
    naive = datetime(2026, 7, 15, 16, 30)  # noqa: DTZ001 - the point of the test
    got = reasons("{ field = 'received.time', after = '00:00' }", at(naive), **BUDAPEST)
    assert got[0].startswith("received at 18:30")
