"""What every request handler shares: settings, database, clock, templates, the viewer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.resources import files
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from triage.accounts import Account
from triage.clock import Clock
from triage.config import Settings
from triage.sla.calendar import BusinessCalendar
from triage.sla.deadlines import SlaPolicy
from triage.store import Database
from triage.web.i18n import Translator
from triage.web.refusals import Refusals

__all__ = ["Viewer", "Web", "visible", "web_of"]

_OVERRIDES = re.compile("[\u202a-\u202e\u2066-\u2069]")
"""Unicode's explicit embeddings, overrides and isolates (UAX #9 section 2): they turn
``invoice\u202efdp.exe`` into what reads as "invoiceexe.pdf". Implicit direction
(Hebrew and Arabic text, LRM and RLM) is untouched; the page isolates client text
with ``<bdi>`` instead."""


def visible(value: Any) -> Any:
    """Template output without bidi override characters (jinja's ``finalize``).

    Markup (already escaped HTML) stays Markup; other values pass unchanged.
    """
    if isinstance(value, str) and _OVERRIDES.search(value):
        cleaned = _OVERRIDES.sub("", value)
        # only characters removed from text that was already escaped: stays safe
        return Markup(cleaned) if isinstance(value, Markup) else cleaned  # noqa: S704
    return value


@dataclass(frozen=True)
class Viewer:
    """The logged-in person of a request, with their language.

    Attributes:
        session_id: the ``web_sessions`` row of the login.
    """

    account: Account
    session_id: int
    t: Translator

    @property
    def name(self) -> str:
        """The user's name (the name tickets are assigned to)."""
        return self.account.name


@dataclass
class Web:
    """The web page's shared state (``app.state.web``).

    Attributes:
        origin: the page's own origin (``[web] base_url`` or ``http://host:port``).
        secure_cookie: the page is served over https: cookies get ``Secure``.
    """

    settings: Settings
    db: Database
    clock: Clock
    origin: str
    policy: SlaPolicy = field(init=False)
    calendar: BusinessCalendar = field(init=False)
    templates: Jinja2Templates = field(init=False)
    refusals: Refusals = field(init=False)
    """Refused ticket forms, shown again after their redirect."""

    def __post_init__(self) -> None:
        self.refusals = Refusals()
        self.policy = SlaPolicy(self.settings)
        self.calendar = self.policy.calendar
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(files("triage.web") / "templates")),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=visible,
        )
        self.templates = Jinja2Templates(env=env)

    @property
    def secure_cookie(self) -> bool:
        """True when the page's origin is https."""
        return self.origin.startswith("https://")

    @property
    def session_lifetime(self) -> timedelta:
        """How long a login lasts without use."""
        return timedelta(hours=self.settings.web.session_hours)

    def render(
        self,
        request: Request,
        viewer: Viewer | None,
        template: str,
        t: Translator,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """Render ``template`` for ``viewer`` (None on the login page)."""
        return self.templates.TemplateResponse(
            request,
            template,
            {"t": t, "me": viewer.account if viewer else None, "web": self, **context},
            status_code=status_code,
        )


def web_of(request: Request) -> Web:
    """The :class:`Web` of the app handling ``request``."""
    web: Web = request.app.state.web
    return web
