"""What sentry-flags attaches comes out of Sentry's ingestion whole.

Sentry's ingestion (Relay's StoreNormalizer, trimming on; sentry-relay here) holds each
context to a budget and trims what is over, often without a mark: a string cut mid-way,
the keys after it, the newest flags at the end of a list (see ``_bounds``). sentry-flags
cuts first, by its own rules. With hypothesis, against the installed sentry-relay:

(a) ``relay_size`` is never below what Relay counts, and a value it calls keepable comes
    out of Relay as it went in;
(b) a LaunchDarkly context of any size, bounded, comes out whole; kind and key are never
    cut; whatever is missing is listed (or counted) under ``_meta``;
(c) flag logs of any size and shape: ``flagEvaluations`` and ``flags`` come out whole, the
    newest flags in them, ``_meta.droppedFlags`` counting the oldest that went;
(d) end to end: a real LDClient evaluating random flags for a random context, the real
    sentry-sdk capturing (both majors run this file: tox sentry-next), the loopback
    receiver normalizing: nothing trimmed, dropped or changed.

Examples per property: ``SENTRY_FLAGS_RELAY_EXAMPLES`` (default 60; end to end a sixth).
With ``CI`` set they are derandomized.
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any, Callable, Optional

import pytest
import sentry_sdk
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from helpers import capture_error
from receivers import SentryReceiver
from sentry_flags._bounds import (
    MAX_VALUE_BYTES,
    TOO_LARGE,
    bound_context,
    relay_size,
)
from sentry_flags._context import ref_text
from sentry_flags._flags import FLAGS_KEY, MAX_FLAGS, SENTRY_FLAGS_KEY, FlagLog, flag_contexts, link_flag
from sentry_flags.testing.receivers.sentry import changed_paths

processing = pytest.importorskip("sentry_relay.processing")

LD_KEY = "launchdarklyContext"
NORMALIZER = processing.StoreNormalizer(project_id=1, enable_trimming=True)
EXAMPLES = int(os.environ.get("SENTRY_FLAGS_RELAY_EXAMPLES", "60"))
settings.register_profile(
    "sentry-flags-relay",
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
BOUNDED = settings.get_profile("sentry-flags-relay")
END_TO_END = settings(BOUNDED, max_examples=max(5, EXAMPLES // 6))


def relay_types_the_flags_context() -> bool:
    """Whether this sentry-relay has Sentry's ``flags`` schema (its 128 KiB budget, its flag
    names); 0.8.45, the newest for Python 3.9, treats it as any context (8 KiB)."""
    probe = {"message": "probe", "contexts": {"flags": {"values": [{"flag": 1, "result": True}]}}}
    return "_meta" in NORMALIZER.normalize_event(probe)


TYPED_FLAGS = relay_types_the_flags_context()


def normalized(contexts: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """``(contexts, _meta)`` of an error event with ``contexts`` after Relay."""
    event = {"message": "relay fit", "level": "error", "contexts": json.loads(json.dumps(contexts))}
    out = NORMALIZER.normalize_event(event)
    return out.get("contexts") or {}, out.get("_meta")


def assert_relay_keeps(contexts: dict[str, Any]) -> None:
    """Relay keeps each of ``contexts`` as sent, adding only its ``type``."""
    kept, meta = normalized(contexts)
    assert meta is None, json.dumps(meta)[:2000]
    for name, sent in contexts.items():
        assert changed_paths({**sent, "type": name}, kept.get(name)) == [], name


# -- values -----------------------------------------------------------------------------------

KEYS = st.text(max_size=12)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**70), max_value=2**70),  # some beyond what Relay keeps
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
    st.text(max_size=40),
    st.builds(lambda c, n: c * n, st.characters(), st.integers(0, 3000)),  # large, cheaply
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=30,
)


def relay_count(value: Any, depth: int) -> Optional[int]:
    """What Relay counts for ``value`` at ``depth`` in a context, read off the budget left
    for a long string after it; None when it does not fit in the reading."""
    wrapped: Any = value
    for _ in range(depth - 1):
        wrapped = {"A": wrapped}
    probe = {"A": wrapped, "zzzz": "x" * 9000}  # sorted after "A" and "type"
    kept, _ = normalized({LD_KEY: probe})
    left = len(kept[LD_KEY].get("zzzz") or "")
    if left == 0:
        return None
    return 8192 - len(LD_KEY) - 3 - left - 3 * (depth - 1)


@BOUNDED
@given(value=VALUES, depth=st.integers(1, 3))
def test_relay_never_counts_more_than_relay_size(value: Any, depth: int) -> None:
    ours = relay_size(value, depth)
    assume(ours < 6000)  # what is too large, or cut anyway, needs no exact count
    counted = relay_count(value, depth)
    assert counted is not None
    assert counted <= ours
    wrapped: Any = value
    for _ in range(depth - 1):
        wrapped = {"A": wrapped}
    assert_relay_keeps({LD_KEY: {"A": wrapped}})


@pytest.mark.parametrize(
    ("value", "counted"),
    [
        ("", 3),
        ("abc", 6),
        ("é😀", 9),  # UTF-8 bytes, not characters
        ('a"\\\n', 7),  # unescaped
        (True, 5),
        (False, 6),
        (None, 1),
        (0, 2),
        (-12345, 7),
        (1.0, 2),  # Rust prints 1.0 as "1"
        (0.1, 4),
        (1e20, 22),  # positional, never with an exponent
        (1.5e-7, 11),
        ([], 3),
        ({"a long key": "x"}, 7),  # keys cost nothing
        ([["a", True], {"k": None}], 3 + 3 + 4 + 5 + 3 + 1),
    ],
)
def test_relays_count_of_simple_values(value: Any, counted: int) -> None:
    # Exact on sentry-relay 0.10.1; 0.8.45 counts an integer again per enclosing object.
    assert relay_count(value, 1) == counted
    assert relay_size(value, 1) == counted + key_bytes(value)  # ours counts keys as well


def key_bytes(value: Any) -> int:
    if isinstance(value, dict):
        return sum(len(k.encode()) + key_bytes(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(key_bytes(v) for v in value)
    return 0


def test_relay_keeps_nothing_deeper_than_max_depth() -> None:
    # Relay turns an object or list deeper than 5 into a JSON string, silently: too large.
    deep: Any = {"x": 1}
    for _ in range(4):
        deep = {"k": deep}
    assert relay_size(deep, 1) < TOO_LARGE  # its innermost object is at depth 5
    assert relay_size({"k": deep}, 1) == TOO_LARGE
    kept, _ = normalized({LD_KEY: {"a": {"k": deep}}})
    assert isinstance(kept[LD_KEY]["a"]["k"]["k"]["k"]["k"]["k"], str)


# -- launchdarklyContext ---------------------------------------------------------------------

NAMES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30).filter(
    lambda n: n not in ("kind", "key", "anonymous", "_meta")
)
# LaunchDarkly's kinds. Not "type": Relay (0.10.1, not 0.8.45) replaces a context's "type" that is
# not a string with the context's name, so a multi-kind context's kind "type" is lost there.
KINDS = st.from_regex(r"[a-z][a-z0-9._-]{0,11}", fullmatch=True).filter(
    lambda k: k not in ("kind", "multi", "type")
)
LD_KEYS = st.text(min_size=1, max_size=256)
BIG_ATTRIBUTES = st.dictionaries(NAMES, VALUES, max_size=120)


@st.composite
def single_kind(draw: Any, *, kind: Optional[str] = None) -> dict[str, Any]:
    part: dict[str, Any] = {"key": draw(LD_KEYS)}
    if kind is not None:
        part["kind"] = kind
    if draw(st.booleans()):
        part["anonymous"] = True
    part.update(draw(BIG_ATTRIBUTES))
    if draw(st.booleans()):
        part["_meta"] = {"redactedAttributes": draw(st.lists(NAMES, min_size=1, max_size=5))}
    return part


@st.composite
def ld_contexts(draw: Any) -> dict[str, Any]:
    """A ``launchdarklyContext`` as ``_context.redact`` makes it: single or multi-kind."""
    if draw(st.booleans()):
        return draw(single_kind(kind=draw(KINDS)))
    kinds = draw(st.lists(KINDS, min_size=1, max_size=4, unique=True))
    context: dict[str, Any] = {"kind": "multi"}
    for kind in kinds:
        context[kind] = draw(single_kind())
    return context


def parts_of(context: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if context.get("kind") == "multi":
        return {k: v for k, v in context.items() if k != "kind"}
    return {"": context}


@BOUNDED
@given(context=ld_contexts(), limit=st.sampled_from([MAX_VALUE_BYTES, 1024, 100]))
def test_a_bounded_launchdarkly_context_comes_out_of_relay_whole(context: dict[str, Any], limit: int) -> None:
    original = copy.deepcopy(context)
    bounded = bound_context(context, limit)
    assert_relay_keeps({LD_KEY: bounded})
    metas = [p.get("_meta", {}) for p in parts_of(bounded).values()]
    event("unlisted cuts" if any("cutAttributesUnlisted" in m for m in metas) else "")
    event("cut" if any("cutAttributes" in m for m in metas) else "whole")
    for kind, before in parts_of(original).items():
        after = parts_of(bounded)[kind]
        meta = after.get("_meta", {})
        listed = set(meta.get("cutAttributes", []))
        for name in ("kind", "anonymous"):
            assert after.get(name) == before.get(name)  # never cut
        # Never left out; cut only when longer than a value may be (or Relay would change it).
        if after["key"] != before["key"]:
            assert "key" in listed
            assert len(after["key"].encode()) <= limit
        assert meta.get("redactedAttributes") == before.get("_meta", {}).get("redactedAttributes")
        attrs = [a for a in before if a not in ("kind", "key", "anonymous", "_meta")]
        missing = [a for a in attrs if a not in after]
        changed = [a for a in attrs if a in after and after[a] != before[a]]
        # What is missing or changed is listed; what the list has no room for, counted.
        unlisted = [a for a in missing if ref_text((a,)) not in listed]
        assert len(unlisted) == meta.get("cutAttributesUnlisted", 0)
        for attr in changed:
            assert ref_text((attr,)) in listed
            assert isinstance(before[attr], str)
            assert after[attr].endswith("...") or "\ufffd" in after[attr] or "?" in after[attr]
        assert listed - {"key"} <= {ref_text((a,)) for a in missing + changed}


def test_the_lead_s_measured_contexts_now_come_out_whole() -> None:
    # Measured with sentry-relay 0.10.1 before these bounds: Relay cut the string values of 80
    # 100-character attributes, a single 8160-character value, and the newest of 100 flags.
    eighty: dict[str, Any] = {"kind": "user", "key": "u-1", **{f"attr{i:02}": "v" * 100 for i in range(80)}}
    single = {"kind": "user", "key": "u-1", "bio": "b" * 8160}
    ints: dict[str, Any] = {"kind": "user", "key": "u-1", **{f"n{i}": i for i in range(20_000)}}
    for context in (eighty, single, ints):
        assert_relay_keeps({LD_KEY: bound_context(context)})


# -- flagEvaluations and flags ----------------------------------------------------------------


def sized_lists(elements: Any, most: int) -> Any:
    """Lists of up to ``most``, their length drawn evenly (hypothesis's own lists are short)."""
    return st.integers(0, most).flatmap(lambda n: st.lists(elements, min_size=n, max_size=n))


SOURCES = st.sampled_from(["launchdarkly", "openfeature", "split", "manual"])
FLAG_NAMES = st.one_of(
    st.from_regex(r"[a-zA-Z0-9._-]{1,60}", fullmatch=True),  # LaunchDarkly's keys
    st.text(min_size=1, max_size=250),  # anything an app or OpenFeature provider may use
)
REASONS = st.one_of(
    st.none(),
    st.sampled_from(["FALLTHROUGH", "TARGET_MATCH", "RULE_MATCH", "OFF", "STATIC"]),
    st.fixed_dictionaries(
        {"kind": st.just("ERROR"), "errorKind": st.sampled_from(["FLAG_NOT_FOUND", "WRONG_TYPE"])}
    ),
    st.text(max_size=300),
)
FLAG_VALUES = st.one_of(
    st.booleans(),
    st.sampled_from(["on", "off", "control"]),
    VALUES,
    st.builds(lambda c, n: c * n, st.characters(), st.integers(50, 3000)),  # JSON payloads, say
)
EVALUATION = st.tuples(
    SOURCES,
    FLAG_NAMES,
    FLAG_VALUES,
    st.one_of(st.none(), st.integers(0, 20)),
    st.one_of(st.none(), st.text(max_size=40)),
    REASONS,
)


def flag_log(evaluations: list[tuple[Any, ...]]) -> FlagLog:
    contexts: dict[str, Any] = {}
    for source, flag, value, variation, variant, reason in evaluations:
        link_flag(contexts, source, flag, value, variation, variant, reason)
    log = contexts[FLAGS_KEY]
    assert isinstance(log, FlagLog)
    return log


def latest_names(evaluations: list[tuple[Any, ...]]) -> list[str]:
    """The flags of the latest MAX_FLAGS (source, flag) pairs, oldest first: what we keep
    when nothing is too large."""
    seen: dict[tuple[str, str], None] = {}
    for source, flag, *_ in evaluations:
        seen.pop((source, flag), None)
        seen[(source, flag)] = None
    return [flag for _, flag in list(seen)[-MAX_FLAGS:]]


EXISTING_FLAGS = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "values": st.lists(
                st.fixed_dictionaries({"flag": FLAG_NAMES, "result": st.booleans()}), max_size=100
            )
        }
    ),
)


@BOUNDED
@given(
    evaluations=sized_lists(EVALUATION, 160),
    existing=EXISTING_FLAGS,
    limit=st.sampled_from([MAX_VALUE_BYTES, 1024, 100]),
)
def test_bounded_flag_contexts_come_out_of_relay_whole_the_newest_kept(
    evaluations: list[tuple[Any, ...]], existing: Optional[dict[str, Any]], limit: int
) -> None:
    assume(evaluations)
    log = flag_log(evaluations)
    found, flags = flag_contexts(log, copy.deepcopy(existing), limit)
    contexts = {FLAGS_KEY: found}
    if flags is not None and (TYPED_FLAGS or relay_size(flags, 0) < 8000):
        contexts[SENTRY_FLAGS_KEY] = flags  # sentry-relay 0.8 holds flags to 8 KiB, not 128
    assert_relay_keeps(contexts)

    names = [v["flag"] for v in found["values"]]
    latest = latest_names(evaluations)
    meta = found.get("_meta", {})
    event("oldest dropped" if meta.get("droppedFlags") else "all kept")
    event("values cut" if meta.get("cutValues") else "")
    # The newest survive: what went is the oldest, counted (a flag name Relay would change
    # cannot be sent at all: counted too).
    assert len(names) + meta.get("droppedFlags", 0) == len(latest)
    kept_in_order = iter(latest)
    assert all(name in kept_in_order for name in names)  # a subsequence of the latest
    if names:
        assert names[-1] == latest[-1] or not _keepable_name(latest[-1])
    for name in meta.get("cutValues", []):
        assert name in names

    if flags is not None:
        values = flags["values"]
        assert all(re.fullmatch(r"[a-zA-Z0-9_.:-]{0,200}", v["flag"]) for v in values)
        assert len(values) <= MAX_FLAGS
        assert "_meta" not in flags or flags["_meta"]["droppedFlags"] > 0


def _keepable_name(name: str) -> bool:
    return relay_size(name, 3) < TOO_LARGE


def test_100_flags_with_realistic_names_all_reach_sentry() -> None:
    # LaunchDarkly-style keys of ~30 characters, boolean and short string values: the latest
    # 100 fit Relay's 8 KiB (Relay itself kept 62 to 99 of such lists before these bounds).
    evaluations = [
        (
            "launchdarkly",
            f"checkout-redesign-{i:03}-experiment",
            i % 2 == 0 or f"v{i}",
            i % 3,
            None,
            "FALLTHROUGH",
        )
        for i in range(130)
    ]
    found, flags = flag_contexts(flag_log(evaluations), None)
    assert_relay_keeps({FLAGS_KEY: found, SENTRY_FLAGS_KEY: flags} if flags else {FLAGS_KEY: found})
    names = [v["flag"] for v in found["values"]]
    assert names == [f"checkout-redesign-{i:03}-experiment" for i in range(30, 130)]
    assert "_meta" not in found


# -- end to end ------------------------------------------------------------------------------


@END_TO_END
@given(
    context=ld_contexts(),
    flags=sized_lists(
        st.tuples(st.from_regex(r"[a-z][a-z0-9._-]{0,40}", fullmatch=True), FLAG_VALUES), 130
    ).map(lambda flags: list({name: (name, value) for name, value in flags}.values())),
)
def test_end_to_end_what_sentry_keeps_is_what_was_sent(
    context: dict[str, Any],
    flags: list[tuple[str, Any]],
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    ld_client: Any,
    ld_test_data: Any,
) -> None:
    from ldclient import Context

    from sentry_flags import FlagsIntegration

    ld_context = _ld_context(Context, context)
    assume(ld_context.valid)
    if sentry_sdk.get_client().get_integration(FlagsIntegration) is None:
        sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])
    sentry_receiver.clear()
    for name, value in flags:
        ld_test_data.update(ld_test_data.flag(name).variations(value, not value).variation_for_all(0))
    with sentry_sdk.isolation_scope():
        for name, _ in flags:
            ld_client.variation(name, ld_context, None)
        if not flags:
            from sentry_flags import set_launchdarkly_context

            set_launchdarkly_context(ld_context)
        capture_error("relay fit")
        sentry_sdk.flush(timeout=5)
    [sent] = sentry_receiver.wait_for_events(1)
    sentry_receiver.assert_ingestible(errors_only=False)
    if flags:
        names = [v["flag"] for v in sent["contexts"][FLAGS_KEY]["values"]]
        assert names == [name for name, _ in flags][-len(names) :]  # the newest
        dropped = sent["contexts"][FLAGS_KEY].get("_meta", {}).get("droppedFlags", 0)
        assert len(names) + dropped == min(len(flags), MAX_FLAGS)
        event("oldest dropped" if dropped else "all kept")
    context_meta = [p.get("_meta", {}) for p in parts_of(sent["contexts"][LD_KEY]).values()]
    event("context cut" if any("cutAttributes" in m for m in context_meta) else "context whole")


def _ld_context(context_type: Any, context: dict[str, Any]) -> Any:
    def build(kind: str, part: dict[str, Any]) -> Any:
        builder = context_type.builder(part["key"]).kind(kind)
        if part.get("anonymous"):
            builder.anonymous(True)
        for name, value in part.items():
            if name not in ("kind", "key", "anonymous", "_meta"):
                builder.set(name, value)
        return builder.build()

    if context.get("kind") == "multi":
        return context_type.create_multi(*(build(k, p) for k, p in context.items() if k != "kind"))
    return build(context["kind"], context)
