"""Size limits of what we attach: cutting values, contexts and the flag contexts."""

from __future__ import annotations

import json
from typing import Any

from sentry_flags._bounds import (
    CONTEXT_BUDGET,
    MAX_LISTED_BYTES,
    MAX_VALUE_BYTES,
    bound_context,
    cut_text,
    cut_value,
    json_size,
    relay_size,
    type_reserve,
)


def test_json_size_is_what_sentry_sdk_encodes() -> None:
    value = {"a": "é", "b": [1, 2]}
    assert json_size(value) == len(json.dumps(value, separators=(",", ":")))


def test_what_cannot_be_encoded_counts_as_too_large() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert json_size(loop) > CONTEXT_BUDGET
    assert cut_value(loop) == (None, True)
    assert cut_value(10**5000) == (None, True)  # past Python's int-to-str digit limit


def test_cut_text_fits_the_limit_in_encoded_bytes_and_says_so() -> None:
    assert cut_text("short", 100) == "short"
    for text in ("a" * 5000, "é" * 5000, "😀" * 5000, '"\\' * 5000):
        cut = cut_text(text, 100)
        assert cut.endswith("...")
        assert json_size(cut) - 2 <= 100
        assert text.startswith(cut[:-3])


def test_cut_value_keeps_what_fits_and_leaves_out_large_objects() -> None:
    assert cut_value({"a": 1}) == ({"a": 1}, False)
    assert cut_value(None) == (None, False)
    cut, was_cut = cut_value("x" * (MAX_VALUE_BYTES + 1))
    assert was_cut
    assert cut.endswith("...")
    assert cut_value({"blob": "x" * MAX_VALUE_BYTES}) == (None, True)


def test_a_long_string_attribute_is_cut_in_place_and_listed() -> None:
    context = {"kind": "user", "key": "u", "bio": "b" * 10_000, "plan": "pro"}
    found = bound_context(context)
    assert found["bio"].endswith("...")
    assert json_size(found["bio"]) - 2 <= MAX_VALUE_BYTES
    assert found["plan"] == "pro"
    assert found["_meta"] == {"cutAttributes": ["bio"]}


def test_cuts_join_redactions_under_meta_and_refs_are_escaped() -> None:
    context = {"kind": "user", "key": "u", "a/b": "x" * 5000, "_meta": {"redactedAttributes": ["email"]}}
    found = bound_context(context)
    assert found["_meta"] == {"redactedAttributes": ["email"], "cutAttributes": ["a/b"]}
    context = {"kind": "user", "key": "u", "/x": {"big": "y" * 5000}}
    assert bound_context(context)["_meta"] == {"cutAttributes": ["/~1x"]}


def test_kind_key_and_anonymous_are_never_left_out() -> None:
    key = "k" * MAX_VALUE_BYTES  # as long as a value may be
    others = {f"a{i}": "x" * 2000 for i in range(6)}
    found = bound_context({"kind": "user", "key": key, "anonymous": True, **others})
    assert found["key"] == key
    assert found["anonymous"] is True
    assert found["kind"] == "user"
    assert "cutAttributes" in found["_meta"]  # the attributes went for them
    assert relay_size(found, 0) + type_reserve("launchdarklyContext") <= CONTEXT_BUDGET


def test_a_key_longer_than_a_value_may_be_is_cut_like_one_and_listed() -> None:
    # sentry-sdk (max_value_length) or Sentry's ingestion would cut it otherwise, unmarked
    # by us; a lone surrogate Relay would replace.
    found = bound_context({"kind": "user", "key": "k" * 50_000, "n": "x" * 100})
    assert found["key"] == "k" * (MAX_VALUE_BYTES - 3) + "..."
    assert found["n"] == "x" * 100
    assert found["_meta"] == {"cutAttributes": ["key"]}
    found = bound_context({"kind": "user", "key": "a\udcffb"}, 100)
    assert found["key"] == "a?b"
    assert found["_meta"] == {"cutAttributes": ["key"]}


def test_many_small_attributes_go_largest_first_until_the_total_fits() -> None:
    context: dict[str, Any] = {"kind": "user", "key": "u"}
    context.update({f"a{i:03}": "v" * (100 + i) for i in range(300)})
    found = bound_context(context)
    assert relay_size(found, 0) <= CONTEXT_BUDGET
    kept = {a for a in found if a.startswith("a")}
    listed = found["_meta"]["cutAttributes"]
    missing = {f"a{i:03}" for i in range(300)} - kept
    assert set(listed) <= missing
    # The list stops at MAX_LISTED_BYTES; the rest of what went is counted.
    assert relay_size(listed, 3) <= MAX_LISTED_BYTES + 3
    assert len(listed) + found["_meta"]["cutAttributesUnlisted"] == len(missing)
    assert min(int(a[1:]) for a in missing) > max(int(a[1:]) for a in kept)  # the largest went
    assert listed == sorted(listed, reverse=True)  # listed largest first


def test_attributes_too_small_to_list_are_counted_not_listed() -> None:
    # 20,000 small numbers: listing each name would cost more than the number it stands for.
    context: dict[str, Any] = {"kind": "user", "key": "u"}
    context.update({f"n{i}": i for i in range(20_000)})
    found = bound_context(context)
    assert relay_size(found, 0) <= CONTEXT_BUDGET
    meta = found["_meta"]
    kept = [a for a in found if a.startswith("n")]
    assert kept
    assert len(kept) + len(meta["cutAttributes"]) + meta["cutAttributesUnlisted"] == 20_000


def test_an_attribute_relay_would_replace_with_the_context_name_is_cut() -> None:
    # Relay gives a context without a string "type" its own: an attribute named so goes.
    found = bound_context({"kind": "user", "key": "u", "type": {"a": 1}, "plan": "pro"})
    assert "type" not in found
    assert found["_meta"] == {"cutAttributes": ["type"]}
    assert bound_context({"kind": "user", "key": "u", "type": "admin"})["type"] == "admin"
