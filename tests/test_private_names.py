"""Every private name of another package that sentry-flags touches is declared, in its SDK's module.

Found from the source, not from a list kept by hand: an AST walk of ``src/sentry_flags`` for
``obj._name`` (on anything but ``self``/``cls``), ``getattr``/``hasattr``/``setattr``/
``delattr`` with a ``"_name"`` literal, ``"_name"`` literals a ``for`` loop runs over, keys
(``obj["_key"]``, ``obj.get("_key")``, ``"_key" in obj``), and imports of ``_names`` from
other packages. Each found in an SDK or framework module (``_ldclient``, ``_splitio``,
``_segment``, ``_sentry``, ``_django``, ``_flask_login``) must be in that module's
``PRIVATE_NAMES``; one found anywhere else must be a name this package defines
itself (or one the list below says is public despite its underscore). And every declared
name must still be used, so the lists say what the code does.

A name of ours that a vendor SDK happens to share, touched on a vendor object outside the
SDK modules, would pass unseen; the SDK modules themselves are checked name by name.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sentry_flags"
SDK_MODULES = {
    "_ldclient.py": "sentry_flags._ldclient",
    "_splitio.py": "sentry_flags._splitio",
    "_segment.py": "sentry_flags._segment",
    "_sentry.py": "sentry_flags._sentry",
    # The frameworks'. Flask's own, Starlette's (asgi.py) and Celery's glue need none.
    "_django.py": "sentry_flags._django",
    "_flask_login.py": "sentry_flags._flask_login",
}
# Underscored, and public all the same.
DOCUMENTED = {
    # werkzeug's LocalProxy (flask.request, flask_login.current_user): its documented way
    # to reach the object behind the proxy.
    "_get_current_object": "werkzeug.local.LocalProxy._get_current_object",
    # Sentry's event protocol: the annotations of trimmed and scrubbed values.
    "_meta": "https://develop.sentry.dev/sdk/data-model/event-payloads/",
}
KEY_METHODS = {"get", "pop", "setdefault"}
ACCESSORS = {"getattr", "hasattr", "setattr", "delattr"}


@dataclass(frozen=True)
class Touch:
    module: str
    name: str
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.name}"


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def sources() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def touches(module: str, tree: ast.Module) -> Iterator[Touch]:
    """The private names ``module`` reaches on objects and modules that are not its own."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                yield Touch(module, node.attr, node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ACCESSORS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and private(node.args[1].value)
        ):
            yield Touch(module, node.args[1].value, node.lineno)
        elif isinstance(node, ast.Subscript) and (key := private_literal(node.slice)):
            yield Touch(module, key, node.lineno)  # obj["_key"]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in KEY_METHODS
            and node.args
            and (key := private_literal(node.args[0]))
        ):
            yield Touch(module, key, node.lineno)  # obj.get("_key")
        elif (
            isinstance(node, ast.Compare)
            and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops)
            and (key := private_literal(node.left))
        ):
            yield Touch(module, key, node.lineno)  # "_key" in obj
        elif isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.iter, (ast.Tuple, ast.List)):
            # for name in ("_a", "_b"): getattr(obj, name)
            for item in node.iter.elts:
                if isinstance(item, ast.Constant) and isinstance(item.value, str) and private(item.value):
                    yield Touch(module, item.value, item.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "sentry_flags":
                continue
            for part in node.module.split("."):
                if private(part):
                    yield Touch(module, part, node.lineno)
            for alias in node.names:
                if private(alias.name):
                    yield Touch(module, alias.name, node.lineno)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "sentry_flags":
                    yield from (Touch(module, p, node.lineno) for p in alias.name.split(".") if private(p))


def private_literal(node: ast.AST) -> str:
    """The private name a string literal spells, or ``""``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and private(node.value):
        return node.value
    return ""


def defined(tree: ast.Module) -> Iterator[str]:
    """The private names ``tree`` defines: functions, classes, attributes set on self/cls,
    module and class variables, ``__slots__`` entries, its own modules."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            yield node.id
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                yield node.attr
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
        ):
            for item in ast.walk(node.value):
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    yield item.value


def declared(module_name: str) -> set[str]:
    """The private names a module's ``PRIVATE_NAMES`` declares: ``PrivateName`` values, or
    plain strings such as ``"Scope._contexts"``."""
    found: set[str] = set()
    for entry in importlib.import_module(module_name).PRIVATE_NAMES:
        names = entry.names if hasattr(entry, "names") else [p for p in str(entry).split(".") if private(p)]
        found.update(names)
    return found


def test_private_names_of_other_packages_are_declared_in_their_sdk_module() -> None:
    trees = dict(sources())
    ours = {name for tree in trees.values() for name in defined(tree) if private(name)}
    ours |= {path.stem for path in PACKAGE.rglob("_*.py")}
    outside: list[str] = []
    undeclared: list[str] = []
    used: dict[str, set[str]] = {module: set() for module in SDK_MODULES}
    for module, tree in trees.items():
        for touch in touches(module, tree):
            if module in SDK_MODULES:
                used[module].add(touch.name)
                if touch.name not in declared(SDK_MODULES[module]):
                    undeclared.append(str(touch))
            elif touch.name not in ours and touch.name not in DOCUMENTED:
                outside.append(str(touch))
    assert not outside, f"private names of other packages outside their SDK's module: {outside}"
    assert not undeclared, f"not in the module's PRIVATE_NAMES: {undeclared}"
    for module, module_name in SDK_MODULES.items():
        stale = declared(module_name) - used[module]
        assert not stale, f"{module} declares names it no longer touches: {stale}"


def test_the_walk_finds_the_kinds_of_touch_it_looks_for() -> None:
    # A walker that finds nothing would let every list pass.
    code = (
        "from other._impl import _thing\n"
        "import other._impl\n"
        "def f(client):\n"
        "    self = client\n"
        "    client._a.b._c\n"
        "    getattr(client, '_d', None)\n"
        "    for name in ('_e', 'f'): hasattr(client, name)\n"
        "    self._ours\n"
        "    client.__dict__\n"
        "    client.session['_f'], client.g.get('_g'), '_h' in client.keys, '_i' == client.x\n"
    )
    found = sorted(t.name for t in touches("m.py", ast.parse(code)))
    assert found == ["_a", "_c", "_d", "_e", "_f", "_g", "_h", "_impl", "_impl", "_thing"]


VENDOR_MODULES = [
    "sentry_flags._ldclient",
    "sentry_flags._segment",
    "sentry_flags._splitio",
    "sentry_flags._django",
    "sentry_flags._flask_login",
]


@pytest.mark.parametrize("module_name", VENDOR_MODULES)
def test_each_vendor_module_says_why_and_on_which_releases(module_name: str) -> None:
    module: Any = importlib.import_module(module_name)
    doc = module.__doc__ or ""
    for said in ("Tested on", "floor", "newest", "deps-oldest"):
        assert said in doc, (module_name, said)
    for entry in module.PRIVATE_NAMES:
        assert entry.serves, entry
        assert entry.instead, entry
