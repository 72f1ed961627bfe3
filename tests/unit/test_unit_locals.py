"""What ``_locals.redacted_repr`` looks into, and what it leaves to the value's own repr."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("ldclient")

from ldclient import Context
from ldclient.config import Config

from sentry_flags._context import NO_REDACTION, redact
from sentry_flags._locals import MAX_DEPTH, redacted_repr

SDK_KEY = "sdk-canary-0123456789"


def show(context: Any) -> dict[str, Any]:
    return redact(context, NO_REDACTION, pii=False)


@dataclass
class Holder:
    config: Config
    context: Context
    hidden: str = field(default="not-in-its-repr", repr=False)


def test_values_without_a_context_keep_their_own_repr() -> None:
    assert redacted_repr(Config(SDK_KEY), show) is None
    assert redacted_repr(Holder.__new__(Holder), show) is None  # no field set at all
    assert redacted_repr(object(), show) is None


def test_only_what_the_values_own_repr_shows_is_shown() -> None:
    shown = redacted_repr(Holder(Config(SDK_KEY), Context.create("k")), show)

    assert shown is not None
    assert shown.startswith("Holder(config=<ldclient.config.Config object at ")
    assert shown.endswith('context=<Context {"key": "k", "kind": "user"}>)')
    assert SDK_KEY not in shown  # Config has the default repr: nothing of it is looked at
    assert "not-in-its-repr" not in shown  # a field the dataclass leaves out of its repr


@dataclass
class Nested:
    inner: Any


def test_a_context_past_the_depth_is_never_shown_by_its_repr() -> None:
    value: Any = Context.builder("deep").set("ssn", "078-05-1120").build()
    for _ in range(MAX_DEPTH + 2):
        value = Nested([value])

    shown = redacted_repr(value, show)

    assert shown is not None
    assert "078-05-1120" not in shown
    assert "<Nested>" in shown or "<list>" in shown  # where looking stopped


def test_long_containers_are_cut() -> None:
    shown = redacted_repr(tuple(Context.create(f"k{i}") for i in range(100)), show)

    assert shown is not None
    assert shown.count("<Context ") == 20
    assert shown.endswith(", ...)")


def test_a_context_past_the_items_looked_at_is_never_shown_by_its_repr() -> None:
    items = [*(f"item-{i}" for i in range(30)), Context.builder("late").set("ssn", "078-05-1120").build()]

    shown = redacted_repr(Nested(items), show)

    assert shown is not None
    assert "078-05-1120" not in shown
    assert shown.endswith(", ...])")


def test_a_plain_object_is_decided_without_calling_its_repr() -> None:
    class Loud:
        def __repr__(self) -> str:
            raise AssertionError("repr called")

    assert redacted_repr(Loud(), show) is None
    assert redacted_repr(Nested([1, "two", None]), show) is None


def test_plain_types_are_those_redacted_repr_leaves_alone() -> None:
    # RedactingRepr skips redacted_repr for these (sentry-sdk asks for the repr of every
    # local of every frame it sends): it must answer None for each of them anyway.
    import sys
    import types

    from sentry_flags._locals import PLAIN_TYPES

    values: list[Any] = [
        0, -1, 10**40, 1.5, True, False, "", "text", b"bytes", None, int, Context,
        show, len, Holder.__repr__, Context.create("k").to_dict, sys, types,
    ]  # fmt: skip
    assert {type(v) for v in values} == PLAIN_TYPES
    for value in values:
        assert redacted_repr(value, show) is None, value


def test_redacting_repr_shows_a_context_and_hands_plain_values_to_the_previous_repr() -> None:
    from sentry_flags import FlagsIntegration
    from sentry_flags._privacy import Privacy
    from sentry_flags._stage import RedactingRepr

    seen: list[Any] = []

    def previous(value: Any) -> str:
        seen.append(value)
        return "<previous>"

    shown = RedactingRepr(previous, FlagsIntegration(), Privacy())
    assert shown(42) == "<previous>"
    assert shown("x") == "<previous>"
    assert shown(Context.create("k")).startswith("<Context ")
    assert shown([Context.create("k")]).startswith("[<Context ")
    assert seen == [42, "x"]
    assert RedactingRepr(None, FlagsIntegration(), Privacy())(42) is None
