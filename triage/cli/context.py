"""What every CLI command shares: the loaded settings and the open database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import click

from triage.config import Settings, load_config
from triage.errors import ConfigError, NotFoundError
from triage.logs import configure_logging
from triage.secrets import read_secret
from triage.store import Database

__all__ = ["AppContext", "config_option", "pass_app"]


@dataclass
class AppContext:
    """Lazily loaded settings and database for one CLI invocation.

    Attributes:
        config_path: from ``--config`` or ``$TRIAGE_CONFIG``; None when neither is given.
        log_format: override of ``[logging] format`` from the command line.
    """

    config_path: Path | None
    log_format: str | None = None
    verbose: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _db: Database | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """The validated configuration. Raises ConfigError when absent or invalid."""
        if self._settings is None:
            if self.config_path is None:
                raise ConfigError(
                    "no configuration: pass --config FILE or set TRIAGE_CONFIG"
                    " (see config.example.toml)"
                )
            self.use_settings(load_config(self.config_path))
        assert self._settings is not None  # noqa: S101 - set just above
        return self._settings

    def use_settings(self, settings: Settings) -> None:
        """Adopt ``settings`` (loaded or built in code) and configure logging from them."""
        self._settings = settings
        fmt = self.log_format or settings.logging.format
        level = "debug" if self.verbose else settings.logging.level
        configure_logging(fmt, level)

    @property
    def db(self) -> Database:
        """The existing database, its schema checked (never migrated: no write lock).

        Raises:
            NotFoundError: an SQLite database file that does not exist (a typo in
                ``database.url`` must not quietly start an empty database).
            StoreError: the schema is behind this triage's (run ``triage init``).
        """
        return self.database(create=False)

    def database(
        self, *, migrate: bool = False, create: bool = True, check: bool = True
    ) -> Database:
        """Open the database once.

        Only ``init``, ``run``, ``poll --once`` and ``demo`` pass ``migrate=True`` (the
        migration check writes, and would make every command wait for the SQLite write
        lock); any other command has its schema checked in a read-only transaction and
        gets a clear StoreError ("run `triage init`") when it is behind. A command
        allowed to create the database (``create``) gives a brand-new, empty one its
        schema.
        ``create=False`` refuses to create a missing SQLite file (NotFoundError);
        ``check=False`` skips the schema check (``init``, which migrates next).
        """
        if self._db is None:
            settings = self.settings
            if not create:
                _require_sqlite_file(settings.database_url)
            password = ""
            if settings.database.password_env or settings.database.password_file:
                password = read_secret(
                    "database",
                    env=settings.database.password_env,
                    file=settings.resolve(settings.database.password_file)
                    if settings.database.password_file
                    else "",
                )
            db = Database.open(settings.database_url, password=password, migrate=migrate)
            if check and not migrate:
                if create and db.current_revision() is None:
                    db.migrate()  # a brand-new database (import, train first): its schema
                else:
                    db.check_schema()
            self._db = db
        return self._db

    def close(self) -> None:
        """Release the database connections."""
        if self._db is not None:
            self._db.dispose()
            self._db = None


def _require_sqlite_file(url: str) -> None:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return
    path = Path(url.removeprefix(prefix).split("?", 1)[0])
    if str(path) not in {"", ":memory:"} and not path.exists():
        raise NotFoundError(
            f"no database at {path}: run `triage init` first (or check database.url)"
        )


P = ParamSpec("P")
R = TypeVar("R")

CONFIG_HELP = "TOML configuration file (default: $TRIAGE_CONFIG)."


def _take_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """Callback of a command's ``--config``: it overrides the group's and ``$TRIAGE_CONFIG``."""
    if not value:
        return
    app = ctx.find_object(AppContext)
    if app is None:  # a command invoked without the triage group: nothing to store into
        return
    if app.config_path != Path(value):
        app.config_path = Path(value)
        app._settings = None  # noqa: SLF001 - nothing loaded yet; never keep the other file's


def config_option(command: Callable[P, R]) -> Callable[P, R]:
    """Accept ``--config FILE`` after a (sub)command's name too: ``triage init --config X``.

    Precedence: this option > the group's ``triage --config`` > ``$TRIAGE_CONFIG``;
    the value goes into the :class:`AppContext`, not into the command's arguments.
    """
    return click.option(
        "--config",
        "config_path",
        metavar="FILE",
        expose_value=False,
        callback=_take_config,
        help=CONFIG_HELP,
    )(command)


_pass_app = click.make_pass_decorator(AppContext)


def pass_app(command: Callable[Concatenate[AppContext, P], R]) -> Callable[P, R]:
    """Pass the invocation's :class:`AppContext` first; the command also takes ``--config``."""
    return config_option(_pass_app(command))
