"""Jinja2 mail templates: the shipped ones (English, Hungarian) and an operator's own.

Template names are ``<kind>/<name>.<language>.j2``:

- ``ack/default.en.j2``, ``ack/default.hu.j2``: acknowledgments; a queue may have
  its own, ``ack/<queue>.<language>.j2``.
- ``escalation/breach.<lang>.j2``, ``escalation/warning.<lang>.j2``,
  ``escalation/digest.<lang>.j2``: mail to owners and assistants.

A template defines ``{% block body %}`` and may define ``{% block subject %}``
(acknowledgments use ``Re: [#ref] <subject>`` when it does not). Templates in
``acknowledgments.templates_dir`` win over the shipped ones of the same name.
Undefined variables are errors (StrictUndefined), so a typo in a template is
found by :meth:`MailTemplates.check` rather than mailed to a client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from triage.config import Settings
from triage.errors import ConfigError

__all__ = ["MailTemplates", "RenderedText"]


@dataclass(frozen=True, slots=True)
class RenderedText:
    """A rendered template.

    Attributes:
        template: the template's name (``ack/default.hu.j2``).
        subject: the ``subject`` block, "" when the template has none (not yet
            header-safe: the composer makes it so).
        body: the ``body`` block, ending with one newline.
    """

    template: str
    subject: str
    body: str


class MailTemplates:
    """The template set: shipped templates, overridden by ``templates_dir`` when given."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if templates_dir is not None:
            if not templates_dir.is_dir():
                raise ConfigError(
                    f"acknowledgments.templates_dir: {templates_dir} is not a directory"
                )
            loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
        loaders.append(jinja2.PackageLoader("triage.outbox", "templates"))
        self.templates_dir = templates_dir
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=False,  # noqa: S701 - plain-text mail, not HTML: nothing to escape
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._names = frozenset(self.env.list_templates(extensions=["j2"]))

    @classmethod
    def from_settings(cls, settings: Settings) -> MailTemplates:
        """The templates of ``acknowledgments.templates_dir`` (resolved) plus the shipped ones."""
        configured = settings.acknowledgments.templates_dir
        return cls(settings.resolve(configured) if configured else None)

    def exists(self, name: str) -> bool:
        """True when a template called ``name`` exists (shipped or overriding)."""
        return name in self._names

    def languages(self, prefix: str) -> set[str]:
        """Languages with a template named ``<prefix>.<language>.j2``."""
        found = set()
        for name in self._names:
            if name.startswith(prefix + ".") and name.endswith(".j2"):
                found.add(name[len(prefix) + 1 : -3])
        return found

    def pick(self, candidates: Sequence[str]) -> str:
        """The first name in ``candidates`` that exists.

        Raises:
            ConfigError: none of them exists.
        """
        for name in candidates:
            if self.exists(name):
                return name
        raise ConfigError(f"no mail template found; looked for {', '.join(candidates)}")

    def render(self, name: str, variables: Mapping[str, Any]) -> RenderedText:
        """Render the ``subject`` and ``body`` blocks of template ``name``.

        Raises:
            ConfigError: the template is missing, has a syntax error, uses an
                undefined variable, or has no ``body`` block.
        """
        try:
            template = self.env.get_template(name)
            if "body" not in template.blocks:
                raise ConfigError(f"mail template {name} has no {{% block body %}}")
            context = template.new_context(dict(variables))
            body = "".join(template.blocks["body"](context))
            subject = ""
            if "subject" in template.blocks:
                subject = "".join(template.blocks["subject"](template.new_context(dict(variables))))
        except jinja2.TemplateError as exc:
            where = f" line {exc.lineno}" if isinstance(exc, jinja2.TemplateSyntaxError) else ""
            raise ConfigError(f"mail template {name}{where}: {exc.message or exc}") from None
        lines = [line.rstrip() for line in body.strip("\n").splitlines()]
        return RenderedText(template=name, subject=subject.strip(), body="\n".join(lines) + "\n")

    def check(self) -> list[str]:
        """Compile every template; return one line per problem (empty when all are fine)."""
        problems = []
        for name in sorted(self._names):
            try:
                template = self.env.get_template(name)
            except jinja2.TemplateError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if "body" not in template.blocks:
                problems.append(f"{name}: no {{% block body %}}")
        return problems
