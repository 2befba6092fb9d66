"""The assistants' web page (Starlette, htmx): the queue and the ticket, live.

- :mod:`~triage.web.app`: :func:`create_app`, routes and middleware;
- :mod:`~triage.web.security`: headers (CSP) and the cross-origin check;
- :mod:`~triage.web.auth`: login, logout, the viewer of a request;
- :mod:`~triage.web.pages`: the pages;
- :mod:`~triage.web.i18n`: Hungarian and English, dates in business time;
- :mod:`~triage.web.serve`: uvicorn, alone or inside ``triage run``.
"""

from triage.web.app import create_app

__all__ = ["create_app"]
