"""Rule engine throughput: messages routed per second with 200 rules, on one core.

Generates 200 realistic rules (sender lists, subject and body keywords in English
and Hungarian, accent-insensitive matches, RE2 regular expressions, headers,
attachments, kind, size, received time, nested all/any/not) and evaluates them
against real mail from ../shared/corpus (SpamAssassin and 20 Newsgroups, parsed
once with triage.mail.parse_message beforehand, not timed), or synthetic mail
when the corpus is absent.

    .venv/bin/python benchmarks/rules_bench.py [--messages 2000] [--rounds 3] [--rules 200]

Prints messages/s (the issue asks for at least 5,000 with 200 rules).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rules import parse_rules
from triage.domain import Address, Attachment, InboundMessage
from triage.mail import parse_message

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("TRIAGE_SHARED", ROOT.parent / "shared")) / "corpus"

WORDS = [
    "invoice",
    "payment",
    "refund",
    "overdue",
    "reminder",
    "receipt",
    "statement",
    "meeting",
    "appointment",
    "schedule",
    "reschedule",
    "calendar",
    "deadline",
    "contract",
    "tax",
    "vat",
    "payroll",
    "salary",
    "bank",
    "transfer",
    "order",
    "delivery",
    "shipping",
    "complaint",
    "urgent",
    "asap",
    "help",
    "question",
    "számla",
    "díjbekérő",
    "fizetési",
    "felszólítás",
    "időpont",
    "találkozó",
    "egyeztetés",
    "nyugta",
    "bizonylat",
    "kivonat",
    "sürgős",
    "határidő",
    "adó",
    "bérszámfejtés",
    "szerződés",
    "megrendelés",
    "szállítás",
    "panasz",
    "kérdés",
    "linux",
    "windows",
    "server",
    "install",
    "update",
    "price",
    "free",
    "offer",
    "unsubscribe",
    "newsletter",
    "password",
    "account",
    "security",
    "error",
]
DOMAINS = [
    "example.com",
    "bigclient.example",
    "partner.example",
    "bank.example",
    "nav.gov.hu",
    "posta.hu",
    "gmail.com",
    "freemail.hu",
    "citromail.hu",
    "yahoo.com",
    "hotmail.com",
    "spamassassin.taint.org",
    "linux.ie",
    "example.net",
    "lists.sourceforge.net",
]
QUEUES = ["billing", "scheduling", "records", "client-support", "unsorted", "bulk"]
REGEXES = [
    r"\b(inv|invoice)[- ]?\d{3,}",
    r"\border\s*#?\d+",
    r"\b\d{1,2}[./]\d{1,2}[./]\d{2,4}\b",
    r"(?:^|\W)(ügyvéd|bíróság|feljelent)",
    r"\bre:\s*re:",
    r"\b[A-Z]{2,5}-\d{3,}\b",
    r"\$\d+(\.\d\d)?",
    r"\b(?:http|https)://\S+\.(?:exe|zip)\b",
    r"(a+)+$",
    r"\bHU\d{2}[ -]?\d{4}",
]


def q(text: str) -> str:
    return "'" + text.replace("'", "") + "'"


def qs(items: list[str]) -> str:
    return "[" + ", ".join(q(i) for i in items) + "]"


def condition(rng: random.Random, depth: int = 0) -> str:
    """One condition; a quarter are all/any of two or three (an `all` may hold a `not`)."""
    if depth < 2 and rng.random() < 0.25:
        combinator = rng.choice(["all", "any"])
        parts = [condition(rng, depth + 1) for _ in range(rng.randint(2, 3))]
        if combinator == "all" and rng.random() < 0.4:
            parts[-1] = f"{{ not = {condition(rng, depth + 1)} }}"
        return f"{{ {combinator} = [{', '.join(parts)}] }}"
    kind = rng.choices(
        [
            "from",
            "domain",
            "list",
            "subject",
            "body",
            "body_all",
            "regex",
            "header",
            "attachment",
            "kind",
            "size",
            "time",
            "weekday",
            "to",
        ],
        weights=[6, 8, 6, 22, 14, 4, 8, 8, 6, 3, 3, 1, 1, 4],
    )[0]
    accents = ", ignore_accents = true" if rng.random() < 0.3 else ""
    if kind == "from":
        user = rng.choice(["billing", "noreply", "ceo", "anna", "info", "support"])
        return f"{{ field = 'from', equals = {q(user + '@' + rng.choice(DOMAINS))} }}"
    if kind == "domain":
        op = rng.choice(["equals", "ends_with"])
        return f"{{ field = 'from.domain', {op} = {qs(rng.sample(DOMAINS, 3))} }}"
    if kind == "list":
        return (
            f"{{ field = 'from', in_list = {q(rng.choice(['vip_clients', 'blocked_senders']))} }}"
        )
    if kind == "to":
        return f"{{ field = 'recipients', glob = {q('*@' + rng.choice(DOMAINS))} }}"
    if kind in ("subject", "body", "body_all"):
        field = {"subject": "subject", "body": "body", "body_all": "body.all"}[kind]
        op = (
            rng.choice(["contains", "contains", "contains", "starts_with"])
            if kind == "subject"
            else "contains"
        )
        return (
            f"{{ field = '{field}', {op} = {qs(rng.sample(WORDS, rng.randint(1, 5)))}{accents} }}"
        )
    if kind == "regex":
        field = rng.choice(["subject", "subject", "body"])
        return f"{{ field = '{field}', regex = {q(rng.choice(REGEXES))}{accents} }}"
    if kind == "header":
        name, op, value = rng.choice(
            [
                ("X-Mailer", "contains", "outlook"),
                ("X-Priority", "starts_with", "1"),
                ("List-Id", "exists", "true"),
                ("Precedence", "equals", "'bulk'"),
                ("User-Agent", "contains", "mutt"),
                ("X-Spam-Status", "starts_with", "yes"),
            ]
        )
        shown = value if op == "exists" else (value if value.startswith("'") else q(value))
        return f"{{ field = 'header.{name}', {op} = {shown} }}"
    if kind == "attachment":
        if rng.random() < 0.5:
            return f"{{ field = 'attachment.name', glob = {qs(['*.pdf', '*szamla*', '*.xml'])} }}"
        return "{ field = 'attachment.type', equals = ['application/pdf', 'text/calendar'] }"
    if kind == "kind":
        kind_name = rng.choice(["auto_reply", "bounce", "mailing_list"])
        return f"{{ field = 'kind', equals = {q(kind_name)} }}"
    if kind == "size":
        return f"{{ field = 'size', greater_than = {q(rng.choice(['20kB', '100kB', '1MB']))} }}"
    if kind == "time":
        start, end = rng.choice([("18:00", "08:00"), ("12:00", "13:00"), ("22:00", "06:00")])
        return f"{{ field = 'received.time', between = ['{start}', '{end}'] }}"
    return f"{{ field = 'received.weekday', equals = {q(rng.choice(['sat', 'sun', 'mon']))} }}"


def actions(rng: random.Random) -> str:
    parts = []
    if rng.random() < 0.5:
        parts.append(f"queue = {q(rng.choice(QUEUES))}")
    if rng.random() < 0.4:
        parts.append(f"priority = {q(rng.choice(['urgent', 'high', 'normal', 'low']))}")
    if rng.random() < 0.5 or not parts:
        parts.append(f"tags = [{q(rng.choice(WORDS))}]")
    if rng.random() < 0.03:
        parts.append("escalate = 'benchmark escalation'")
    if rng.random() < 0.05:
        parts.append("no_ack = true")
    return "{ " + ", ".join(parts) + " }"


def rule_file(count: int, seed: int = 4, *, accents: str = "mixed") -> str:
    """``count`` rules. ``accents``: "mixed" (some conditions ignore accents), "all"
    (the file's [defaults] ignore accents, as rules/default.toml does) or "none"."""
    rng = random.Random(seed)
    header = {"mixed": "", "all": "[defaults]\nignore_accents = true\n\n", "none": ""}[accents]
    blocks = [
        f"[[rule]]\nname = 'rule-{i:03d}'\nwhen = {condition(rng)}\nthen = {actions(rng)}\n"
        for i in range(count)
    ]
    text = header + "\n".join(blocks)
    if accents == "none":
        text = text.replace(", ignore_accents = true", "")
    return text


def corpus_messages(limit: int) -> list[InboundMessage]:
    files: list[Path] = []
    for sub in (
        "spamassassin/easy_ham",
        "spamassassin/hard_ham",
        "spamassassin/spam",
        "spamassassin/spam_2",
        "20newsgroups",
    ):
        folder = CORPUS / sub
        if folder.is_dir():
            files.extend(sorted(p for p in folder.rglob("*") if p.is_file()))
    random.Random(7).shuffle(files)
    received = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    messages = []
    for i, path in enumerate(files[:limit]):
        raw = path.read_bytes()
        if raw.startswith(b"From "):
            raw = raw.split(b"\n", 1)[1] if b"\n" in raw else raw
        messages.append(parse_message(raw, received_at=received + timedelta(minutes=37 * i)))
    return messages


FILLER = [
    "a",
    "az",
    "és",
    "hogy",
    "nem",
    "is",
    "meg",
    "de",
    "csak",
    "már",
    "még",
    "ez",
    "egy",
    "van",
    "volt",
    "lesz",
    "kell",
    "kérem",
    "köszönöm",
    "tisztelt",
    "ügyfélszolgálat",
    "üdvözlettel",
    "levél",
    "múlt",
    "héten",
    "holnap",
    "után",
    "reggel",
    "délután",
    "cég",
    "iroda",
    "munkatárs",
    "ügyintéző",
    "rendben",
    "értem",
    "szeretném",
    "tudni",
    "vagy",
    "esetleg",
    "mikor",
    "the",
    "and",
    "to",
    "of",
    "a",
    "in",
    "that",
    "is",
    "for",
    "on",
    "with",
    "as",
    "be",
    "this",
    "we",
    "you",
    "it",
    "at",
    "by",
    "from",
    "have",
    "please",
    "thanks",
    "regards",
    "dear",
    "team",
    "office",
    "week",
    "morning",
    "afternoon",
    "tomorrow",
    "today",
]


def sender_domain(rng: random.Random, i: int) -> str:
    """Mostly clients' own domains; one message in ten from a well-known one."""
    return rng.choice(DOMAINS) if rng.random() < 0.1 else f"client{i % 400}.example"


def synthetic_messages(count: int) -> list[InboundMessage]:
    """Hungarian and English prose with a few of the rules' keywords in each message."""
    rng = random.Random(11)
    start = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    out = []
    for i in range(count):
        words = rng.choices(FILLER, k=rng.randint(50, 600))
        for _ in range(rng.randint(0, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS))
        subject = [*rng.choices(FILLER, k=4), rng.choice(WORDS)]
        rng.shuffle(subject)
        out.append(
            InboundMessage(
                message_id=f"<m{i}@bench>",
                subject=" ".join(subject).capitalize(),
                received_at=start + timedelta(minutes=37 * i),
                from_=Address("Client", f"user{i}@{sender_domain(rng, i)}"),
                to=(Address("", "office@example.com"),),
                body_text=" ".join(words),
                quoted_text="> " + " ".join(rng.choices(FILLER, k=rng.randint(0, 300))),
                attachments=(Attachment(f"scan-{i}.pdf", "application/pdf", 1000, "0" * 64),)
                if i % 12 == 0
                else (),
                headers=(
                    ("X-Mailer", rng.choice(["Outlook 16.0", "Thunderbird", "Gmail", "iPhone"])),
                    ("Subject", "x"),
                ),
                size=len(words) * 7,
                language="hu",
            )
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument(
        "--accents",
        choices=["mixed", "all", "none"],
        default="mixed",
        help="which conditions ignore accents: some (default), all (as rules/default.toml), none",
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="use synthetic mail (Hungarian and English words) even when the corpus is present",
    )
    args = parser.parse_args()

    ruleset = parse_rules(
        rule_file(args.rules, accents=args.accents),
        source="bench.toml",
        queues=QUEUES,
        lists={
            "vip_clients": ["bigclient.example", "ceo@partner.example"],
            "blocked_senders": ["spam.example"],
        },
        timezone="Europe/Budapest",
    )
    if CORPUS.is_dir() and not args.synthetic:
        messages = corpus_messages(args.messages)
        source = f"corpus ({CORPUS})"
    else:
        messages = []
    if not messages:
        messages = synthetic_messages(args.messages)
        source = "synthetic"
    body_chars = sum(len(m.body_text) + len(m.quoted_text) for m in messages) / len(messages)

    for message in messages[:200]:  # warm up
        ruleset.evaluate(message)
    best_wall = best_cpu = 0.0
    hits = 0
    for _ in range(args.rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        hits = 0
        for message in messages:
            hits += len(ruleset.evaluate(message).hits)
        best_wall = max(best_wall, len(messages) / (time.perf_counter() - wall))
        best_cpu = max(best_cpu, len(messages) / (time.process_time() - cpu))
    print(
        f"rules: {len(ruleset)} (accents ignored: {args.accents});"
        f" messages: {len(messages)} from {source};"
        f" mean body {body_chars:,.0f} chars; mean rule hits per message {hits / len(messages):.1f}"
    )
    print(
        f"throughput: {best_wall:,.0f} messages/s wall clock,"
        f" {best_cpu:,.0f} messages/s of CPU time (best of {args.rounds} rounds, one process)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
