"""Reading stored messages back: address lists in the JSON columns of ``messages``.

The address columns (``to_addrs``, ``cc_addrs``, ``reply_to``) hold one item per
address; this module accepts the forms writers use: ``{"name": ..., "addr": ...}``,
``[name, addr]`` or a header text ``"Name <addr>"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.utils import parseaddr
from typing import Any

from triage.domain import Address
from triage.store.models import Message

__all__ = ["address_json", "addresses", "reply_address"]


def _one(item: Any) -> Address | None:
    if isinstance(item, dict):
        addr = str(item.get("addr") or item.get("address") or "")
        name = str(item.get("name") or "")
    elif isinstance(item, list | tuple) and len(item) == 2:
        name, addr = str(item[0] or ""), str(item[1] or "")
    elif isinstance(item, str):
        name, addr = parseaddr(item)
    else:
        return None
    return Address(name=name, addr=addr) if addr else None


def addresses(items: Iterable[Any] | None) -> list[Address]:
    """The addresses in a stored address list; unreadable items are skipped."""
    out = []
    for item in items or ():
        one = _one(item)
        if one is not None:
            out.append(one)
    return out


def reply_address(message: Message) -> Address | None:
    """Where an answer to ``message`` goes: its first Reply-To, else its From."""
    reply_to = addresses(message.reply_to)
    if reply_to:
        return reply_to[0]
    if message.from_addr:
        return Address(name=message.from_name, addr=message.from_addr)
    return None


def address_json(address: Address) -> dict[str, str]:
    """The stored form of one address: ``{"name": ..., "addr": ...}``."""
    return {"name": address.name, "addr": address.addr}
