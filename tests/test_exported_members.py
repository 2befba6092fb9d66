"""Each package's ``__all__`` is exactly its public members (HTTPX's test_exported_members).

Read from each package's ``__init__.py`` (every package of ``triage``, ``rules`` and
``classifiers`` but the alembic migrations):

- every public name it defines (``def``, ``class``, an assignment) is in ``__all__``;
- every public name it imports from its own modules is in ``__all__`` (that is why a
  package imports from itself);
- every name in ``__all__`` exists, once.

Names a package with code of its own imports from elsewhere for itself (``triage.demo``
uses ``BusinessCalendar``) need not be exported; one it lists is a re-export.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

TOP = ("triage", "rules", "classifiers")


def _packages() -> list[str]:
    found = list(TOP)
    for top in TOP:
        module = importlib.import_module(top)
        found.extend(
            info.name
            for info in pkgutil.walk_packages(module.__path__, prefix=f"{top}.")
            if info.ispkg and ".migrations" not in info.name
        )
    return found


def _bindings(name: str, path: Path) -> tuple[set[str], set[str], set[str]]:
    """(names defined, names imported from the package itself, names imported from
    elsewhere) at the top level of the package's ``__init__.py``.

    An ``if TYPE_CHECKING:`` block's imports count as the package's own: a package
    that loads its members on first use (PEP 562 ``__getattr__``) names them there;
    the test checks that each is really there (``getattr``)."""
    defined: set[str] = set()
    own: set[str] = set()
    foreign: set[str] = set()
    body = ast.parse(path.read_text(encoding="utf-8")).body
    for node in list(body):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            body.extend(node.body)
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            source = node.module or ""
            inside = node.level > 0 or source == name or source.startswith(f"{name}.")
            for alias in node.names:
                (own if inside else foreign).add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            foreign.update((a.asname or a.name).split(".")[0] for a in node.names)
    defined.discard("__all__")
    return defined, own, foreign


@pytest.mark.parametrize("name", _packages())
def test_all_is_exactly_the_public_members(name: str) -> None:
    package = importlib.import_module(name)
    assert package.__file__ is not None
    defined, own, foreign = _bindings(name, Path(package.__file__))
    exported = list(getattr(package, "__all__", []))
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    must = {n for n in defined | own if not n.startswith("_")}
    assert must - set(exported) == set(), f"{name}: public but not in __all__"
    assert set(exported) - (defined | own | foreign) == set(), f"{name}: in __all__, not there"
    missing = [n for n in exported if not hasattr(package, n)]
    assert missing == [], f"{name}: in __all__, but getattr fails"
