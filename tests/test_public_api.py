"""The public API says only what it means: what each public module exports, and how.

The names below are the package's public surface; a change to one is a change for users
(and a CHANGELOG line). Every exported callable is documented and takes no private
parameter, and no exported signature needs a name users cannot import.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from typing import Any

import pytest

PUBLIC: dict[str, set[str]] = {
    "sentry_flags": {
        "CONTEXT_KEY", "ErrorView", "FlagsIntegration", "KeyValueRule", "Privacy", "__version__",
        "get_launchdarkly_context", "set_launchdarkly_context",
    },
    "sentry_flags.forwarders": {
        "Forwarder", "LaunchDarklyForwarder", "OpenFeatureForwarder", "SegmentForwarder",
        "SplitForwarder", "Stats", "VendorCall",
    },
    "sentry_flags.forwarders.split": {
        "DEFAULT_EVENT_TYPE", "DEFAULT_IDENTITIES", "SplitForwarder", "culprit_event_type",
    },
    "sentry_flags.forwarders.segment": {
        "DEFAULT_EVENT_NAME", "DEFAULT_MAX_PER_SECOND", "MAX_MESSAGE_SIZE", "SegmentForwarder",
    },
    "sentry_flags.forwarders.launchdarkly": {
        "DEFAULT_EVENT_KEY", "LaunchDarklyForwarder", "MAX_VALUE_LENGTH",
    },
    "sentry_flags.forwarders.openfeature": {"DEFAULT_EVENT_NAME", "OpenFeatureForwarder"},
    "sentry_flags.launchdarkly": {"SentryFlagsAsyncPlugin", "SentryFlagsPlugin", "install_hook"},
    "sentry_flags.openfeature": {"SOURCE", "SentryFlagsHook"},
    "sentry_flags.split": {
        "AsyncImpressionListener", "ImpressionListener", "MAX_TREATMENTS",
        "async_impression_listener", "impression_listener", "record_treatment",
    },
    "sentry_flags.django": {"FlagsMiddleware", "default_request_context"},
    "sentry_flags.flask": {"FlagsExtension"},
    "sentry_flags.asgi": {"FlagsMiddleware", "context_for_user"},
    "sentry_flags.celery": {"HEADER", "connect", "disconnect"},
    "sentry_flags.testing": {
        "ForwardedCall", "RecordingForwarder", "capture_forwarded", "current_integration",
        "flush_forwarders",
    },
}  # fmt: skip


def public_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # an extra that is not installed here
        pytest.skip(f"{name}: {exc}")


def expected(name: str) -> set[str]:
    names = set(PUBLIC[name])
    if name == "sentry_flags.launchdarkly" and not hasattr(
        importlib.import_module("ldclient.plugin"), "AsyncPlugin"
    ):
        names.discard("SentryFlagsAsyncPlugin")  # an LD SDK without the async client
    return names


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_module_exports_exactly_its_public_names(name: str) -> None:
    module = public_module(name)
    assert set(module.__all__) == expected(name)
    for attr in module.__all__:  # each one there: "from module import *" works
        try:
            getattr(module, attr)
        except ImportError:  # a forwarder loaded on first use, whose SDK is missing here
            continue


def _exported_callables(module: Any) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for attr in module.__all__:
        try:
            value = getattr(module, attr)
        except ImportError:  # a forwarder loaded on first use, whose SDK is missing here
            continue
        if inspect.isclass(value):
            found.append((attr, value))
            found.extend(
                (f"{attr}.{member}", getattr(value, member))
                for member, raw in vars(value).items()
                if not member.startswith("_") and callable(getattr(value, member, None))
                and not isinstance(raw, property)
            )  # fmt: skip
        elif callable(value):
            found.append((attr, value))
    return found


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_exported_callables_are_documented_and_take_no_private_parameter(name: str) -> None:
    module = public_module(name)
    for label, value in _exported_callables(module):
        if "." not in label:
            assert inspect.getdoc(value), f"{name}.{label} has no docstring"
        try:
            signature = inspect.signature(value)
        except (TypeError, ValueError):  # a builtin without one
            continue
        for parameter in signature.parameters.values():
            assert not parameter.name.startswith("_"), f"{name}.{label}({parameter.name}=...)"
            annotation = str(parameter.annotation)
            # A type users are handed but cannot import (ours, by its private module).
            assert "Redaction" not in annotation, f"{name}.{label}({parameter.name}: {annotation})"


def test_set_launchdarkly_context_takes_the_context_only() -> None:
    from sentry_flags import set_launchdarkly_context

    assert list(inspect.signature(set_launchdarkly_context).parameters) == ["context"]


def _private_module_classes() -> dict[str, list[type[Any]]]:
    """Every class defined in a private module of the package (``sentry_flags._x``,
    ``sentry_flags.forwarders._base``), by name."""
    import sentry_flags

    found: dict[str, list[type[Any]]] = {}
    for info in pkgutil.walk_packages(sentry_flags.__path__, "sentry_flags."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an extra that is not installed here
            continue
        if not any(part.startswith("_") for part in info.name.split(".")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, type) and value.__module__ == info.name:
                found.setdefault(value.__name__, []).append(value)
    return found


def _public_objects() -> set[int]:
    found: set[int] = set()
    for name in PUBLIC:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for attr in module.__all__:
            try:
                found.add(id(getattr(module, attr)))
            except ImportError:
                continue
    return found


def _signatures(module: Any) -> list[tuple[str, inspect.Signature]]:
    """The signatures of each exported callable and of every public method and property of
    each exported class, inherited ones included (what ``help()`` shows a user)."""
    found: list[tuple[str, inspect.Signature]] = []
    for attr in module.__all__:
        try:
            value = getattr(module, attr)
        except ImportError:
            continue
        members: list[tuple[str, Any]] = [(attr, value)]
        if inspect.isclass(value):
            for member in dir(value):
                if member.startswith("_"):
                    continue
                raw = inspect.getattr_static(value, member)
                target = raw.fget if isinstance(raw, property) else getattr(value, member, None)
                if callable(target):
                    members.append((f"{attr}.{member}", target))
        for label, target in members:
            try:
                found.append((label, inspect.signature(target)))
            except (TypeError, ValueError):  # a builtin without one
                continue
    return found


def test_no_public_signature_names_a_class_users_cannot_import() -> None:
    private = _private_module_classes()
    public = _public_objects()
    assert "Stage" in private  # the walk sees our private modules
    offending: list[str] = []
    for name in sorted(PUBLIC):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for label, signature in _signatures(module):
            annotations = [p.annotation for p in signature.parameters.values()]
            annotations.append(signature.return_annotation)
            for annotation in annotations:
                # Annotations are strings here (postponed evaluation): look at every name in them.
                for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(annotation)):
                    offending += [
                        f"{name}.{label}: {word} (from {cls.__module__})"
                        for cls in private.get(word, ())
                        if id(cls) not in public
                    ]
    assert not offending, "a class of a private module in a public signature, not exported:\n" + "\n".join(
        sorted(set(offending))
    )
