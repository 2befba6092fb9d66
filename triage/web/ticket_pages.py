"""The ticket page, its actions, a message's HTML and its attachments."""

from __future__ import annotations

import re
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from triage.errors import ConflictError, NotFoundError, UserError
from triage.store.models import Message
from triage.web.auth import Form, action, fragment, page
from triage.web.context import Viewer, web_of
from triage.web.mailview import clean_html, find_attachment, html_of, safe_filename
from triage.web.saved import saved_replies_for
from triage.web.ticketdesk import ACTIONS, Stale, TicketData, act, load

__all__ = ["attachment", "message_html", "ticket_action", "ticket_page"]

MAX_SRCDOC = 1024 * 1024
"""Sanitized HTML larger than this is not put inline; the page offers it on a click."""

FRAME_CSP = (
    "default-src 'none'; img-src http: https: data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'"
)
"""The CSP of a message's HTML served on its own (after "load images"): images only."""

_TOKEN = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def _ref(request: Request) -> int:
    raw = str(request.path_params.get("ref", ""))
    if not raw.isdigit() or len(raw) > 9:
        raise NotFoundError(f"no ticket {raw!r}")
    return int(raw)


def _render(
    request: Request,
    viewer: Viewer,
    data: TicketData,
    *,
    status_code: int = 200,
    stale: Stale | None = None,
    error: str = "",
    typed: dict[str, str] | None = None,
) -> Response:
    web = web_of(request)
    now = web.clock.now()
    html: dict[int, tuple[str, int] | None] = {}
    for message in data.messages:
        body = html_of(message.raw) if b"text/html" in message.raw[:2_000_000].lower() else None
        if body is None:
            html[message.id] = None
            continue
        clean = clean_html(body, message.raw)
        html[message.id] = (
            clean.html if len(clean.html) <= MAX_SRCDOC else "",
            clean.remote_images,
        )
    return web.render(
        request,
        viewer,
        "ticket.html",
        viewer.t,
        status_code=status_code,
        data=data,
        tk=data.ticket,
        html=html,
        now=now,
        queues=sorted(web.settings.queues),
        assistants=sorted(web.settings.team.assistants),
        stale=stale,
        error=error,
        typed=typed or {},
        calendar=web.calendar,
        saved=saved_replies_for(web.settings, data.ticket, assistant=viewer.name, t=viewer.t),
    )


@page
def ticket_page(request: Request, viewer: Viewer) -> Response:
    """GET /t/{ref}: the ticket, newest message first."""
    try:
        data = load(web_of(request).db, _ref(request))
    except NotFoundError:
        return PlainTextResponse("no such ticket\n", status_code=404)
    return _render(request, viewer, data)


@action
def ticket_action(request: Request, viewer: Viewer, form: Form) -> Response:
    """POST /t/{ref}/{action}: claim, assign, move, wait, done, reopen, reply.

    Refused with 409 when the ticket changed since the page was rendered (the page
    comes back naming who changed what, with the typed text kept).
    """
    web = web_of(request)
    name = str(request.path_params.get("action", ""))
    try:
        ref = _ref(request)
    except NotFoundError:
        return PlainTextResponse("no such ticket\n", status_code=404)
    if name not in ACTIONS:
        return PlainTextResponse("no such action\n", status_code=404)
    version_text = form.get("version", "")
    seen_text = form.get("seen", "0")
    value = form.get("value", "") if name != "reply" else form.get("body", "")
    typed = {"body": form.get("body", "")}
    try:
        act(
            web.db,
            web.settings,
            web.policy,
            ref,
            name,
            actor=viewer.name,
            version=int(version_text) if version_text.isdigit() else None,
            seen=int(seen_text) if seen_text.isdigit() else 0,
            now=web.clock.now(),
            value=value,
        )
    except NotFoundError as exc:
        if "ticket" in str(exc):
            return PlainTextResponse("no such ticket\n", status_code=404)
        return _render(
            request, viewer, load(web.db, ref), status_code=422, error=str(exc), typed=typed
        )
    except Stale as exc:
        return _render(request, viewer, load(web.db, ref), status_code=409, stale=exc, typed=typed)
    except ConflictError as exc:
        return _render(
            request, viewer, load(web.db, ref), status_code=409, error=str(exc), typed=typed
        )
    except UserError as exc:
        return _render(
            request, viewer, load(web.db, ref), status_code=422, error=str(exc), typed=typed
        )
    return RedirectResponse(f"/t/{ref}?done={name}", status_code=303)


def _message(request: Request) -> Message | None:
    raw = str(request.path_params.get("message", ""))
    if not raw.isdigit() or len(raw) > 12:
        return None
    web = web_of(request)
    with web.db.read_session() as session:
        message = session.get(Message, int(raw))
        if message is not None:
            session.expunge(message)
    return message


@fragment
def message_html(request: Request, viewer: Viewer) -> Response:  # noqa: ARG001 - login only
    """GET /m/{message}/html[?images=1]: the message's sanitized HTML as a framed document.

    Shown in an empty-sandbox iframe; remote images only with ``images=1``.
    """
    message = _message(request)
    body = html_of(message.raw) if message is not None else None
    if message is None or body is None:
        return PlainTextResponse("no such message\n", status_code=404)
    clean = clean_html(body, message.raw, remote_images=request.query_params.get("images") == "1")
    document = f'<!doctype html><meta charset="utf-8"><base target="_self">{clean.html}'
    return HTMLResponse(
        document,
        headers={
            "Content-Security-Policy": FRAME_CSP,
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "private, no-store",
        },
    )


@fragment
def attachment(request: Request, viewer: Viewer) -> Response:  # noqa: ARG001 - login only
    """GET /m/{message}/a/{sha256}: an attachment, always as a download.

    ``Content-Disposition: attachment`` with a cleaned file name, the declared type
    when it is a well-formed type (else ``application/octet-stream``), ``nosniff``
    and a CSP that sandboxes it, so a lying type or an HTML file never renders as
    our origin's page.
    """
    message = _message(request)
    sha = str(request.path_params.get("sha", ""))
    part = find_attachment(message.raw, sha) if message is not None and len(sha) == 64 else None
    if part is None:
        return PlainTextResponse("no such attachment\n", status_code=404)
    kind = part.content_type if _TOKEN.fullmatch(part.content_type) else "application/octet-stream"
    name = safe_filename(part.filename)
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    return Response(
        part.data,
        media_type=kind,
        headers={
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )
