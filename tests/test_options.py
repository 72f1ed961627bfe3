"""Good options, from_config, and malformed events that must never break the pipeline."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Callable

import pytest
import sentry_sdk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import by_summary, only_event, raise_and_capture, received, summaries
from receivers import SentryReceiver
from sentry_flags import FlagsIntegration
from sentry_flags._shape import is_error_event
from sentry_flags.testing import RecordingForwarder


@pytest.fixture(autouse=True)
def _own_isolation_scope() -> Any:
    with sentry_sdk.isolation_scope():
        yield


# -- good options (wrong ones, of every constructor, are in test_bad_options.py) ----------------


def test_good_options_are_accepted_in_any_iterable() -> None:
    integration = FlagsIntegration(
        ignore_errors=("a", re.compile("b")),
        allow_urls=iter(["x"]),
        deny_urls={"y"},
        include_paths=[],
        environment=" prod ",
        queue_size=1,
    )
    assert integration.environment == "prod"


# -- from_config: RudderStack keys -----------------------------------------------------------


def test_from_config_maps_every_rudderstack_key(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORE_CFG_RELEASE", "cfg-env@7")
    config = {
        "ignoreErrors": ["ignored-substring", "/^ValueError: code \\d+$/"],
        "denyUrls": ["/\\/INTERNAL\\//i"],
        "allowUrls": ["https://shop.test/"],
        "includePaths": ["/test_options\\.py$/"],
        "environment": "cfg-env",
        "release": "cfg@1",
        "releaseFrom": "env:CORE_CFG_RELEASE",
        "serverName": "cfg-host",
        "logger": "cfg-logger",
        "debugMode": False,
    }
    sentry_init(integrations=[FlagsIntegration.from_config(MappingProxyType(config))])

    assert raise_and_capture("has ignored-substring in it") is None
    assert raise_and_capture("code 17") is None
    assert (
        sentry_sdk.capture_event({"message": "denied", "request": {"url": "https://shop.test/internal/x"}})
        is None
    )
    assert (
        sentry_sdk.capture_event({"message": "not allowed", "request": {"url": "https://other.test/"}})
        is None
    )
    assert (
        sentry_sdk.capture_event({"message": "allowed", "request": {"url": "https://shop.test/cart"}})
        is not None
    )
    assert sentry_sdk.capture_message("no url, kept") is not None

    events = by_summary(received(sentry_receiver, 2))
    assert sorted(events) == ["allowed", "no url, kept"]
    for event in events.values():
        assert event["environment"] == "cfg-env"
        assert event["release"] == "cfg-env@7"  # releaseFrom wins over release when it resolves
        assert event["server_name"] == "cfg-host"
        assert event["logger"] == "cfg-logger"


def test_from_config_slashed_strings_are_regexes_with_flags(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(
        integrations=[
            FlagsIntegration.from_config(
                {"ignoreErrors": ["/^ValueError: case$/", "/^ValueError: ANY$/i", "plain/"]}
            )
        ]
    )

    assert raise_and_capture("case") is None
    assert raise_and_capture("any") is None  # /.../i is case-insensitive
    assert raise_and_capture("CASE") is not None  # /.../ without i is not
    assert raise_and_capture("ValueError: case, but not at the start") is not None
    assert raise_and_capture("a plain/ substring") is None  # not slashed on both ends: substring

    assert summaries(sentry_receiver, 2) == ["CASE", "ValueError: case, but not at the start"]


def test_slashed_strings_are_substrings_outside_from_config(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlagsIntegration(ignore_errors=["/boom/"])])

    assert raise_and_capture("boom") is not None
    assert raise_and_capture("path /boom/ failed") is None

    assert summaries(sentry_receiver, 1) == ["boom"]


def test_from_config_passes_keywords_json_cannot_hold() -> None:
    recorder = RecordingForwarder()
    integration = FlagsIntegration.from_config({"environment": "x"}, forwarders=[recorder], queue_size=5)
    assert integration.forwarders == (recorder,)
    integration.close(0.5)


def test_from_config_accepts_an_empty_mapping() -> None:
    assert isinstance(FlagsIntegration.from_config({}), FlagsIntegration)


# -- malformed events --------------------------------------------------------------------------

HUGE = "x" * 300_000

MALFORMED_EVENTS: list[Any] = [
    {},
    {"exception": "not a dict"},
    {"exception": {"values": "not a list"}},
    {"exception": {"values": None}},
    {"exception": {"values": [None, 1, "x", {"type": 5, "value": ["v"]}]}},
    {"exception": [{"type": "ListShaped", "value": "exception as a bare list"}]},
    {"exception": {"values": [{"type": "T", "value": "v", "stacktrace": "frames?"}]}},
    {"exception": {"values": [{"type": "T", "value": "v", "stacktrace": {"frames": {"a": 1}}}]}},
    {
        "exception": {
            "values": [{"type": "T", "value": "v", "stacktrace": {"frames": [None, 3, "f", [1], {}]}}]
        }
    },
    {
        "exception": {
            "values": [
                {
                    "type": "T",
                    "stacktrace": {
                        "frames": [{"abs_path": 7, "filename": None, "module": {"m": 1}, "in_app": "?"}]
                    },
                }
            ]
        }
    },
    {"threads": {"values": [{"stacktrace": {"frames": [None, {"abs_path": b"bytes"}]}}]}},
    {"threads": "nope"},
    {"request": "not a dict"},
    {"request": {"url": 12345}},
    {"request": {"url": None}},
    {"request": {"url": ["https://x.test/"]}},
    {"tags": [["a", "b"], ["c", "d"]]},
    {"tags": "k:v"},
    {"message": {"formatted": "message as a dict", "params": [1]}},
    {"message": ["list", "message"]},
    {"message": None, "logentry": "logentry as a str"},
    {"logentry": {"message": 5, "formatted": None}},
    {"logentry": []},
    {"contexts": "not a dict"},
    {"contexts": {"launchdarklyContext": "a plain string"}},
    {"contexts": {"launchdarklyContext": {"kind": "user", "key": "user-set-by-hand"}}},
    {"logger": 5, "environment": 1, "release": None, "server_name": []},
    {"type": "transaction"},
    {"type": None, "level": 3},
    {"message": HUGE, "exception": {"values": [{"type": HUGE, "value": HUGE}]}, "request": {"url": HUGE}},
    {
        "exception": {
            "values": [{"type": "T", "value": "v", "stacktrace": {"frames": [{"abs_path": HUGE}] * 50}}]
        }
    },
    {"\udcff": "lone surrogate key", "message": "\udcff\x00"},
    {1: "int key", None: "none key"},
]


@pytest.fixture
def composed(sentry_init: Callable[..., Any]) -> Any:
    """Our before_send composed around a user's, with every filter and setting active."""
    seen: list[Any] = []

    def user_before_send(event: Any, hint: Any) -> Any:
        seen.append(event)
        return event

    sentry_init(
        integrations=[
            FlagsIntegration(
                ignore_errors=["never-matches-anything-1", re.compile(r"^never-2$")],
                deny_urls=["never-matches-anything-3"],
                allow_urls=[re.compile("")],  # every URL is allowed
                include_paths=["never-matches-anything-4"],
                environment="flags-env",
                release="flags@1",
                server_name="flags-host",
                logger="flags-logger",
                forwarders=[RecordingForwarder()],
            )
        ],
        before_send=user_before_send,
    )
    before_send = sentry_sdk.get_client().options["before_send"]
    assert before_send is not user_before_send
    return before_send, seen


@pytest.mark.parametrize("event", MALFORMED_EVENTS, ids=range(len(MALFORMED_EVENTS)))
def test_malformed_event_passes_through_the_composed_before_send(composed: Any, event: Any) -> None:
    before_send, seen = composed
    result = before_send(event, {})
    assert result is event
    assert seen == [event]
    if is_error_event(event):
        assert event["environment"] == "flags-env"
    else:  # {"type": "transaction"}: not an error, passed on as it came
        assert "environment" not in event


@pytest.mark.parametrize("event", MALFORMED_EVENTS, ids=range(len(MALFORMED_EVENTS)))
def test_malformed_event_passes_through_with_a_malformed_hint(composed: Any, event: Any) -> None:
    before_send, _ = composed
    assert before_send(event, {"sentry_flags_ld_context": "not a Context", "exc_info": 5}) is event


# Shapes sentry-sdk itself accepts in capture_event (non-dict frames make its own
# handle_in_app raise before any before_send runs, so those go through the stage directly above).
CAPTURABLE = [
    {"message": "values not a list", "exception": {"values": "oops"}},
    {"message": "frames odd", "exception": {"values": [{"type": 5, "value": None, "stacktrace": {
        "frames": [{"abs_path": 7, "filename": None, "in_app": "?"}, {}]}}]}},
    {"message": "frames not a list", "exception": {"values": [{"type": "T", "stacktrace": {"frames": 0}}]}},
    {"message": "url a number", "request": {"url": 12345}},
    {"message": "tags as pairs", "tags": [["a", "b"]]},
    {"message": {"formatted": "message as dict"}},
    {"message": "huge " + "y" * 200_000},
    {"message": "logentry odd", "logentry": {"message": 5, "params": "x"}},
    {"message": "our context junk", "contexts": {"launchdarklyContext": ["x"]}},
]  # fmt: skip


@pytest.mark.parametrize("event", CAPTURABLE, ids=range(len(CAPTURABLE)))
def test_malformed_event_through_capture_event_is_sent(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, event: dict[str, Any]
) -> None:
    sentry_init(
        integrations=[
            FlagsIntegration(
                ignore_errors=["never-matches"],
                deny_urls=["never-matches"],
                include_paths=["never-matches"],
                environment="flags-env",
            )
        ]
    )

    assert sentry_sdk.capture_event(event) is not None

    sent = only_event(sentry_receiver)
    assert sent["environment"] == "flags-env"
    if sentry_receiver.normalizing and event.get("contexts", {}).get("launchdarklyContext") == ["x"]:
        # The app's own junk under our context's name goes through as it came; Sentry drops
        # it, as it would any app's.
        [problem] = sentry_receiver.ingest_problems()
        assert problem.path == ("contexts", "launchdarklyContext")
        sentry_receiver.strict = False


def test_a_failing_processor_is_skipped_and_the_event_still_sent(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, mocker: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(ignore_errors=["dropped"], environment="flags-env")])
    mocker.patch("sentry_flags._filters.error_texts", side_effect=RuntimeError("injected"))

    assert raise_and_capture("dropped") is not None  # the filter failed open

    assert only_event(sentry_receiver)["environment"] == "flags-env"


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
JSON_LIKE = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=25,
)
EVENT_KEYS = st.sampled_from(
    ["exception", "threads", "request", "message", "logentry", "tags", "contexts", "logger", "type",
     "environment", "release", "server_name", "event_id", "values", "stacktrace", "frames", "url",
     "abs_path", "filename", "module", "value", "formatted"]
)  # fmt: skip
EVENTS = st.dictionaries(EVENT_KEYS | st.text(max_size=8), JSON_LIKE, max_size=8)


SHAPED_EVENTS = st.fixed_dictionaries(
    {},
    optional={
        "exception": st.fixed_dictionaries(
            {},
            optional={
                "values": st.lists(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "type": JSON_LIKE,
                            "value": JSON_LIKE,
                            "stacktrace": st.fixed_dictionaries(
                                {},
                                optional={
                                    "frames": st.lists(
                                        st.dictionaries(
                                            st.sampled_from(["abs_path", "filename", "module", "in_app"]),
                                            JSON_LIKE,
                                        )
                                        | JSON_LIKE,
                                        max_size=4,
                                    )
                                },
                            )
                            | JSON_LIKE,
                        },
                    )
                    | JSON_LIKE,
                    max_size=3,
                )
                | JSON_LIKE
            },
        )
        | JSON_LIKE,
        "request": st.fixed_dictionaries({}, optional={"url": JSON_LIKE}) | JSON_LIKE,
        "message": JSON_LIKE,
        "logentry": st.fixed_dictionaries({}, optional={"message": JSON_LIKE, "formatted": JSON_LIKE})
        | JSON_LIKE,
        "logger": JSON_LIKE,
        "tags": JSON_LIKE,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=EVENTS | SHAPED_EVENTS)
def test_any_json_like_event_never_raises(composed: Any, event: dict[str, Any]) -> None:
    before_send, _ = composed
    result = before_send(event, {})
    assert result is None or isinstance(result, Mapping)
    assert result is event  # nothing here matches a filter, so everything passes on
