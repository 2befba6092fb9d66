"""Logging in and out, and finding the viewer of each request.

The cookie holds a random session token (:mod:`triage.accounts.sessions`):
``HttpOnly``, ``SameSite=Lax``, ``Path=/``, and ``Secure`` with the ``__Host-``
prefix when the page is served over https. Every page and attachment needs a
login: a page request without one is sent to ``/login``; any other request gets 401.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from triage.accounts import Account, authenticate, end_session, find_session, start_session
from triage.accounts.sessions import needs_touch, touch_session
from triage.desk import MAX_BODY_BYTES
from triage.errors import LoginError
from triage.web.context import Viewer, Web, web_of
from triage.web.i18n import Translator, translator

__all__ = [
    "COOKIE_MAX_AGE",
    "FORM_FIELD_MOST",
    "LOGIN_FAILURES",
    "Form",
    "action",
    "cookie_name",
    "fragment",
    "login_page",
    "login_submit",
    "logout",
    "page",
    "viewer_of",
]

Handler = Callable[[Request, Viewer], Response]
Form = dict[str, str]
"""A submitted form: field name -> value (the last one when repeated; files are ignored)."""
FormHandler = Callable[[Request, Viewer, Form], Response]


COOKIE_MAX_AGE = 400 * 24 * 3600
"""Seconds the browser keeps the session cookie (the most browsers allow); the login
itself lasts while it is used (server-side sessions, ``[web] session_hours`` idle)."""


def cookie_name(web: Web) -> str:
    """``__Host-triage`` over https (RFC 6265bis section 4.1.3.2), ``triage`` otherwise."""
    return "__Host-triage" if web.secure_cookie else "triage"


def default_translator(web: Web, request: Request | None = None) -> Translator:
    """The configured default language (or ``?lang=``) for pages shown before login."""
    language: str = web.settings.web.default_language
    if request is not None and request.query_params.get("lang") in ("hu", "en"):
        language = request.query_params["lang"]
    return translator(language, web.calendar.zone)


def viewer_of(request: Request) -> Viewer | None:
    """The logged-in viewer of ``request``, or None (no cookie, expired, revoked, disabled)."""
    web = web_of(request)
    token = request.cookies.get(cookie_name(web), "")
    if not token:
        return None
    now = web.clock.now()
    with web.db.read_session() as session:
        found = find_session(session, token, now=now)
        if found is None:
            return None
        web_session, user = found
        account = Account.of(user)
        touch = needs_touch(web_session, now)
        session_id = web_session.id
    if touch:
        with web.db.session() as session:
            touch_session(session, session_id, now=now, lifetime=web.session_lifetime)
    language = account.language or web.settings.web.default_language
    return Viewer(account=account, session_id=session_id, t=translator(language, web.calendar.zone))


def _is_page_request(request: Request) -> bool:
    return request.method == "GET" and "hx-request" not in request.headers


def page(handler: Handler) -> Callable[[Request], Response]:
    """Wrap a sync page endpoint ``handler(request, viewer)`` so that it needs a login."""
    return _login_required(handler, redirect=True)


def fragment(handler: Handler) -> Callable[[Request], Response]:
    """Like :func:`page` for a part of a page or a file: 401 without a login, no redirect."""
    return _login_required(handler, redirect=False)


def _login_required(handler: Handler, *, redirect: bool) -> Callable[[Request], Response]:
    @functools.wraps(handler)
    def endpoint(request: Request) -> Response:
        viewer = viewer_of(request)
        if viewer is None:
            if redirect and _is_page_request(request):
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            return Response("login required\n", status_code=401, media_type="text/plain")
        return handler(request, viewer)

    return endpoint


FORM_FIELD_MOST = 4 * MAX_BODY_BYTES
"""The most bytes one submitted form field may take (Starlette's own limit is 1 MiB).
A reply of :data:`~triage.desk.MAX_BODY_BYTES` percent-encoded may be three times its
UTF-8 size, so a text just over the desk's limit still arrives and is refused by the
desk with its message and the text kept."""


def action(handler: FormHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a sync ``handler(request, viewer, form)`` for a POST: login required (401).

    The form is read in the event loop; the handler runs in the thread pool. A form
    with a field over :data:`FORM_FIELD_MOST` bytes (or too many fields) reaches the
    handler empty with ``request.state.form_too_large`` True, so that the page can
    refuse it in its own words (not Starlette's plain-text 400).
    """

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        request.state.form_too_large = False
        try:
            data = await request.form(max_part_size=FORM_FIELD_MOST)
        except (HTTPException, MultiPartException):
            request.state.form_too_large = True
            form: Form = {}
        else:
            form = {k: v for k, v in data.items() if isinstance(v, str)}

        def run() -> Response:
            viewer = viewer_of(request)
            if viewer is None:
                return Response("login required\n", status_code=401, media_type="text/plain")
            return handler(request, viewer, form)

        return await run_in_threadpool(run)

    return endpoint


def _safe_next(value: str | None) -> str:
    """A local path to go to after login; anything else (another site) becomes ``/``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


LOGIN_FAILURES = ("wrong", "throttled")
"""The ``failed=`` values of ``/login`` after a refused login (POST-redirect-GET)."""


def login_page(request: Request) -> Response:
    """GET /login: the form (or straight to the queue when already logged in).

    ``?failed=wrong`` or ``?failed=throttled`` (where a refused login sends the browser)
    shows why, with the name typed (``?name=``) kept; never the password. It answers
    200: a refusal is not a failed page load (no console error in the browser).
    """
    web = web_of(request)
    if viewer_of(request) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    t = default_translator(web, request)
    failed = request.query_params.get("failed", "")
    return web.render(
        request,
        None,
        "login.html",
        t,
        next=_safe_next(request.query_params.get("next")),
        error=t(f"login.{failed}") if failed in LOGIN_FAILURES else "",
        name=request.query_params.get("name", "")[:200] if failed else "",
    )


async def login_submit(request: Request) -> Response:
    """POST /login: check the password (throttled), start a session, set the cookie.

    A refused login answers ``303`` to ``/login?failed=wrong|throttled&name=...``
    (:func:`login_page`), the same for a wrong password and an unknown name."""
    web = web_of(request)
    form = await request.form()
    name = str(form.get("name", ""))[:200]
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")))
    now = web.clock.now()

    def check() -> str:
        refused: LoginError | None = None
        with web.db.session() as session:  # commits the failure row of a refused login too
            try:
                account = authenticate(session, name, password, address=_address(request), now=now)
            except LoginError as exc:
                refused = exc
            else:
                return start_session(
                    session,
                    account.id,
                    now=now,
                    lifetime=web.session_lifetime,
                    address=_address(request),
                )
        raise refused

    try:
        token = await run_in_threadpool(check)
    except LoginError as exc:
        # POST-redirect-GET: the browser lands on a 200 page showing why (a 401/429
        # would be logged as a failed resource load); the password is never sent back
        query = {"failed": "throttled" if exc.retry_after else "wrong", "name": name}
        if target != "/":
            query["next"] = target
        if request.query_params.get("lang") in ("hu", "en"):
            query["lang"] = request.query_params["lang"]
        return RedirectResponse(f"/login?{urlencode(query)}", status_code=303)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        cookie_name(web),
        token,
        # the server ends an idle session ([web] session_hours, renewed by every
        # request) and logout revokes it; the cookie itself outlives a working day
        max_age=COOKIE_MAX_AGE,
        path="/",
        secure=web.secure_cookie,
        httponly=True,
        samesite="lax",
    )
    return response


def logout(request: Request) -> Response:
    """POST /logout: end the session on the server and clear the cookie."""
    web = web_of(request)
    token = request.cookies.get(cookie_name(web), "")
    if token:
        with web.db.session() as session:
            end_session(session, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        cookie_name(web), path="/", secure=web.secure_cookie, httponly=True, samesite="lax"
    )
    return response
