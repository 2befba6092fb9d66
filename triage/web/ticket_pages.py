"""The ticket page, its actions, a message's HTML and its attachments: all through
the ticket desk (:class:`~triage.desk.TicketDesk`), the same calls as the CLI."""

from __future__ import annotations

import re
from datetime import datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from triage.desk import MAX_BODY_BYTES, ActionResult, TicketDesk, TicketView
from triage.errors import ConflictError, NotFoundError, UserError
from triage.web.auth import Form, action, fragment, page
from triage.web.context import Viewer, web_of
from triage.web.mailview import CleanHtml, clean_html, safe_filename
from triage.web.refusals import Refusal
from triage.web.saved import saved_replies_for

__all__ = [
    "ACTIONS",
    "attachment",
    "message_frame",
    "message_html",
    "ticket_action",
    "ticket_page",
]

ACTIONS = ("claim", "assign", "move", "wait", "done", "reopen", "reply", "note")

MAX_SRCDOC = 1024 * 1024
"""Sanitized HTML larger than this is not put inline; the frame loads it from its route."""

FRAME_CSP = (
    "default-src 'none'; img-src http: https: data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'"
)
"""The CSP of a message's HTML served on its own (after "load images"): images only."""

_TOKEN = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def desk_of(request: Request) -> TicketDesk:
    """The ticket desk for this request's app."""
    web = web_of(request)
    return TicketDesk(web.db, web.settings, clock=web.clock, calendar=web.calendar)


def _number(request: Request, name: str = "ref") -> int:
    raw = str(request.path_params.get(name, ""))
    if not raw.isdigit() or len(raw) > 12:
        raise NotFoundError(f"no {name} {raw!r}")
    return int(raw)


def _thread(view: TicketView) -> list[tuple[str, Any, datetime]]:
    """Messages and internal notes together, newest first."""
    items: list[tuple[str, Any, datetime]] = [("msg", m, m.received_at) for m in view.messages]
    items += [("note", n, n.created_at) for n in view.notes]
    return sorted(items, key=lambda item: item[2], reverse=True)


def _render(
    request: Request,
    viewer: Viewer,
    ref: int,
    *,
    status_code: int = 200,
    conflict: ConflictError | None = None,
    error: str = "",
    typed: dict[str, str] | None = None,
) -> Response:
    web = web_of(request)
    desk = desk_of(request)
    view = desk.show(ref)
    return web.render(
        request,
        viewer,
        "ticket.html",
        viewer.t,
        status_code=status_code,
        tk=view,
        thread=_thread(view),
        corrections=desk.corrections(ref),
        now=web.clock.now(),
        queues=sorted(web.settings.queues),
        priorities=("urgent", "high", "normal", "low"),
        assistants=sorted(web.settings.team.assistants),
        conflict=conflict,
        error=error,
        typed=typed or {},
        calendar=web.calendar,
        saved=saved_replies_for(web.settings, view, assistant=viewer.name, t=viewer.t),
    )


def _missing(request: Request, viewer: Viewer) -> Response:
    """404: a page in the user's language naming the ticket asked for, with a way back."""
    ref = str(request.path_params.get("ref", ""))[:20]
    web = web_of(request)
    return web.render(request, viewer, "missing.html", viewer.t, status_code=404, ref=ref)


@page
def ticket_page(request: Request, viewer: Viewer) -> Response:
    """GET /t/{ref}: the ticket, newest message first (404 page when there is none).

    ``?refused=TOKEN`` (after a refused action's 303) shows the refusal and the typed
    text with status 200: the browser logs any 4xx page as a failed load."""
    try:
        ref = _number(request)
        token = request.query_params.get("refused")
        web = web_of(request)
        refused = (
            web.refusals.get(token, session_id=viewer.session_id, ref=ref, now=web.clock.now())
            if token
            else None
        )
        if refused is None:
            return _render(request, viewer, ref)
        # 200, not the refusal's 409/422: the browser would log the page it was
        # redirected to as a failed load (a console error); the refusal is on the page
        return _render(
            request,
            viewer,
            ref,
            conflict=refused.conflict,
            error=refused.error,
            typed=dict(refused.typed),
        )
    except NotFoundError:
        return _missing(request, viewer)


def _until(value: str, viewer: Viewer) -> datetime | None:
    """A ``datetime-local`` value, read on the business's clock; None when empty."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(viewer.t("error.bad_time")) from None
    return moment.replace(tzinfo=viewer.t.zone) if moment.tzinfo is None else moment


def _do(desk: TicketDesk, name: str, ref: int, form: Form, viewer: Viewer) -> ActionResult:
    version_text = form.get("version", "")
    kw: dict[str, Any] = {
        "actor": viewer.name,
        # no version: no check; a mangled one (not a number, or past 64 bits) never
        # matches (versions start at 1), so the action is refused as stale
        "expected_version": (
            None
            if not version_text
            else int(version_text)
            if version_text.isdigit() and len(version_text) < 19
            else 0
        ),
    }
    if name == "claim":
        return desk.claim(ref, **kw)
    if name == "assign":
        return desk.assign(ref, form.get("assignee", ""), **kw)
    if name == "move":
        return desk.move(
            ref, queue=form.get("queue") or None, priority=form.get("priority") or None, **kw
        )
    if name == "wait":
        return desk.wait(ref, until=_until(form.get("until", ""), viewer), **kw)
    if name == "done":
        return desk.done(ref, **kw)
    if name == "reopen":
        return desk.reopen(ref, **kw)
    if name == "reply":
        return desk.reply(ref, form.get("body", ""), **kw)
    return desk.note(ref, form.get("note", ""), **kw)


@action
def ticket_action(request: Request, viewer: Viewer, form: Form) -> Response:
    """POST /t/{ref}/{action}: claim, assign, move, wait (snooze), done, reopen, reply, note.

    Every form carries the ticket version it was rendered with; when the ticket
    changed since, the desk refuses (ConflictError naming who changed what) and the
    page comes back with the changes listed and the typed text kept; a bad value
    likewise with why. A refusal answers 303 to ``/t/REF?refused=TOKEN`` (:func:`_refused`), so
    reloading the refused page does not post the form again.
    """
    name = str(request.path_params.get("action", ""))
    try:
        ref = _number(request)
    except NotFoundError:
        return _missing(request, viewer)
    if name not in ACTIONS:
        return PlainTextResponse("no such action\n", status_code=404)
    if request.state.form_too_large:
        return _refused(
            request, viewer, ref, 422, {}, error=viewer.t("error.form_too_large", limit=_LIMIT)
        )
    typed = {"body": form.get("body", ""), "note": form.get("note", "")}
    try:
        done = _do(desk_of(request), name, ref, form, viewer)
    except ConflictError as exc:
        return _refused(request, viewer, ref, 409, typed, conflict=exc)
    except NotFoundError as exc:
        if str(exc).startswith("no ticket"):
            return _missing(request, viewer)
        return _refused(request, viewer, ref, 422, typed, error=str(exc))
    except UserError as exc:
        error = viewer.t.refusal(str(exc))  # before the note on the cut is added
        cut = {k: _cut(v) for k, v in typed.items()}
        if cut != typed:  # kept for the page, but no more than the limit (memory)
            typed = cut
            error += " " + viewer.t("error.text_cut", limit=_LIMIT)
        return _refused(request, viewer, ref, 422, typed, error=error)
    unknown = ""
    if done.unknown_mentions:  # the note went in; say that nobody was told of these
        unknown = "&" + urlencode({"unknown": " ".join(done.unknown_mentions)[:200]})
    return RedirectResponse(f"/t/{ref}?done={name}{unknown}", status_code=303)


_LIMIT = "1 MiB"
""":data:`~triage.desk.MAX_BODY_BYTES` as people read it."""


def _cut(text: str) -> str:
    """``text`` cut to at most :data:`~triage.desk.MAX_BODY_BYTES` of UTF-8 (whole characters)."""
    return text.encode("utf-8", "surrogatepass")[:MAX_BODY_BYTES].decode("utf-8", "ignore")


def _refused(
    request: Request,
    viewer: Viewer,
    ref: int,
    status_code: int,
    typed: dict[str, str],
    *,
    conflict: ConflictError | None = None,
    error: str = "",
) -> Response:
    """303 to the ticket page showing the refusal (POST-redirect-GET: reloading it does
    not send the form again); the refusal and the typed text wait in ``web.refusals``."""
    web = web_of(request)
    token = web.refusals.put(
        Refusal(
            ref=ref,
            session_id=viewer.session_id,
            status_code=status_code,
            conflict=conflict,
            error=error,
            typed=MappingProxyType(dict(typed)),
            at=web.clock.now(),
        )
    )
    return RedirectResponse(f"/t/{ref}?refused={token}", status_code=303)


def _clean(request: Request, *, remote_images: bool) -> CleanHtml | None:
    desk = desk_of(request)
    ref = _number(request)
    message_id = _number(request, "message")
    html = desk.html(ref, message_id)
    if html is None:
        return None

    def inline(cid: str) -> tuple[str, bytes] | None:
        try:
            part = desk.inline_part(ref, message_id, cid)
        except NotFoundError:
            return None
        return part.content_type, part.data

    return clean_html(html, inline, remote_images=remote_images)


@fragment
def message_frame(request: Request, viewer: Viewer) -> Response:
    """GET /t/{ref}/m/{message}/frame: the sanitized HTML in an empty-sandbox iframe
    (``srcdoc``), remote images left out, with a "load images" button when there were
    any. Loaded when the person opens "Show the HTML version"."""
    web = web_of(request)
    try:
        clean = _clean(request, remote_images=False)
        ref, message_id = _number(request), _number(request, "message")
    except NotFoundError:
        return PlainTextResponse("no such message\n", status_code=404)
    return web.render(
        request,
        viewer,
        "_frame.html",
        viewer.t,
        clean=clean,
        inline=clean is not None and len(clean.html) <= MAX_SRCDOC,
        ref=ref,
        message_id=message_id,
    )


@fragment
def message_html(request: Request, viewer: Viewer) -> Response:  # noqa: ARG001 - login only
    """GET /t/{ref}/m/{message}/html[?images=1]: the sanitized HTML as a document of its
    own, for a sandboxed frame (remote images only with ``images=1``)."""
    try:
        clean = _clean(request, remote_images=request.query_params.get("images") == "1")
    except NotFoundError:
        clean = None
    if clean is None:
        return PlainTextResponse("no such message\n", status_code=404)
    document = f'<!doctype html><meta charset="utf-8">{clean.html}'
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
    """GET /t/{ref}/m/{message}/a/{index}: an attachment, always as a download.

    ``Content-Disposition: attachment`` with a cleaned file name, the declared type
    when it is a well-formed type (else ``application/octet-stream``), ``nosniff``
    and a CSP that sandboxes it, so a lying type or an HTML file never renders as
    our origin's page.
    """
    try:
        part = desk_of(request).attachment(
            _number(request), _number(request, "message"), _number(request, "index")
        )
    except NotFoundError:
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
