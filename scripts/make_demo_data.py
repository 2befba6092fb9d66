#!/usr/bin/env python3
"""Write the demo's sample data (ships inside the package, written by us).

Outputs, deterministic for a given seed:
    triage/demo/data/training.csv   labeled short client emails (subject, body, sender, queue,
                                    priority, language) in English and Hungarian
    triage/demo/data/inbox.mbox     a sample shared inbox: client mail for every queue in both
                                    languages, auto-replies, a bounce (RFC 3464), a mailing-list
                                    post (RFC 2369), a reply to an earlier mail, and Hungarian
                                    mail in iso-8859-2 and windows-1250

Run: python scripts/make_demo_data.py
"""

from __future__ import annotations

import csv
import itertools
import mailbox
import random
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "triage" / "demo" / "data"

FIRST_EN = [
    "Emma",
    "Oliver",
    "Sophie",
    "James",
    "Grace",
    "Henry",
    "Lucy",
    "Thomas",
    "Chloe",
    "Daniel",
]
LAST_EN = [
    "Walker",
    "Bennett",
    "Hughes",
    "Price",
    "Foster",
    "Reid",
    "Marsh",
    "Turner",
    "Hale",
    "Cole",
]
FIRST_HU = [
    "Ödön",
    "Zsófia",
    "Gergő",
    "Enikő",
    "Bálint",
    "Réka",
    "Levente",
    "Csilla",
    "Áron",
    "Tünde",
]
LAST_HU = [
    "Kovács",
    "Szabó",
    "Tóth",
    "Nagy",
    "Horváth",
    "Kiss",
    "Molnár",
    "Varga",
    "Fekete",
    "Balogh",
]
DOMAINS = [
    "bakery-example.com",
    "greenleaf.example",
    "nordwind.example",
    "cafe-example.hu",
    "kertesz.example",
    "studio-example.hu",
    "medlab.example",
    "autoszerviz.example",
]
MONTHS_EN = ["January", "February", "March", "April", "May", "June", "September", "October"]
MONTHS_HU = ["január", "február", "március", "április", "május", "június", "szeptember", "október"]
DAYS_EN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
DAYS_HU = ["hétfőn", "kedden", "szerdán", "csütörtökön", "pénteken"]

# queue -> language -> (subjects, bodies); {n} number, {m} month, {d} day, {a} amount, {t} time
TEXTS: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "billing": {
        "en": (
            [
                "Invoice {n} looks wrong",
                "Question about invoice {n}",
                "Payment reminder received",
                "Refund for order {n}",
                "Overcharged on the {m} invoice",
                "Can I pay by bank transfer?",
                "Duplicate charge on my card",
                "Invoice {n} not received",
                "VAT missing on invoice {n}",
                "Change billing address",
            ],
            [
                "Hello, the amount on invoice {n} is {a} EUR but we agreed on a lower fee. Could you check and send a corrected invoice?",
                "Hi, I received a payment reminder for invoice {n}, but I paid it on {m} 3rd by bank transfer. Please confirm you got the payment.",
                "Good morning, we were charged twice for the {m} service. Please refund the duplicate payment of {a} EUR.",
                "Could you send me the invoice for {m} again? I cannot find it and our accountant needs it for the payment run.",
                "Hello, the VAT number of our company is missing from invoice {n}. Please issue a corrected invoice so we can pay it.",
                "Hi, please update our billing address on future invoices; the old office address is still on invoice {n}.",
                "Dear team, when is invoice {n} due? I would like to pay the {a} EUR before the end of {m}.",
                "Hello, is it possible to pay the outstanding balance of {a} EUR in two instalments?",
            ],
        ),
        "hu": (
            [
                "Számla kérdés - {n}",
                "Hibás összeg a {n}. számlán",
                "Fizetési felszólítás",
                "Visszatérítés kérése",
                "Kétszer terhelték a kártyámat",
                "Nem kaptam meg a számlát",
                "Számla módosítása",
                "Átutalással fizethetek?",
                "Hiányzik az adószám a számláról",
                "Díjbekérő kérdés",
            ],
            [
                "Tisztelt Ügyfélszolgálat! A {n}. számú számlán szereplő összeg ({a} Ft) hibásnak tűnik, kérem, ellenőrizzék és küldjenek helyesbítő számlát.",
                "Jó napot! Fizetési felszólítást kaptam a {n}. számláról, de {m} 3-án átutalással kifizettem. Kérem, erősítsék meg a befizetést.",
                "Üdvözlöm! A {m}i szolgáltatásért kétszer terhelték a kártyánkat, kérem a {a} Ft visszatérítését.",
                "Kérem, küldjék el újra a {m}i számlát, mert nem találom, és a könyvelőnknek szüksége van rá.",
                "Tisztelt Hölgyem/Uram! A {n}. számláról hiányzik a cégünk adószáma, kérem, állítsanak ki javított számlát.",
                "Jó napot kívánok! Mikor jár le a {n}. számla fizetési határideje? A {a} Ft-ot még {m} végéig rendezném.",
                "Szeretném kérni, hogy a jövőbeni számlákon az új számlázási címünk szerepeljen.",
                "Lehetséges a fennálló {a} Ft tartozást két részletben kifizetni?",
            ],
        ),
    },
    "scheduling": {
        "en": (
            [
                "Reschedule our meeting",
                "Appointment next {d}",
                "Can we meet on {d}?",
                "Cancel my appointment",
                "Meeting time change",
                "Booking a call",
                "Availability next week",
                "Move the {d} meeting",
                "Calendar invite missing",
                "Request for a consultation slot",
            ],
            [
                "Hi, something came up and I can't make our meeting on {d} at {t}. Could we move it to later in the week?",
                "Hello, I would like to book an appointment for next {d}, ideally in the morning around {t}.",
                "Dear team, please cancel my appointment on {d}; I will get in touch to book a new time.",
                "Hi, is there a free slot on {d} afternoon for a 30 minute call about our project?",
                "Good morning, could you send the calendar invite for our meeting on {d} at {t}? I don't see it yet.",
                "Hello, can we push Thursday's meeting one hour later, to {t}? Our director wants to join.",
                "Hi, what times are you available next week for a consultation? {d} or Friday would suit me best.",
                "Please confirm the appointment on {d} at {t}; I'd like to put it in my calendar.",
            ],
        ),
        "hu": (
            [
                "Időpont módosítása",
                "Megbeszélés áthelyezése",
                "Időpontfoglalás {d}",
                "Lemondom az időpontot",
                "Találkozó időpontja",
                "Mikor érnek rá jövő héten?",
                "Konzultációs időpont kérése",
                "Naptár meghívó",
                "Egyeztetés a jövő heti találkozóról",
                "Új időpontot szeretnék",
            ],
            [
                "Jó napot! Sajnos közbejött valami, nem tudok {d} {t}-kor jönni a megbeszélésre. Át tudnánk tenni a hét második felére?",
                "Üdvözlöm! Szeretnék időpontot foglalni jövő hétre, {d}, lehetőleg délelőtt {t} körül.",
                "Tisztelt Ügyfélszolgálat! Kérem, töröljék a {d} időpontomat, később jelentkezem újra.",
                "Van szabad időpont {d} délután egy félórás egyeztetésre a projektünkről?",
                "Jó reggelt! Elküldenék a naptár meghívót a {d} {t} órás találkozónkról? Még nem kaptam meg.",
                "Át lehetne tenni a csütörtöki megbeszélést egy órával későbbre, {t}-ra? Az igazgatónk is csatlakozna.",
                "Jövő héten mikor érnek rá egy konzultációra? Nekem {d} vagy pénteken lenne a legjobb.",
                "Kérem, erősítsék meg a {d} {t} órás időpontot, hogy beírhassam a naptáramba.",
            ],
        ),
    },
    "records": {
        "en": (
            [
                "Receipts for {m}",
                "Bank statements for the tax return",
                "Documents for the accountant",
                "Missing receipt",
                "Annual records request",
                "Expense report {m}",
                "Copy of last year's tax return",
                "Scanned invoices attached",
                "Payroll records",
                "Records for the audit",
            ],
            [
                "Hello, attached are the receipts for {m}. Please file them with our bookkeeping records.",
                "Hi, could you send me copies of our bank statements from January to {m}? The tax adviser needs them for the return.",
                "Dear team, I am missing the receipt for the purchase of {a} EUR in {m}. Do you have a scan of it in our records?",
                "Hello, please prepare the annual records folder for the accountant: receipts, statements and contracts.",
                "Hi, here is my expense report for {m} with the scanned receipts. Please add it to the records.",
                "Could you find a copy of last year's tax return in the archive and email it to me?",
                "Hello, our auditor asked for the payroll records of {m}. Can you collect them by Friday?",
                "Please keep these scanned invoices with the {m} records for tax season.",
            ],
        ),
        "hu": (
            [
                "{m}i bizonylatok",
                "Bankszámlakivonatok az adóbevalláshoz",
                "Dokumentumok a könyvelőnek",
                "Hiányzó nyugta",
                "Éves iratok",
                "Költségelszámolás - {m}",
                "Tavalyi bevallás másolata",
                "Szkennelt számlák",
                "Bérszámfejtési iratok",
                "Iratok a könyvvizsgálathoz",
            ],
            [
                "Jó napot! Mellékelten küldöm a {m}i bizonylatokat, kérem, iktassák a könyvelési iratok közé.",
                "Üdvözlöm! Elküldenék a januártól {m}ig tartó bankszámlakivonatok másolatát? Az adótanácsadónak kell a bevalláshoz.",
                "Hiányzik a {m}i, {a} Ft értékű vásárlás nyugtája. Megvan a szkennelt példány az irataink között?",
                "Kérem, készítsék elő az éves iratokat a könyvelőnek: nyugták, kivonatok és szerződések.",
                "Mellékelem a {m}i költségelszámolásomat a szkennelt nyugtákkal, kérem, tegyék az iratokhoz.",
                "Megkeresnék az archívumban a tavalyi adóbevallás másolatát és elküldenék nekem e-mailben?",
                "A könyvvizsgálónk kérte a {m}i bérszámfejtési iratokat. Péntekig össze tudják gyűjteni?",
                "Kérem, ezeket a szkennelt számlákat tegyék a {m}i iratokhoz az adóbevalláshoz.",
            ],
        ),
    },
    "client-support": {
        "en": (
            [
                "Question about your services",
                "Login to the client portal",
                "How do I share a document?",
                "New employee access",
                "Password reset",
                "Contract question",
                "Update our contact person",
                "Feedback on your work",
                "Quick question",
                "Help with the form",
            ],
            [
                "Hello, I can't log in to the client portal since yesterday. Could you help me get access again?",
                "Hi, how can I share a document with your team securely? Email attachments are too big.",
                "Dear team, we have a new colleague who needs access to the shared folder. What do you need from us?",
                "Hello, our contact person has changed; please write to our new office manager from now on.",
                "Hi, I have a question about the terms of our service contract. Who can I talk to?",
                "Just wanted to say thank you for the quick help last week, it made a big difference.",
                "Hello, which form should we fill in to add a second location to our account?",
                "Hi, could you explain what is included in the monthly package? I want to compare plans.",
            ],
        ),
        "hu": (
            [
                "Kérdés a szolgáltatásaikról",
                "Nem tudok belépni az ügyfélportálra",
                "Dokumentum megosztása",
                "Új munkatárs hozzáférése",
                "Jelszó visszaállítás",
                "Szerződéssel kapcsolatos kérdés",
                "Kapcsolattartó változás",
                "Visszajelzés",
                "Gyors kérdés",
                "Segítség az űrlaphoz",
            ],
            [
                "Jó napot! Tegnap óta nem tudok belépni az ügyfélportálra. Segítenének visszaállítani a hozzáférést?",
                "Üdvözlöm! Hogyan tudok biztonságosan megosztani egy dokumentumot a csapatukkal? A melléklet túl nagy.",
                "Új kollégánk van, akinek hozzáférés kell a közös mappához. Mire van szükségük tőlünk?",
                "Megváltozott a kapcsolattartónk, kérem, mostantól az új irodavezetőnknek írjanak.",
                "Kérdésem lenne a szolgáltatási szerződésünk feltételeiről. Kivel beszélhetnék?",
                "Szeretném megköszönni a múlt heti gyors segítséget, sokat jelentett.",
                "Melyik űrlapot kell kitöltenünk, ha egy második telephelyet szeretnénk felvenni?",
                "Elmagyaráznák, mit tartalmaz a havi csomag? Szeretném összehasonlítani a lehetőségeket.",
            ],
        ),
    },
}

_IDS = itertools.count(1)


def make_msgid(domain: str) -> str:
    """A deterministic Message-ID (the data must not change when regenerated)."""
    return f"<demo.{next(_IDS):04d}@{domain}>"


URGENT_EN = ["URGENT: ", "Urgent - ", ""]
URGENT_HU = ["SÜRGŐS: ", "Sürgős - ", ""]


def fill(text: str, rng: random.Random, lang: str) -> str:
    months = MONTHS_HU if lang == "hu" else MONTHS_EN
    days = DAYS_HU if lang == "hu" else DAYS_EN
    return text.format(
        n=rng.randint(2026001, 2026999),
        m=rng.choice(months),
        d=rng.choice(days),
        a=f"{rng.randint(12, 980) * 1000:,}".replace(",", " ")
        if lang == "hu"
        else f"{rng.randint(40, 4900):,}",
        t=f"{rng.randint(8, 16)}:{rng.choice(['00', '30'])}",
    )


def person(rng: random.Random, lang: str) -> tuple[str, str]:
    first = rng.choice(FIRST_HU if lang == "hu" else FIRST_EN)
    last = rng.choice(LAST_HU if lang == "hu" else LAST_EN)
    name = f"{last} {first}" if lang == "hu" else f"{first} {last}"
    ascii_first = first.translate(str.maketrans("ÖöŐőÜüŰűÁáÉéÍíÓóÚú", "OoOoUuUuAaEeIiOoUu")).lower()
    ascii_last = last.translate(str.maketrans("ÖöŐőÜüŰűÁáÉéÍíÓóÚú", "OoOoUuUuAaEeIiOoUu")).lower()
    return name, f"{ascii_first}.{ascii_last}@{rng.choice(DOMAINS)}"


def training_rows(rng: random.Random, per_queue_lang: int) -> list[dict[str, str]]:
    rows = []
    for queue, langs in TEXTS.items():
        for lang, (subjects, bodies) in langs.items():
            for i in range(per_queue_lang):
                # use the first 6 bodies for training; the last 2 stay unseen for the inbox
                body = fill(bodies[i % 6], rng, lang)
                subject = fill(subjects[rng.randrange(len(subjects))], rng, lang)
                priority = "normal"
                if rng.random() < 0.12:
                    subject = rng.choice((URGENT_HU if lang == "hu" else URGENT_EN)[:2]) + subject
                    priority = "urgent"
                _name, addr = person(rng, lang)
                greeting = rng.choice(["", "Thanks, " if lang == "en" else "Köszönöm, "])
                rows.append(
                    {
                        "subject": subject,
                        "body": body + ("\n\n" + greeting.strip(", ") if greeting else ""),
                        "sender": addr,
                        "queue": queue,
                        "priority": priority,
                        "language": lang,
                    }
                )
    rng.shuffle(rows)
    return rows


def make_msg(
    frm: str,
    subject: str,
    body: str,
    when: datetime,
    *,
    charset: str = "utf-8",
    to: str = "Example Office <inbox@example.com>",
    extra: dict[str, str] | None = None,
    msgid: str | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = frm
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = msgid or make_msgid(domain="mail.example.net")
    for key, value in (extra or {}).items():
        msg[key] = value
    msg.set_content(body, charset=charset)
    return msg


def inbox(rng: random.Random) -> list[Message | bytes]:
    start = datetime(2026, 11, 24, 6, 50, tzinfo=UTC)  # Tuesday 07:50 in Budapest
    when = start
    out: list[Message | bytes] = []

    def tick() -> datetime:
        nonlocal when
        when += timedelta(minutes=rng.randint(3, 17))
        return when

    first_id = None
    first_subject = ""
    first_from = ""
    for langs in TEXTS.values():
        for lang, (subjects, bodies) in langs.items():
            for body_t in [*bodies[6:8], bodies[rng.randrange(6)]]:
                name, addr = person(rng, lang)
                subject = fill(rng.choice(subjects), rng, lang)
                msg = make_msg(f"{name} <{addr}>", subject, fill(body_t, rng, lang), tick())
                out.append(msg)
                if first_id is None and lang == "en":
                    first_id, first_subject, first_from = (
                        msg["Message-ID"],
                        subject,
                        f"{name} <{addr}>",
                    )
    rng.shuffle(out)
    # a VIP client (rule: vip_clients) and an urgent legal threat (rule: escalate)
    out.append(
        make_msg(
            "Director <ceo@partner.example>",
            "Contract renewal for next year",
            "Hello, please prepare the renewal of our contract; I'd like to sign it this week.",
            tick(),
        )
    )
    out.append(
        make_msg(
            "Angry Client <client@dispute.example>",
            "Final notice before legal action",
            "If the overcharge is not refunded this week, our lawyer will start legal action.",
            tick(),
        )
    )
    # Hungarian mail in legacy charsets
    out.append(
        legacy(
            "Kovács Ödön",
            "odon.kovacs@cafe-example.hu",
            "Számla kérdés - sürgős",
            "Tisztelt Ügyfélszolgálat!\n\nA májusi számlán szereplő összeg hibásnak tűnik, "
            "kérem, ellenőrizzék.\nFizetési határidő: június 15.\n\nKöszönettel:\nKovács Ödön\n",
            tick(),
            "iso-8859-2",
        )
    )
    out.append(
        legacy(
            "Szűts Tünde",
            "tunde.szuts@kertesz.example",
            "Időpont áthelyezése – kérés",
            "Jó napot!\n\nA keddi megbeszélést „délutánra” szeretném áthelyezni – megoldható?\n\n"
            "Üdvözlettel:\nSzűts Tünde\n",
            tick(),
            "windows-1250",
        )
    )
    # an automatic reply (RFC 3834)
    out.append(
        make_msg(
            "Grace Foster <grace.foster@greenleaf.example>",
            "Automatic reply: Your request",
            "I am out of the office until Monday with limited access to email.",
            tick(),
            extra={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
        )
    )
    out.append(
        make_msg(
            "Nagy Réka <reka.nagy@studio-example.hu>",
            "Automatikus válasz: Számla kérdés",
            "Szabadságon vagyok, hétfőtől olvasom a leveleimet.",
            tick(),
            extra={"Auto-Submitted": "auto-replied"},
        )
    )
    # a mailing-list post (RFC 2369 / RFC 2919)
    out.append(
        make_msg(
            "Accounting Weekly <news@lists.example.net>",
            "This week in small-business accounting",
            "Five tips for the end of the tax year. Unsubscribe at any time.",
            tick(),
            extra={
                "List-Id": "Accounting Weekly <weekly.lists.example.net>",
                "List-Unsubscribe": "<mailto:leave@lists.example.net>",
                "Precedence": "list",
            },
        )
    )
    # vague mail that neither the rules nor the model can place: the fallback queue
    out.append(
        make_msg(
            "Emma Reid <emma.reid@medlab.example>",
            "Quick question",
            "Hi, could someone give me a ring when you have a moment? Thanks, Emma",
            tick(),
        )
    )
    out.append(
        make_msg(
            "Varga Áron <aron.varga@autoszerviz.example>",
            "Kérdés",
            "Jó napot! Visszahívnának? Köszönöm.",
            tick(),
        )
    )
    out.append(
        make_msg(
            "Jonas Becker <j.becker@nordwind.example>",
            "Rückruf erbeten",
            "Sehr geehrte Damen und Herren, bitte rufen Sie mich zurück. Mit freundlichen Grüßen, Jonas Becker",
            tick(),
        )
    )
    # a no-reply notification
    out.append(
        make_msg(
            "Portal <noreply@portal.example>",
            "Your document was uploaded",
            "A new document was uploaded to your client portal.",
            tick(),
        )
    )
    # a reply to an earlier mail of the inbox (threads into its ticket)
    assert first_id is not None
    out.append(
        make_msg(
            first_from,
            f"Re: {first_subject}",
            "One more detail: please use my new phone number.",
            tick(),
            extra={"In-Reply-To": first_id, "References": first_id},
        )
    )
    # a bounce (RFC 3464 delivery status notification)
    out.append(bounce(tick()))
    return out


def bounce(when: datetime) -> Message:
    """An RFC 3464 delivery status notification (multipart/report; report-type=delivery-status)."""
    msg = MIMEMultipart("report", report_type="delivery-status")
    msg["From"] = "Mail Delivery System <MAILER-DAEMON@mail.example.com>"
    msg["To"] = "inbox@example.com"
    msg["Subject"] = "Undelivered Mail Returned to Sender"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid(domain="mail.example.com")
    msg["Return-Path"] = "<>"
    msg["Auto-Submitted"] = "auto-replied"
    msg.attach(
        MIMEText(
            "This is the mail system. Your message could not be delivered to"
            " nobody@nowhere.example: user unknown.\n"
        )
    )
    per_message = Message()
    per_message["Reporting-MTA"] = "dns; mail.example.com"
    per_recipient = Message()
    per_recipient["Final-Recipient"] = "rfc822; nobody@nowhere.example"
    per_recipient["Action"] = "failed"
    per_recipient["Status"] = "5.1.1"
    per_recipient["Diagnostic-Code"] = "smtp; 550 5.1.1 User unknown"
    status = MIMEBase("message", "delivery-status")
    status.set_payload([per_message, per_recipient])
    msg.attach(status)
    msg.set_boundary("demo-report-boundary")
    return msg


def legacy(  # noqa: PLR0917 - one call site per message, all positional reads best
    name: str, addr: str, subject: str, body: str, when: datetime, charset: str
) -> bytes:
    """A Hungarian message as old mail clients write it: encoded-words and an 8-bit body in a
    legacy charset (iso-8859-2 or windows-1250)."""
    head = (
        f"From: {Header(name, charset).encode()} <{addr}>\r\n"
        "To: Example Office <inbox@example.com>\r\n"
        f"Subject: {Header(subject, charset).encode()}\r\n"
        f"Date: {format_datetime(when)}\r\n"
        f"Message-ID: {make_msgid(domain='mail.example.net')}\r\n"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset={charset}\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode("ascii") + body.replace("\n", "\r\n").encode(charset)


def main() -> None:
    rng = random.Random(20261129)
    OUT.mkdir(parents=True, exist_ok=True)
    rows = training_rows(rng, per_queue_lang=40)
    with (OUT / "training.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(
            f, fieldnames=["subject", "body", "sender", "queue", "priority", "language"]
        )
        writer.writeheader()
        writer.writerows(rows)
    path = OUT / "inbox.mbox"
    path.unlink(missing_ok=True)
    box = mailbox.mbox(path)
    for msg in inbox(rng):
        box.add(mailbox.mboxMessage(msg if isinstance(msg, bytes) else msg.as_bytes()))
    box.flush()
    box.close()
    print(f"wrote {len(rows)} training rows and {len(mailbox.mbox(path))} inbox messages to {OUT}")


if __name__ == "__main__":
    main()
