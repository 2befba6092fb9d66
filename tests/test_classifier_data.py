"""A small synthetic Hungarian and English mail set for the classifier tests.

Other test_classifier_* modules import :func:`dataset` and :func:`write_csv`
from here; the tests below check the set is what they rely on.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from pathlib import Path

from classifiers.features import Example

QUEUES = ("billing", "scheduling", "records", "client-support")

SUBJECTS = {
    ("billing", "en"): [
        "Invoice {n} overdue",
        "Payment for invoice {n}",
        "Refund request",
        "Wrong amount on my bill",
        "Question about invoice {n}",
    ],
    ("billing", "hu"): [
        "Lejárt számla: {n}",
        "Fizetési emlékeztető",
        "Hibás összeg a számlán",
        "Kérdés a {n} számú számláról",
        "Visszatérítés kérése",
    ],
    ("scheduling", "en"): [
        "Reschedule our meeting",
        "Appointment on {day}",
        "Can we move the call?",
        "Meeting next week",
        "Calendar invitation for {day}",
    ],
    ("scheduling", "hu"): [
        "Időpont módosítása",
        "Megbeszélés {day_hu}",
        "Áttehetjük a találkozót?",
        "Időpontfoglalás jövő hétre",
        "Meghívó a {day_hu} megbeszélésre",
    ],
    ("records", "en"): [
        "Receipts for {month}",
        "Bank statement attached",
        "Documents for the tax return",
        "Expense receipts",
        "Payroll records for {month}",
    ],
    ("records", "hu"): [
        "Bizonylatok: {month_hu}",
        "Bankszámlakivonat csatolva",
        "Adóbevalláshoz szükséges iratok",
        "Költségbizonylatok",
        "Könyvelési anyagok {month_hu}",
    ],
    ("client-support", "en"): [
        "Question about your services",
        "Password reset",
        "How do I log in?",
        "Portal not working",
        "New contact person",
    ],
    ("client-support", "hu"): [
        "Kérdés a szolgáltatásaikról",
        "Jelszó visszaállítása",
        "Nem tudok belépni",
        "Nem működik a portál",
        "Új kapcsolattartó",
    ],
}

BODIES = {
    ("billing", "en"): [
        "Please send the invoice again, the amount is wrong.",
        "I paid the invoice yesterday by bank transfer.",
        "When will the refund arrive on my account?",
        "The invoice shows a late fee that I do not understand.",
        "Could you issue a corrected invoice with our VAT number?",
    ],
    ("billing", "hu"): [
        "Kérem, küldjék el újra a számlát, az összeg hibás.",
        "Tegnap átutaltam a számla összegét.",
        "Mikor érkezik meg a visszatérítés a számlámra?",
        "A számlán késedelmi díj szerepel, amit nem értek.",
        "Kérem, állítsanak ki helyesbítő számlát az adószámunkkal.",
    ],
    ("scheduling", "en"): [
        "Could we move the meeting to {day} afternoon?",
        "Please book an appointment for next week.",
        "I cannot attend the call, please reschedule it.",
        "Is there a free slot in your calendar on {day} morning?",
        "Let us meet at your office at ten o'clock.",
    ],
    ("scheduling", "hu"): [
        "Át tudnánk tenni a megbeszélést {day_hu} délutánra?",
        "Kérek egy időpontot a jövő hétre.",
        "Nem tudok részt venni a találkozón, kérem tegyük át.",
        "Van szabad időpontjuk {day_hu} délelőtt?",
        "Találkozzunk az irodában tíz órakor.",
    ],
    ("records", "en"): [
        "Attached are the receipts and the bank statement for the bookkeeping.",
        "Here are the documents for the annual tax return.",
        "Please file these expense receipts for {month}.",
        "The payroll records and the cash book are attached.",
        "I scanned the receipts for the accountant.",
    ],
    ("records", "hu"): [
        "Mellékelem a könyveléshez a bizonylatokat és a bankszámlakivonatot.",
        "Küldöm az éves adóbevalláshoz szükséges dokumentumokat.",
        "Kérem, iktassák a {month_hu} költségbizonylatokat.",
        "Csatolom a bérjegyzékeket és a pénztárkönyvet.",
        "Beszkenneltem a bizonylatokat a könyvelőnek.",
    ],
    ("client-support", "en"): [
        "I forgot my password and cannot log in to the portal.",
        "Do you also offer consulting for new companies?",
        "The portal shows an error page since this morning.",
        "Please update our contact person to the new manager.",
        "How can I download my documents from the website?",
    ],
    ("client-support", "hu"): [
        "Elfelejtettem a jelszavamat, nem tudok belépni a portálra.",
        "Vállalnak tanácsadást új cégeknek is?",
        "Reggel óta hibaoldalt mutat a portál.",
        "Kérem, módosítsák a kapcsolattartót az új ügyvezetőre.",
        "Hogyan tölthetem le a dokumentumaimat a honlapról?",
    ],
}

GREETINGS = {
    "en": ["Hello,", "Dear Office,", "Hi team,", "Good morning,"],
    "hu": ["Kedves Iroda!", "Tisztelt Hölgyem/Uram!", "Szia!", "Jó napot!"],
}
CLOSINGS = {
    "en": ["Thanks, Anna", "Best regards, John", "Kind regards, Peter", "Cheers, Kate"],
    "hu": ["Üdvözlettel: Béla", "Köszönöm, Éva", "Tisztelettel: Gábor", "Üdv, Zsófi"],
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
DAYS_HU = ["hétfőn", "kedden", "szerdán", "csütörtökön", "pénteken"]
MONTHS = ["January", "February", "March", "April", "May"]
MONTHS_HU = ["január", "február", "március", "április", "május"]
DOMAINS = ["example.hu", "ceg.example", "mail.example.com", "client.example.org"]


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        n=rng.randint(1000, 9999),
        day=rng.choice(DAYS),
        day_hu=rng.choice(DAYS_HU),
        month=rng.choice(MONTHS),
        month_hu=rng.choice(MONTHS_HU),
    )


def dataset(per_queue_and_language: int = 20, *, seed: int = 1) -> tuple[list[Example], list[str]]:
    """Examples and queue labels: ``per_queue_and_language`` per queue in each of en and hu."""
    rng = random.Random(seed)
    examples: list[Example] = []
    labels: list[str] = []
    seen: set[tuple[str, str]] = set()
    for _ in range(per_queue_and_language):
        for queue in QUEUES:
            for lang in ("en", "hu"):
                while True:  # no two examples alike: loaders drop duplicates
                    subject = _fill(rng, rng.choice(SUBJECTS[queue, lang]))
                    sentences = rng.sample(BODIES[queue, lang], k=2)
                    body = "\n\n".join(
                        [
                            rng.choice(GREETINGS[lang]),
                            " ".join(_fill(rng, s) for s in sentences),
                            rng.choice(CLOSINGS[lang]),
                        ]
                    )
                    if (subject, body) not in seen:
                        seen.add((subject, body))
                        break
                sender = f"{rng.choice(['anna', 'bela', 'info', 'john'])}@{rng.choice(DOMAINS)}"
                examples.append(Example(subject=subject, body=body, sender=sender))
                labels.append(queue)
    return examples, labels


def write_csv(
    path: Path, examples: list[Example], labels: list[str], *, label_column: str = "queue"
) -> Path:
    """Write a labeled CSV with the columns subject, body, sender and ``label_column``."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["subject", "body", "sender", label_column])
        for ex, label in zip(examples, labels, strict=True):
            writer.writerow([ex.subject, ex.body, ex.sender, label])
    return path


def test_the_synthetic_set_is_balanced_bilingual_and_distinct() -> None:
    examples, labels = dataset(20)
    assert Counter(labels) == dict.fromkeys(QUEUES, 40)
    assert any("számla" in e.body for e in examples)
    assert any("invoice" in e.body for e in examples)
    assert len({(e.subject, e.body) for e in examples}) == len(examples)
