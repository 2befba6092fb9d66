"""What a message is: normal, auto_reply, bounce or mailing_list.

Signals, strongest first:

1. bounce: a multipart/report with report-type=delivery-status (RFC 3464, RFC
   6522; RFC 6533 global-delivery-status), or a sender whose local part is
   MAILER-DAEMON or postmaster (RFC 5321 §4.5.1).
2. auto_reply: ``Auto-Submitted`` other than ``no`` (RFC 3834 §5);
   ``X-Autoreply`` / ``X-Autorespond`` / ``X-Autoresponder``; ``Precedence:
   auto_reply``; an MDN (report-type=disposition-notification, RFC 8098);
   ``X-Auto-Response-Suppress: All`` or ``OOF`` on a reply (Exchange marks its
   out-of-office answers so, MS-OXCMAIL §2.2.3.2.14); a subject starting with an
   out-of-office phrase ("Out of Office", "Automatic reply", "Automatikus válasz",
   "Házon kívül", "Abwesenheitsnotiz", "Réponse automatique", ...).
3. bounce: a null reverse-path, ``Return-Path: <>`` (RFC 5321 §4.5.5).
4. mailing_list: any RFC 2369 ``List-*`` field or an RFC 2919 ``List-Id``;
   ``Precedence: bulk``, ``list`` or ``junk``; ``Mailing-List`` / ``X-Mailing-List``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from triage.domain import Address, MessageKind
from triage.mail.headers import HeaderBlock, TextDecoder
from triage.mail.mime import Part
from triage.mail.sanitize import one_line

__all__ = ["KindResult", "classify", "list_id_of"]

_DAEMONS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_AUTOREPLY_FIELDS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-auto-reply")
_LIST_FIELDS = (
    "list-id",
    "list-unsubscribe",
    "list-post",
    "list-help",
    "list-subscribe",
    "list-owner",
    "list-archive",
    "mailing-list",
    "x-mailing-list",
)
_OUT_OF_OFFICE = re.compile(
    r"^\W{0,3}(?:(?:re|aw|vá|vs|sv)\s*:\s*)?(?:"
    r"out\s+of\s+(?:the\s+)?office|automatic\s+reply|auto(?:matic)?[\s-]?(?:reply|response)|"
    r"autoreply|away\s+from\s+(?:the\s+)?office|on\s+vacation|vacation\s+reply|"
    r"automatikus\s+válasz|automatikus\s+üzenet|házon\s+kívül|irodán\s+kívül|"
    r"szabadságon\s+vagyok|abwesenheitsnotiz|automatische\s+antwort|abwesend|"
    r"réponse\s+automatique|absence\s+du\s+bureau|absent\s+du\s+bureau|"
    r"respuesta\s+automática|fuera\s+de\s+la\s+oficina|"
    r"resposta\s+automática|ausente\s+do\s+escritório|fora\s+do\s+escritório"
    r")\b",
    re.IGNORECASE,
)
_LIST_ID = re.compile(r"<([^<>\s]{1,400})>")


@dataclass(frozen=True, slots=True)
class KindResult:
    """The kind of a message and the signal that decided it."""

    kind: MessageKind
    reason: str


def _token(block: HeaderBlock, name: str) -> str:
    value = block.get(name)
    if value is None:
        return ""
    return value.decode("ascii", "replace").strip().lower()


def list_id_of(block: HeaderBlock, decoder: TextDecoder) -> str:
    """The RFC 2919 list identifier without angle brackets ("" when there is no List-Id)."""
    value = block.get("list-id")
    if value is None:
        return ""
    text = decoder.text(value)
    found = _LIST_ID.findall(text)
    if found:
        return one_line(found[-1])[:500]
    text = text.strip()
    return "" if " " in text else text[:500]


def _is_reply(block: HeaderBlock) -> bool:
    return block.get("in-reply-to") is not None or block.get("references") is not None


def classify(block: HeaderBlock, root: Part, sender: Address | None, subject: str) -> KindResult:
    """The :class:`~triage.domain.MessageKind` of a message, with the deciding signal."""
    report_type = root.params.get("report-type", "").strip().lower()
    if root.content_type == "multipart/report" and report_type in {
        "delivery-status",
        "global-delivery-status",
    }:
        return KindResult(MessageKind.BOUNCE, f"multipart/report; report-type={report_type}")
    if sender is not None and sender.key.partition("@")[0] in _DAEMONS:
        return KindResult(MessageKind.BOUNCE, f"sender {sender.addr}")

    auto_submitted = _token(block, "auto-submitted").split(";")[0].strip()
    if auto_submitted and auto_submitted != "no":
        return KindResult(MessageKind.AUTO_REPLY, f"Auto-Submitted: {auto_submitted}")
    for name in _AUTOREPLY_FIELDS:
        value = block.get(name)
        if value is not None and value.strip().lower() not in {b"no", b"false", b"0"}:
            return KindResult(MessageKind.AUTO_REPLY, name)
    precedence = _token(block, "precedence") or _token(block, "x-precedence")
    if precedence == "auto_reply":
        return KindResult(MessageKind.AUTO_REPLY, "Precedence: auto_reply")
    if root.content_type == "multipart/report" and report_type == "disposition-notification":
        return KindResult(MessageKind.AUTO_REPLY, "disposition notification (RFC 8098)")
    suppress = _token(block, "x-auto-response-suppress")
    if suppress and _is_reply(block) and re.search(r"\b(?:all|oof)\b", suppress):
        return KindResult(MessageKind.AUTO_REPLY, f"X-Auto-Response-Suppress: {suppress}")
    if _OUT_OF_OFFICE.match(subject):
        return KindResult(MessageKind.AUTO_REPLY, "out-of-office subject")

    return_path = block.get("return-path")
    if return_path is not None and return_path.replace(b" ", b"") == b"<>":
        return KindResult(MessageKind.BOUNCE, "null Return-Path")

    for name in _LIST_FIELDS:
        if block.get(name) is not None:
            return KindResult(MessageKind.MAILING_LIST, name)
    if precedence in {"bulk", "list", "junk"}:
        return KindResult(MessageKind.MAILING_LIST, f"Precedence: {precedence}")
    return KindResult(MessageKind.NORMAL, "")
