"""What ``_locals.redacted_repr`` looks into, and what it leaves to the value's own repr."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("ldclient")

from ldclient import Context
from ldclient.config import Config

from sentry_flags._context import NO_REDACTION, redact
from sentry_flags._locals import MAX_DEPTH, MAX_FOUND, MAX_SCREENED, local_repr, redacted_repr, screen

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


class Shows:
    """An app's object whose repr is given."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def test_plain_values_are_left_to_sentry_sdks_own_repr() -> None:
    import sys

    for value in ("text", b"bytes", 7, 0.5, None, True, int, Context, show, len, sys):
        assert local_repr(value, show, None) is None
    assert local_repr("text", show, lambda value: "<the app's>") == "<the app's>"


def test_a_repr_is_screened_once_and_handed_on() -> None:
    assert local_repr(Shows("<Order 7>"), show, None) == "<Order 7>"  # sentry-sdk need not repr it again
    shown = local_repr(
        Shows(f"<Order of {Context.builder('k').set('ssn', '078-05-1120').private('ssn').build()!r}>"),
        show,
        None,
    )
    assert (
        shown == '<Order of <Context {"_meta": {"redactedAttributes": ["ssn"]}, "key": "k", "kind": "user"}>>'
    )


def test_a_method_bound_to_a_context_is_screened() -> None:
    # Not a plain value: a bound method's repr holds the repr of its object.
    context = Context.builder("k").set("ssn", "078-05-1120").private("ssn").build()
    shown = local_repr(context.to_dict, show, None)
    assert isinstance(shown, str)
    assert "078-05-1120" not in shown


def test_an_apps_answer_that_is_not_a_str_is_screened_as_sent() -> None:
    # sentry-sdk sends whatever the app's custom_repr returns: a dict holding a context's
    # own dict form would carry its private attributes.
    context = Context.builder("k").set("ssn", "078-05-1120").private("ssn").build()

    def apps(value: Any) -> Any:
        return {"holder": context.to_dict()} if isinstance(value, Shows) else None

    shown = local_repr(Shows("<Holder>"), show, apps)
    assert isinstance(shown, str)
    assert "078-05-1120" not in shown
    assert '"redactedAttributes": ["ssn"]' in shown
    for plain in (7, "text"):  # the app's answer for a plain value, screened the same way
        answer = local_repr(plain, show, lambda value: [context.to_dict()])
        assert "078-05-1120" not in str(answer)
    # An answer without a context is sentry-sdk's to send as it is.
    assert local_repr(Shows("<Holder>"), show, lambda v: {"id": 7}) == {"id": 7}


def test_what_cannot_be_redacted_in_a_repr_is_not_shown() -> None:
    context = Context.builder("k").set("ssn", "078-05-1120").build()
    for text in (
        repr(context)[:-5],  # cut short
        '{"kind":"user","key":""}',  # not a valid context
        '"kind": ' + "x" * MAX_SCREENED,  # too long to look through
        " ".join([repr(context)] * (MAX_FOUND + 1)),  # too many to look through
        "EvaluationContext(targeting_key='k', attributes={'ssn': '078-05-1120'})",
    ):
        assert screen(text, "Shows", show) == "<Shows: holds a LaunchDarkly context; not shown>", text[:40]


def test_a_failure_of_ours_shows_nothing(mocker: Any) -> None:
    from sentry_flags import FlagsIntegration, _stage
    from sentry_flags._privacy import Privacy

    mocker.patch.object(_stage, "local_repr", side_effect=RuntimeError("ours"))
    custom_repr = _stage.RedactingRepr(None, FlagsIntegration(), Privacy())
    assert custom_repr(Shows("anything")) == "<Shows: not shown>"  # never sentry-sdk's plain repr
