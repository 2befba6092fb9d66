"""Quoted history and signature separation, against the published cases of talon and
email_reply_parser (../shared/corpus/fixtures) and against Hungarian, German and
French client formats written here."""

from __future__ import annotations

import pytest

from triage.domain import Address
from triage.mail import parse_message
from triage.mail.quotes import split_reply, split_signature
from triage.mail.sanitize import clean_body

pytestmark = pytest.mark.corpus

TALON = "fixtures/mailgun_talon/tests/fixtures"
REPLY_PARSERS = [
    "fixtures/github_email_reply_parser/test/emails",
    "fixtures/zapier_email-reply-parser/test/emails",
]


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().split("\n")]


def test_talon_standard_replies_leave_only_the_reply(corpus_dir):
    """talon's test: every client's reply reduces to "Hello" (or its *_reply_text file)."""
    folder = corpus_dir / TALON / "standard_replies"
    emls = sorted(folder.glob("*.eml"))
    assert len(emls) >= 12
    for eml in emls:
        parsed = parse_message(eml.read_bytes())
        expected_file = folder / (eml.stem + "_reply_text")
        expected = expected_file.read_text() if expected_file.exists() else "Hello"
        reply = "\n\n".join(part for part in (parsed.body_text, parsed.signature) if part)
        assert _lines(reply) == _lines(expected), eml.name
        assert parsed.body_text == "Hello", eml.name
        assert parsed.quoted_text, eml.name


def _html_reply(path) -> tuple[str, str, str]:
    raw = path.read_bytes()
    parsed = parse_message(b"Content-Type: text/html\r\n\r\n" + raw)
    return parsed.body_text, parsed.signature, parsed.quoted_text


def test_talon_html_replies_leave_only_the_reply(corpus_dir):
    """talon's HTML cases: Gmail, Outlook 2003-2010, Hotmail, Thunderbird, Windows Mail,
    mail.ru and Yandex replies all reduce to "Hi. I am fine. Thanks, Alex"."""
    htmls = sorted((corpus_dir / TALON / "html_replies").glob("*.html"))
    assert len(htmls) >= 9
    for path in htmls:
        body, signature, quoted = _html_reply(path)
        assert f"{body}\n{signature}".split() == ["Hi.", "I", "am", "fine.", "Thanks,", "Alex"], (
            path.name
        )
        assert quoted, path.name


@pytest.mark.parametrize(
    ("name", "body"),
    [("reply-separated-by-hr.html", "Hi\nthere\nBob"), ("OLK_SRC_BODY_SECTION.html", "Reply")],
)
def test_talon_html_separators(corpus_dir, name, body):
    new, _signature, quoted = _html_reply(corpus_dir / TALON / name)
    assert new == body
    assert quoted.startswith("From: ")


def test_talon_signatures_are_found_by_sender_closing_and_delimiter(corpus_dir):
    folder = corpus_dir / TALON / "signature/emails/stripped"
    bodies = sorted(folder.glob("*_body"))
    assert len(bodies) >= 6
    for path in bodies:
        stem = path.name[: -len("_body")]
        sender = (folder / f"{stem}_sender").read_text().strip()
        expected = (folder / f"{stem}_signature").read_text().strip()
        address = Address(name="", addr=sender) if "@" in sender else Address(name=sender, addr="")
        text, signature = split_signature(path.read_text().strip(), address)
        assert signature.strip() == expected, stem
        assert (text + "\n\n" + signature).split() == path.read_text().split(), stem


def test_talon_marked_message_with_interleaved_reply(corpus_dir):
    """Lines marked #reply# are quoted history, #sig# the signature, the rest is new text."""
    raw = (corpus_dir / TALON / "signature/emails/P/102682_R_S").read_text()
    head, _, marked = raw.partition("\n\n")
    body_lines, quoted_lines, sig_lines = [], [], []
    for line in marked.split("\n"):
        if line.startswith("#reply#"):
            quoted_lines.append(line[len("#reply#") :])
        elif line.startswith("#sig#"):
            sig_lines.append(line[len("#sig#") :])
        else:
            body_lines.append(line)
    text = "\n".join(
        line.replace("#reply#", "").replace("#sig#", "") for line in marked.split("\n")
    )
    split = split_reply(clean_body(text), sender=Address("John Doe", "doe@example.com"))
    assert split.body.split() == " ".join(body_lines).split()
    assert split.signature.split() == " ".join(sig_lines).split()
    assert split.quoted.split() == " ".join(quoted_lines).split()
    assert "From:" in head


# (file, expected new text, the signature starts with, the quoted history starts with)
REPLY_PARSER_CASES = [
    ("correct_sig.txt", "this is an email with a correct -- signature.", "--\nrick", ""),
    (
        "email_1_1.txt",
        (
            "Hi folks\n\nWhat is the best way to clear a Riak bucket of all key, values after\n"
            "running a test?\nI am currently using the Java HTTP API."
        ),
        "-Abhishek Kona",
        "",
    ),
    ("email_1_2.txt", "Hi,\n\nYou can list the keys for the bucket", "____", "On Tue, 2011-03-01"),
    (
        "email_1_3.txt",
        "Oh thanks.\n\nHaving the function would be great.",
        "-Abhishek Kona",
        "On 01/03/11",
    ),
    ("email_1_4.txt", "Awesome! I haven't had another problem with it.", "", "On Aug 22, 2011"),
    ("email_1_5.txt", "One: Here's what I've got.", "", ""),
    (
        "email_1_6.txt",
        "I get proper rendering as well.\n\nSent from a magnificent torch of pixels",
        "",
        "On Dec 16",
    ),
    ("email_1_7.txt", ":+1:", "", "On Tue, Sep 25, 2012"),
    (
        "email_1_8.txt",
        "I will reply under this one\n\nand under this.",
        "--\nHey there",
        "On Tue, Apr 29",
    ),
    ("email_2_1.txt", "Outlook with a reply", "", "----"),
    ("email_2_2.txt", "Outlook with a reply directly above line", "", "____"),
    ("email_BlackBerry.txt", "Here is another email", "Sent from my BlackBerry", ""),
    ("email_bullets.txt", "test 2 this should list second", "--\n\n*Joe Smith", "On Fri, Feb 24"),
    ("email_iPhone.txt", "Here is another email", "Sent from my iPhone", ""),
    (
        "email_multi_word_sent_from_my_mobile_device.txt",
        "Here is another email",
        "Sent from my Verizon Wireless BlackBerry",
        "",
    ),
    (
        "email_one_is_not_on.txt",
        (
            "Thank, this is really helpful.\n\nOne outstanding question I had:\n\n"
            "Locally (on development), when I run..."
        ),
        "",
        "On Oct 1, 2012",
    ),
    (
        "email_sent_from_my_not_signature.txt",
        "Here is another email\n\nSent from my desk, is much easier then my mobile phone.",
        "",
        "",
    ),
    (
        "email_sig_delimiter_in_middle_of_line.txt",
        "Hi there!\n\nStuff happened.\n\nAnd here is a fix -- this is not a signature.\n\nkthxbai",
        "",
        "",
    ),
    (
        "greedy_on.txt",
        "On your remote host you can run:\n\n     telnet 127.0.0.1 52698",
        "",
        "On 9 Jan 2014",
    ),
    ("pathological.txt", "I think you're onto something.", "", "On Dec 8, 2013"),
    (
        "email_gmail.txt",
        "This is a test for inbox replying to a github message.",
        "",
        "On Wed, May 18",
    ),
    ("email_headers_no_delimiter.txt", "And another reply!", "", "From: Dan Watson"),
    ("email_partial_quote_header.txt", "On your remote host you can run:", "", "On 9 Jan 2014"),
]


@pytest.mark.parametrize(("name", "body", "signature", "quoted"), REPLY_PARSER_CASES)
def test_email_reply_parser_cases(corpus_dir, name, body, signature, quoted):
    paths = [
        corpus_dir / folder / name
        for folder in REPLY_PARSERS
        if (corpus_dir / folder / name).exists()
    ]
    assert paths
    for path in paths:
        split = split_reply(clean_body(path.read_text()))
        assert split.body.startswith(body), path
        if body.count("\n") >= 1 or not split.quoted:
            assert body in split.body
        assert split.signature.startswith(signature), path
        assert bool(split.signature) == bool(signature), path
        assert split.quoted.startswith(quoted), path
        assert bool(split.quoted) == bool(quoted), path


def test_a_pathologically_long_quote_line_is_handled_fast(corpus_dir):
    import time  # noqa: PLC0415

    path = corpus_dir / REPLY_PARSERS[0] / "email_long_quote.txt"
    start = time.perf_counter()
    split = split_reply(clean_body(path.read_text()))
    assert time.perf_counter() - start < 0.5
    assert split.body.startswith("Hi folks")


HU_GMAIL = """Köszönöm, a javított számlát megkaptam.

2024. máj. 14., K 9:12 időpontban Ügyfélszolgálat <support@example.org> ezt írta:

> Tisztelt Ügyfelünk!
> Csatoltan küldjük a javított számlát.
"""

HU_GMAIL_2 = """Rendben, köszönöm!

Ügyfélszolgálat <support@example.org> ezt írta (időpont: 2024. máj. 14., K, 9:12):
> Tisztelt Ügyfelünk!
"""

HU_THUNDERBIRD = """Még mindig nem működik.

Kovács Ödön

2024. 05. 14. 9:12 keltezéssel, Ügyfélszolgálat írta:
> Kérjük, indítsa újra a nyomtatót.
"""

HU_OUTLOOK = """Kérem, nézzék meg újra.

Üdvözlettel:
Kovács Ödön

Feladó: Ügyfélszolgálat <support@example.org>
Elküldve: 2024. május 14. 9:12
Címzett: Kovács Ödön <odon@example.com>
Tárgy: [#4711] Számla kérdés

Tisztelt Ügyfelünk! A számlát javítottuk.
"""

HU_ORIGINAL = """Itt a kért adat: 12345.

-----Eredeti üzenet-----
Feladó: Ügyfélszolgálat
Küldve: 2024. május 14. 9:12
Tárgy: adat
Kérjük küldje el az adatot.
"""

DE_REPLY = """Danke, passt.

Am 14.05.2024 um 09:12 schrieb Support <support@example.org>:
> Bitte bestätigen Sie.
"""

FR_REPLY = """Merci beaucoup.

Le mar. 14 mai 2024 à 09:12, Support <support@example.org> a écrit :
> Merci de confirmer.
"""

INLINE = """Az alábbiakra válaszolok:

On Tue, May 14, 2024 at 9:12 AM Support <support@example.org> wrote:
> Melyik emeleten van a nyomtató?

A harmadikon.

> Milyen hibaüzenetet ír ki?

Papírelakadás.

--
Kovács Ödön
"""


@pytest.mark.parametrize(
    ("text", "body", "quoted_start", "signature"),
    [
        (HU_GMAIL, "Köszönöm, a javított számlát megkaptam.", "2024. máj. 14.", ""),
        (HU_GMAIL_2, "Rendben, köszönöm!", "Ügyfélszolgálat <support@example.org> ezt írta", ""),
        (
            HU_THUNDERBIRD,
            "Még mindig nem működik.",
            "2024. 05. 14. 9:12 keltezéssel",
            "Kovács Ödön",
        ),
        (
            HU_OUTLOOK,
            "Kérem, nézzék meg újra.",
            "Feladó: Ügyfélszolgálat",
            "Üdvözlettel:\nKovács Ödön",
        ),
        (HU_ORIGINAL, "Itt a kért adat: 12345.", "-----Eredeti üzenet-----", ""),
        (DE_REPLY, "Danke, passt.", "Am 14.05.2024", ""),
        (FR_REPLY, "Merci beaucoup.", "Le mar. 14 mai 2024", ""),
        (
            INLINE,
            "Az alábbiakra válaszolok:\n\nA harmadikon.\n\nPapírelakadás.",
            "On Tue, May 14, 2024",
            "--\nKovács Ödön",
        ),
    ],
)
def test_client_reply_formats(text, body, quoted_start, signature):
    split = split_reply(text, sender=Address("Kovács Ödön", "odon@example.com"))
    assert split.body == body
    assert split.quoted.startswith(quoted_start)
    assert split.signature == signature


def test_a_forward_keeps_the_forwarded_text():
    text = """FYI, lásd lent.

---------- Forwarded message ---------
From: Ügyfél <client@example.com>
Date: Tue, May 14, 2024 at 9:12 AM
Subject: Számla
To: Kolléga <colleague@example.org>

A számla összege hibás.
"""
    split = split_reply(text, subject="Fwd: Számla")
    assert "A számla összege hibás." in split.body
    assert split.quoted == ""
    outlook_forward = (
        "Nézzétek meg.\n\nFrom: Ügyfél\nSent: Tuesday\nTo: Kolléga\nSubject: Számla\n\nHibás."
    )
    assert "Hibás." in split_reply(outlook_forward, subject="FW: Számla").body


def test_prose_that_mentions_writing_is_not_an_attribution():
    text = "Az ügyfél ezt írta:\nA számla hibás.\n\nKérem, nézzék meg."
    assert split_reply(text).body == text


def test_a_signature_never_takes_the_whole_message():
    assert split_signature("Kovács Ödön", Address("Kovács Ödön", "")) == ("Kovács Ödön", "")
    assert split_signature("Thanks,\nNoam", Address("Noam", "")) == ("Thanks,\nNoam", "")
