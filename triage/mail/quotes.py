"""Separating the new text of a message from its quoted history and its signature.

Plain-text rules, in the tradition of GitHub's email_reply_parser and Mailgun's
talon (whose published test cases this module is tested against), with the
attribution lines of the languages triage sees (hu, en, de, fr, es, pt, ...):

- The quoted history starts at the first of: an attribution line ("On ... wrote:",
  "... ezt írta:", "Am ... schrieb ...:", possibly wrapped over three lines), an
  "-----Original Message-----" line, an Outlook header block ("From: / Sent: /
  To: / Subject:" and their translations, e.g. "Feladó: / Elküldve: / Címzett: /
  Tárgy:"), or a block of ``>`` lines. A weak attribution ("X wrote:" without
  a leading "On"/date) counts only when ``>`` lines follow it.
- Text written between ``>`` blocks (an inline reply) stays new text; a
  footer after the quote that starts with a signature delimiter is signature.
- Forwards (Fwd:/Fw:/TOV: subjects, "Forwarded message" lines) keep the
  forwarded text: it is what the sender wants handled.
- The signature starts, within the last lines, at the earliest of: the RFC 3676
  §4.3 delimiter "-- " (or a line of dashes or underscores), a "Sent from my
  ..." line, "-Name", a closing such as "Thanks," / "Üdvözlettel:" followed by
  a few short lines, or the paragraph holding the sender's name or address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from triage.domain import Address

__all__ = ["Split", "split_reply"]

MAX_LINES = 5000
"""Lines examined; beyond them the text is left as new text."""

_VERBS = (
    r"wrote|writes|schrieb|a\s+écrit|escribió|escreveu|ha\s+scritto|scrisse|schreef|skrev|"
    r"napisał|napsal|написал|написала|kirjoitti|ezt\s+írta|írta"
)
_STRONG_ATTRIBUTION = re.compile(
    r"^(?:(?:On|Am|Le|El|Em|Il|Op|Den|Dne|W\s+dniu)\s.{4,400}?(?:" + _VERBS + r")"
    r"(?:(?<=schrieb)\s.{1,300})?"  # German names the writer after the verb
    r"|.{4,400}?(?:ezt\s+írta|írta|написал|написала))\s*(?:\(.{0,120}\))?\s*:\s*$",
    re.IGNORECASE,
)
_DATED = re.compile(r"[0-9@]")
"""A strong attribution names a date or an address; "Az ügyfél ezt írta:" alone is prose."""
_DATED_ADDRESS_ATTRIBUTION = re.compile(
    r"^.{0,200}?\d{1,2}:\d{2}.{0,200}?<[^<>@\s]{1,64}@[^<>\s]{1,255}>\W{0,3}:\s*$"
)
"""Clients that write no verb: '26.06.2014, 14:41, "Alexander L" <abc@example.com>:'."""
_WEAK_ATTRIBUTION = re.compile(r"^.{1,400}?\b(?:" + _VERBS + r")\s*:\s*$", re.IGNORECASE)
_ORIGINAL = re.compile(
    r"^\s*[-_=]{2,}\s*(?:original\s+message|eredeti\s+üzenet|ursprüngliche\s+nachricht|"
    r"message\s+d'origine|mensaje\s+original|mensagem\s+original|messaggio\s+originale|"
    r"oorspronkelijk\s+bericht|původní\s+zpráva|wiadomość\s+oryginalna|reply\s+message)"
    r"\s*[-_=]{2,}\s*$",
    re.IGNORECASE,
)
_FORWARD_MARK = re.compile(
    r"^\s*(?:[-_=]{2,}\s*(?:forwarded\s+message|továbbított\s+üzenet|weitergeleitete\s+nachricht|"
    r"message\s+transféré|mensaje\s+reenviado|mensagem\s+encaminhada)\s*[-_=]{2,}|"
    r"begin\s+forwarded\s+message:)\s*$",
    re.IGNORECASE,
)
_FORWARD_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:fwd?|fw|tov|továbbítás|wg|tr|rv|enc)\s*:", re.IGNORECASE
)
_HEADER_FROM = re.compile(
    r"^[*\s]*(?:from|von|de|feladó|od|da|van|från|fra|lähettäjä|от)[*\s]*:[*\s]*\S", re.IGNORECASE
)
_HEADER_OTHER = re.compile(
    r"^[*\s]*(?:sent|date|to|subject|cc|gesendet|datum|an|betreff|envoyé|à|objet|enviado|fecha|"
    r"para|asunto|assunto|elküldve|küldve|dátum|időpont|címzett|tárgy|másolat|másolatot\s+kap|"
    r"data|oggetto|inviato|a|отправлено|дата|кому|тема|копия)[*\s]*:",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(r"^\s*(?:[-_=*]\s*){2,}$")
_SIG_DASHES = re.compile(r"^(?:--|-- |—)$")
_SIG_LINE = re.compile(r"^\s*(?:[-_]{2,}|[*=]{5,})\s*$")
_MOBILE = re.compile(
    r"^(?:sent\s+from\s+my\s+\S+(?:\s+\S+){0,3}|sent\s+from\s+(?:mail|outlook)\s+for\s+\S+|"
    r"get\s+outlook\s+for\s+\S+|sent\s+with\s+\S+.*|"
    r"\S+(?:-ról|-ről|-ról|ról|ről)\s+küldve|küldve\s+\S+.*(?:ról|ről)|"
    r"von\s+meinem\s+\S+(?:\s+\S+){0,2}\s+gesendet|envoyé\s+de\s+mon\s+\S+(?:\s+\S+){0,2}|"
    r"enviado\s+desde\s+mi\s+\S+(?:\s+\S+){0,2}|enviado\s+do\s+meu\s+\S+(?:\s+\S+){0,2})\s*\.?$",
    re.IGNORECASE,
)
_DASH_NAME = re.compile(r"^-\w[\w.' -]{0,40}$")
_CLOSING = re.compile(
    r"^(?:thanks(?:\s+(?:a\s+lot|again|in\s+advance))?|thank\s+you|many\s+thanks|regards|best|"
    r"best\s+regards|kind\s+regards|warm\s+regards|cheers|sincerely|yours(?:\s+sincerely|\s+truly)?|"
    r"br|üdvözlettel|tisztelettel|köszönettel|köszönöm|üdv|szép\s+napot|baráti\s+üdvözlettel|"
    r"mit\s+freundlichen\s+grüßen|mfg|viele\s+grüße|beste\s+grüße|grüße|lg|"
    r"cordialement|bien\s+cordialement|salutations|merci|"
    r"saludos(?:\s+cordiales)?|atentamente|un\s+saludo|gracias|"
    r"atenciosamente|cumprimentos|obrigad[oa]|abraços)[\s,.!:;]*$",
    re.IGNORECASE,
)
_SIG_WINDOW = 15
_DELIMITED_WINDOW = 40


@dataclass(frozen=True, slots=True)
class Split:
    """A message text in three pieces (each trimmed; "" when absent)."""

    body: str
    quoted: str
    signature: str


def _is_quote(line: str) -> bool:
    return line.startswith((">", " >"))


def _attribution_at(lines: list[str], i: int) -> int:
    """Lines an attribution starting at ``i`` spans (0 when none), and whether it is strong.

    Returns a positive span for a strong attribution, a negative span for a weak one.
    """
    if not lines[i].strip() or _is_quote(lines[i]):
        return 0
    joined = ""
    for span in range(1, 4):
        j = i + span - 1
        if j >= len(lines) or not lines[j].strip() or (span > 1 and _is_quote(lines[j])):
            break
        joined = (joined + " " + lines[j].strip()).strip()
        if len(joined) > 500:
            break
        if not joined.endswith(":"):
            continue
        if _STRONG_ATTRIBUTION.match(joined) and _DATED.search(joined):
            return span
        if span == 1 and _DATED_ADDRESS_ATTRIBUTION.match(joined):
            return span
        if span == 1 and _WEAK_ATTRIBUTION.match(joined):
            return -span
    return 0


def _header_block_at(lines: list[str], i: int) -> bool:
    """Whether an Outlook-style header block (From:/Sent:/To:/Subject: in any order, some
    clients put Date: first) starts at line ``i``."""
    first = lines[i]
    from_line = bool(_HEADER_FROM.match(first))
    if not from_line and not _HEADER_OTHER.match(first):
        return False
    window = lines[i + 1 : i + 7]
    others = sum(1 for line in window if _HEADER_OTHER.match(line))
    if from_line:
        return others >= 2
    return others >= 2 and any(_HEADER_FROM.match(line) for line in window)


def _next_text(lines: list[str], i: int) -> int:
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i


def _find_split(lines: list[str], forwarded: bool) -> tuple[int, int, str]:
    """(index where the history starts, lines of its header, kind) or (len, 0, "")."""
    n = min(len(lines), MAX_LINES)
    ends_colon = [line.rstrip().endswith(":") for line in lines[: n + 2]]
    after_forward = False
    for i in range(n):
        line = lines[i]
        if not line or line.isspace():
            continue
        if _is_quote(line):
            return i, 0, "quote"
        ruled = "--" in line or "__" in line or "==" in line
        if (ruled or line.lstrip()[:6].lower() == "begin ") and _FORWARD_MARK.match(line):
            after_forward = True
            continue
        if any(ends_colon[i : i + 3]):
            span = _attribution_at(lines, i)
            if span > 1:  # a wrapped attribution may have swallowed a line of text above it
                for j in range(i + 1, i + span):
                    if _attribution_at(lines, j) == i + span - j:
                        return j, i + span - j, "attribution"
            if span > 0:
                return i, span, "attribution"
            if span < 0:
                nxt = _next_text(lines, i - span)
                if nxt < len(lines) and _is_quote(lines[nxt]):
                    return i, -span, "attribution"
        if forwarded or after_forward:
            continue
        if ruled and _ORIGINAL.match(line):
            return i, 1, "header"
        if ":" in line and _header_block_at(lines, i):
            return i, 0, "header"
    return len(lines), 0, ""


def _trim(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n")


def _name_words(sender: Address | None) -> tuple[set[str], str]:
    if sender is None:
        return set(), ""
    words = {w for w in re.split(r"[\s,.\"']+", sender.name.lower()) if len(w) > 1}
    return words, sender.addr.lower()


def _mentions_sender(line: str, words: set[str], addr: str) -> bool:
    lower = line.lower()
    if addr and addr in lower:
        return True
    if not words or len(line) > 80:
        return False
    line_words = set(re.split(r"[\s,.\"'|()]+", lower))
    return words <= line_words


def split_signature(text: str, sender: Address | None = None) -> tuple[str, str]:
    """(text without its signature, the signature); see the module docstring for the rules."""
    lines = text.rstrip("\n").split("\n")
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    if len(nonblank) < 2:
        return text.strip("\n"), ""
    first = nonblank[0]
    window = set(nonblank[-_SIG_WINDOW:])
    wide_window = set(nonblank[-_DELIMITED_WINDOW:])
    words, addr = _name_words(sender)
    start: int | None = None
    for i in nonblank[1:]:
        stripped = lines[i].strip()
        if i in wide_window and _SIG_DASHES.match(lines[i].rstrip("\n")):
            start = i
            break
        if i not in window:
            continue
        if _SIG_LINE.match(stripped) or _MOBILE.match(stripped) or _DASH_NAME.match(stripped):
            start = i
            break
        if _CLOSING.match(stripped):
            rest = [lines[j] for j in nonblank if j > i]
            if rest and len(rest) <= 6 and all(len(line) <= 80 for line in rest):
                start = i
                break
        if _mentions_sender(stripped, words, addr):
            paragraph = i
            while paragraph > first and lines[paragraph - 1].strip():
                paragraph -= 1
            if paragraph > first and i - paragraph < 8:
                start = paragraph
                break
            if paragraph == i:
                start = i
                break
    if start is None or start <= first:
        return _trim(lines), ""
    return _trim(lines[:start]), _trim(lines[start:])


def split_reply(text: str, *, sender: Address | None = None, subject: str = "") -> Split:
    """Split a message text into new text, quoted history and signature.

    Args:
        text: the body text with LF line ends.
        sender: the From address; its name or address marks a signature.
        subject: the decoded Subject; a forward keeps its forwarded text.
    """
    lines = text.split("\n")
    forwarded = bool(_FORWARD_SUBJECT.match(subject))
    start, header_span, kind = _find_split(lines, forwarded)
    if not kind:
        body, signature = split_signature(text, sender)
        return Split(body, "", signature)

    cut = start
    if kind == "header":  # take the separator line above an Outlook header block along
        while cut > 0 and (not lines[cut - 1].strip() or _SEPARATOR.match(lines[cut - 1])):
            cut -= 1
    head = lines[:cut]
    tail = lines[cut:]

    new_parts: list[str] = [_trim(head)]
    quoted: list[str] = []
    footer = ""
    if kind == "header":
        quoted = tail
    else:
        # attribution or quote block: text between ">" blocks is an inline reply
        offset = start - cut + header_span
        quoted = tail[:offset]
        rest = tail[offset:]
        seen_quote = False
        pending: list[str] = []
        k = 0
        while k < len(rest):
            line = rest[k]
            if _is_quote(line) or not line.strip():
                if pending and _is_quote(line):
                    new_parts.append(_trim(pending))
                    pending = []
                seen_quote = seen_quote or _is_quote(line)
                (pending or quoted).append(line)
                k += 1
                continue
            if not seen_quote:
                quoted.append(line)
                k += 1
                continue
            span = abs(_attribution_at(rest, k))
            if span and not pending:
                quoted.extend(rest[k : k + span])
                k += span
                continue
            if not pending and (_SIG_DASHES.match(line) or _SIG_LINE.match(line.strip())):
                footer = _trim(rest[k:])
                break
            pending.append(line)
            k += 1
        if pending:
            new_parts.append(_trim(pending))

    body_text = "\n\n".join(part for part in new_parts if part)
    body, signature = split_signature(body_text, sender)
    if footer:
        signature = f"{signature}\n\n{footer}" if signature else footer
    return Split(body, _trim(quoted).strip(), signature)
