"""ReleaseSource parsing/resolution and Privacy resolution from client options."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sentry_flags import ErrorView
from sentry_flags._privacy import (
    OUR_SENSITIVE_TERMS,
    KeyValueRule,
    Privacy,
    allows_user_info,
    sensitive_terms,
)
from sentry_flags._release import ReleaseSource


@pytest.mark.parametrize(
    ("value", "scheme", "name"),
    [
        ("env:APP_RELEASE", "env", "APP_RELEASE"),
        ("env: APP_RELEASE ", "env", "APP_RELEASE"),
        ("package:sentry-flags", "package", "sentry-flags"),
        ("myapp.__version__", "attr", "myapp.__version__"),
        ("a.b.c", "attr", "a.b.c"),
    ],
)
def test_parse(value: str, scheme: str, name: str) -> None:
    assert ReleaseSource.parse(value) == ReleaseSource(scheme, name)


@pytest.mark.parametrize(
    ("value", "error"),
    [("", ValueError), ("ftp:x", ValueError), ("env:", ValueError), ("nodots", ValueError),
     ("a..b", ValueError), ("1a.b", ValueError), (3, TypeError), (None, TypeError)],
)  # fmt: skip
def test_parse_rejects(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="release_from"):
        ReleaseSource.parse(value)


def test_resolve(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sentry_flags")
    monkeypatch.setenv("CORE_UNIT_RELEASE", " 1.2.3 ")
    monkeypatch.setenv("CORE_UNIT_EMPTY", "  ")
    assert ReleaseSource("env", "CORE_UNIT_RELEASE").resolve() == "1.2.3"
    assert ReleaseSource("attr", "logging.BASIC_FORMAT").resolve() == logging.BASIC_FORMAT
    assert ReleaseSource("env", "CORE_UNIT_EMPTY").resolve() is None
    assert ReleaseSource("package", "no-such-dist-core-unit").resolve() is None
    assert ReleaseSource("attr", "no_such_mod_core_unit.x").resolve() is None
    messages = [r.getMessage() for r in caplog.records if r.name == "sentry_flags"]
    assert len(messages) == 3
    assert all("release_from" in m for m in messages)


def test_privacy_from_send_default_pii() -> None:
    off = Privacy.from_options({})
    assert off == Privacy(user_info=False, query=KeyValueRule("off"), headers=KeyValueRule("denylist"))
    assert not off.query_values
    on = Privacy.from_options({"send_default_pii": True})
    assert on == Privacy(user_info=True, query=KeyValueRule("denylist"), headers=KeyValueRule("denylist"))


def test_privacy_from_data_collection_only_when_provided_by_user() -> None:
    # sentry-sdk 2.7x resolves a data_collection from send_default_pii too, and then follows
    # send_default_pii: so do we.
    resolved_from_pii = {
        "provided_by_user": False,
        "user_info": True,
        "url_query_params": {"mode": "denylist"},
    }
    assert (
        Privacy.from_options({"data_collection": resolved_from_pii, "send_default_pii": False}) == Privacy()
    )
    explicit = {
        "provided_by_user": True,
        "user_info": False,
        "url_query_params": {"mode": "off"},
        "http_headers": {"request": {"mode": "allowlist", "terms": ["User-Agent", ""]}},
        "cookies": {},
    }
    assert Privacy.from_options({"data_collection": explicit, "send_default_pii": True}) == Privacy(
        user_info=False, query=KeyValueRule("off"), headers=KeyValueRule("allowlist", ("user-agent",))
    )


def test_privacy_follows_a_data_collection_without_provided_by_user() -> None:
    # sentry-sdk 3.x: data_collection is the only setting, resolved without provided_by_user.
    resolved = {"user_info": True, "url_query_params": {"mode": "denylist", "terms": ["ref"]},
                "http_headers": {"request": {"mode": "off"}}}  # fmt: skip
    privacy = Privacy.from_options({"data_collection": resolved})
    assert privacy == Privacy(True, KeyValueRule("denylist", ("ref",)), KeyValueRule("off"))
    assert allows_user_info({"data_collection": resolved})
    assert not allows_user_info({"data_collection": {**resolved, "user_info": False}})
    # Left out: sentry-sdk's own defaults (user_info on, denylists).
    assert Privacy.from_options({"data_collection": {}}) == Privacy(
        True, KeyValueRule("denylist"), KeyValueRule("denylist")
    )


def test_privacy_reads_a_mode_it_does_not_know_as_off() -> None:
    odd = {"url_query_params": {"mode": "everything"}, "http_headers": {"request": "all"}}
    assert Privacy.from_options({"data_collection": odd}) == Privacy(
        True, KeyValueRule("off"), KeyValueRule("off")
    )
    with pytest.raises(ValueError, match="mode must be one of"):
        KeyValueRule("everything")


def test_a_key_value_rule_takes_its_terms_as_a_tuple_of_names() -> None:
    # Public (the query and headers of a Privacy): a str would be read letter by letter.
    for terms in ("page", ["page", 1], None):
        with pytest.raises(TypeError, match="terms must be a tuple of str"):
            KeyValueRule("allowlist", terms)  # type: ignore[arg-type]
    assert KeyValueRule("allowlist", ["Page", ""]) == KeyValueRule("allowlist", ("page",))
    # sentry-sdk's resolved options are read leniently, as ever.
    assert KeyValueRule.from_behaviour({"mode": "allowlist", "terms": ["page", 1]}).terms == ("page",)


@pytest.mark.parametrize(
    ("rule", "kept", "filtered"),
    [
        (KeyValueRule("off"), [], ["q", "page", "user-agent"]),
        (KeyValueRule("denylist"), ["q", "page", "user-agent", "referer"],
         ["token", "api_key", "SessionId", "code", "sig", "saml_response", "X-Identity"]),
        (KeyValueRule("denylist", ("page",)), ["q", "referer"], ["page", "Page_Size", "token"]),
        (KeyValueRule("allowlist", ("page", "q")), ["q", "page", "Page_Size"],
         ["user-agent", "referer", "q_token", "page_code"]),
    ],
)  # fmt: skip
def test_key_value_rule(rule: KeyValueRule, kept: list[str], filtered: list[str]) -> None:
    assert [k for k in kept if rule.keeps(k)] == kept
    assert [k for k in filtered if not rule.keeps(k)] == filtered


def test_sensitive_terms_are_sentry_sdks_own_and_ours() -> None:
    terms = sensitive_terms()
    assert set(OUR_SENSITIVE_TERMS) <= set(terms)
    data_collection = pytest.importorskip("sentry_sdk.data_collection")
    listed = getattr(data_collection, "_SENSITIVE_DENYLIST", None)
    if listed is None:
        pytest.skip("this sentry-sdk has data_collection without _SENSITIVE_DENYLIST")
    assert {t.lower() for t in listed} <= set(terms)


EVENT = {
    "request": {
        "url": "https://u:pw@shop.test/cart?q=1&token=t#frag",
        "query_string": "q=1&page=2&token=t",
        "headers": {"Referer": "https://shop.test/?ref=r&code=c#top", "User-Agent": "ua/1"},
    },
    "user": {"id": "u-1", "email": "e@example.com", "ip_address": "10.0.0.1", "segment": "b2b"},
}


def test_error_view_without_personal_data() -> None:
    view = ErrorView.build(EVENT, Privacy(), None)

    assert view.user == {"id": "u-1", "segment": "b2b"}
    assert view.url == "https://shop.test/cart"  # no credentials, no fragment, no query
    assert view.query is None
    assert view.referer == "https://shop.test/"
    assert view.user_agent == "ua/1"


def test_error_view_with_query_and_header_allowlists() -> None:
    privacy = Privacy(True, KeyValueRule("allowlist", ("q",)), KeyValueRule("allowlist", ("user-agent",)))

    view = ErrorView.build(EVENT, privacy, None)

    assert view.user == EVENT["user"]
    assert view.query == "q=1&page=%5BFiltered%5D&token=%5BFiltered%5D"
    assert view.url == "https://shop.test/cart?q=1&token=%5BFiltered%5D"
    assert view.referer is None  # not an allowed header
    assert view.user_agent == "ua/1"


def test_error_view_with_headers_off_and_a_query_denylist() -> None:
    privacy = Privacy(False, KeyValueRule("denylist", ("page",)), KeyValueRule("off"))

    view = ErrorView.build(EVENT, privacy, None)

    assert view.query == "q=1&page=%5BFiltered%5D&token=%5BFiltered%5D"
    assert view.referer is None
    assert view.user_agent is None
    # The Referer's query follows the query rule where the header passes.
    view = ErrorView.build(EVENT, Privacy(False, KeyValueRule("denylist"), KeyValueRule("denylist")), None)
    assert view.referer == "https://shop.test/?ref=r&code=%5BFiltered%5D"


def test_a_views_own_contexts_are_a_copy_made_once_per_object() -> None:
    # One dict held twice at every level: copied naively, 2**40 dicts; a cycle besides.
    shared: dict[str, Any] = {"leaf": 1}
    for _ in range(40):
        shared = {"a": shared, "b": shared}
    cyclic: dict[str, Any] = {"key": "u-1"}
    cyclic["self"] = cyclic
    event = {
        "event_id": "e" * 32,
        "contexts": {"launchdarklyContext": cyclic, "flagEvaluations": shared, "os": {"name": "Linux"}},
    }
    view = ErrorView.build(event, Privacy(), None)
    own = view.contexts["launchdarklyContext"]
    assert own is not cyclic
    assert own["self"] is own
    assert own["key"] == "u-1"
    copied = view.contexts["flagEvaluations"]
    assert copied is not shared
    assert copied["a"] is copied["b"]
    assert view.contexts["os"] is event["contexts"]["os"]  # not ours: the event's own, read-only
