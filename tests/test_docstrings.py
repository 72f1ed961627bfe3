"""Every public name has a docstring where it is defined, and a class's names its parameters.

The API reference (docs/reference/, built by mkdocstrings) and ``help()`` show these, so
what they check is what a user reads: every public module, class, function, method and
property of the modules below documents itself, and a class's docstring names each
parameter of its constructor (an ``Args:`` or ``Attributes:`` entry: ``    name: ...``).
A method that overrides a documented one of a base class may rely on that one's docstring,
as ``help()`` does.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

# The modules of the API reference (mkdocs.yml), and the receivers' own modules.
PUBLIC_MODULES = (
    "sentry_flags",
    "sentry_flags.forwarders",
    "sentry_flags.forwarders.split",
    "sentry_flags.forwarders.launchdarkly",
    "sentry_flags.forwarders.segment",
    "sentry_flags.forwarders.openfeature",
    "sentry_flags.launchdarkly",
    "sentry_flags.openfeature",
    "sentry_flags.split",
    "sentry_flags.django",
    "sentry_flags.flask",
    "sentry_flags.asgi",
    "sentry_flags.celery",
    "sentry_flags.testing",
    "sentry_flags.testing.receivers",
    "sentry_flags.testing.receivers.sentry",
    "sentry_flags.testing.receivers.launchdarkly",
    "sentry_flags.testing.receivers.split",
    "sentry_flags.testing.receivers.segment",
    "sentry_flags.demo",
)


def load(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # an extra this environment lacks (e.g. openfeature 0.8 on 3.9)
        pytest.skip(f"{name}: {exc}")


def public_objects(module: ModuleType) -> Iterator[tuple[str, Any]]:
    """Each public name and its object; a lazily imported one whose extra is missing (the
    vendor forwarders of sentry_flags.forwarders) is left to its own module's test."""
    for name in public_names(module):
        try:
            yield name, getattr(module, name)
        except ImportError:
            continue


def public_names(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and getattr(value, "__module__", None) == module.__name__
        ]
    return sorted(names)


def own_doc(obj: Any) -> str:
    """The docstring ``obj`` itself has (not a base class's, not a dataclass's generated one)."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__") or ""
        if dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
            return ""  # what @dataclass writes when the class has none
        return doc.strip()
    return (getattr(obj, "__doc__", None) or "").strip()


def documented_in_a_base(cls: type, name: str) -> bool:
    for base in cls.__mro__[1:]:
        member = base.__dict__.get(name)
        if member is not None and own_doc(inspect.unwrap(member) if callable(member) else member):
            return True
    return False


def members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods and properties ``cls`` defines itself."""
    for name, found in vars(cls).items():
        if name.startswith("_") or isinstance(cls, enum.EnumMeta):
            continue
        member = found.__func__ if isinstance(found, (staticmethod, classmethod)) else found
        if isinstance(member, property) or inspect.isfunction(member):
            yield name, member


def parameters(cls: type) -> list[str]:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in signature.parameters.values()
        if not p.name.startswith("_") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def defined_here(cls: type) -> bool:
    """Whether ``cls`` (or a class of this package it inherits from) defines its constructor."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass) or dataclasses.is_dataclass(klass):
            return klass.__module__.startswith("sentry_flags")
    return False


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_is_documented(module_name: str) -> None:
    module = load(module_name)
    missing = [] if own_doc(module) else [f"module {module_name}"]
    for _, obj in public_objects(module):
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants are documented where they are used
        where = f"{obj.__module__}.{obj.__qualname__}"
        if not own_doc(obj):
            missing.append(where)
        if inspect.isclass(obj):
            missing += [
                f"{where}.{member_name}"
                for member_name, member in members(obj)
                if not own_doc(member) and not documented_in_a_base(obj, member_name)
            ]
    assert missing == []


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_a_class_docstring_names_each_constructor_parameter(module_name: str) -> None:
    module = load(module_name)
    undocumented = []
    for _, cls in public_objects(module):
        if not inspect.isclass(cls) or issubclass(cls, enum.Enum) or not defined_here(cls):
            continue
        doc = own_doc(cls)
        for parameter in parameters(cls):
            if not re.search(rf"^\s+{re.escape(parameter)}( \([^)]*\))?:", doc, re.MULTILINE):
                undocumented.append(f"{cls.__module__}.{cls.__qualname__}({parameter})")
    assert undocumented == []


def test_help_on_the_package_leads_with_flags_integration() -> None:
    import sentry_flags

    doc = own_doc(sentry_flags)
    assert doc.index("FlagsIntegration") < doc.index("ErrorView")
    assert "FlagsIntegration" in doc.split("\n\n")[0] + doc.split("\n\n")[1]
