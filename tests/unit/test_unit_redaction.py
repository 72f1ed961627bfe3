"""redact(): LaunchDarkly's event form of a Context, with private attributes removed."""

from __future__ import annotations

import pytest

pytest.importorskip("ldclient")

from ldclient import Context

from sentry_flags._context import NO_REDACTION, Redaction, parse_ref, redact


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("email", ("email",)),
        ("/email", ("email",)),
        ("/address/street", ("address", "street")),
        ("/a~1b", ("a/b",)),
        ("/a~0b", ("a~b",)),
        ("a/b", ("a/b",)),  # no leading slash: a literal name
        ("", None),
        ("/", None),
        ("/a//b", None),
        ("/a/", None),
    ],
)
def test_parse_ref(ref: str, parsed: object) -> None:
    assert parse_ref(ref) == parsed


def test_parse_ref_rejects_non_strings() -> None:
    assert parse_ref(None) is None  # type: ignore[arg-type]
    assert parse_ref(3) is None  # type: ignore[arg-type]


def test_single_kind_form() -> None:
    ctx = Context.builder("k").kind("org").set("tier", "gold").set("seats", 3).build()
    assert redact(ctx, NO_REDACTION, pii=False) == {"kind": "org", "key": "k", "tier": "gold", "seats": 3}


def test_multi_kind_form() -> None:
    ctx = Context.create_multi(Context.create("u"), Context.builder("o").kind("org").anonymous(True).build())
    assert redact(ctx, NO_REDACTION, pii=False) == {
        "kind": "multi",
        "user": {"key": "u"},
        "org": {"key": "o", "anonymous": True},
    }


def test_pii_attributes_depend_on_the_pii_flag() -> None:
    ctx = (
        Context.builder("k")
        .name("Ann")
        .set("email", "a@x.test")
        .set("ip", "1.2.3.4")
        .set("plan", "p")
        .build()
    )
    assert redact(ctx, NO_REDACTION, pii=False) == {
        "kind": "user",
        "key": "k",
        "plan": "p",
        "_meta": {"redactedAttributes": ["name", "email", "ip"]},
    }
    assert redact(ctx, NO_REDACTION, pii=True) == {
        "kind": "user",
        "key": "k",
        "name": "Ann",
        "email": "a@x.test",
        "ip": "1.2.3.4",
        "plan": "p",
    }


def test_nested_refs_remove_only_the_nested_key_at_any_depth() -> None:
    ctx = (
        Context.builder("k")
        .set("address", {"street": "s", "city": "c", "geo": {"lat": 1, "lng": 2}})
        .set("street", "top-level stays")
        .build()
    )
    redaction = Redaction.from_refs(False, ["/address/street", "/address/geo/lat", "/missing/x", "/street/x"])
    assert redact(ctx, redaction, pii=True) == {
        "kind": "user",
        "key": "k",
        "address": {"city": "c", "geo": {"lng": 2}},
        "street": "top-level stays",
        "_meta": {"redactedAttributes": ["/address/street", "/address/geo/lat"]},
    }


def test_refs_with_escapes() -> None:
    ctx = Context.builder("k").set("a/b", 1).set("c", {"d~e": 2, "f": 3}).build()
    out = redact(ctx, Redaction.from_refs(False, ["/a~1b", "/c/d~0e"]), pii=True)
    assert out == {
        "kind": "user",
        "key": "k",
        "c": {"f": 3},
        "_meta": {"redactedAttributes": ["a/b", "/c/d~0e"]},
    }


def test_all_private_keeps_kind_key_anonymous() -> None:
    ctx = Context.builder("k").anonymous(True).name("N").set("x", 1).build()
    assert redact(ctx, Redaction(all_private=True), pii=True) == {
        "kind": "user",
        "key": "k",
        "anonymous": True,
        "_meta": {"redactedAttributes": ["name", "x"]},
    }


def test_context_private_attributes_add_to_the_clients() -> None:
    ctx = Context.builder("k").set("a", 1).set("b", 2).set("c", 3).private("b").build()
    out = redact(ctx, Redaction.from_refs(False, ["a"]), pii=True)
    assert out == {"kind": "user", "key": "k", "c": 3, "_meta": {"redactedAttributes": ["a", "b"]}}


def test_redaction_from_client_tolerates_foreign_objects() -> None:
    class NoConfig:
        pass

    class BadConfig:
        _config = object()

    class Config:
        private_attributes = ("email", "/a/b", "", "/")
        all_attributes_private = 1

    class Client:
        _config = Config()

    assert Redaction.from_client(NoConfig()) == NO_REDACTION
    assert Redaction.from_client(BadConfig()) == NO_REDACTION
    assert Redaction.from_client(Client()) == Redaction(True, (("email",), ("a", "b")))
