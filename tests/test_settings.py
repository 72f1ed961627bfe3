"""environment / release / release_from / server_name / logger / debug, on real envelopes."""

from __future__ import annotations

import importlib
import logging
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration

from helpers import (
    by_summary,
    flags_debug_messages,
    flush,
    only_event,
    raise_and_capture,
    received,
    sentry_flags_logger_restored,
    start_transaction,
    wait_for_transactions,
)
from receivers import SentryReceiver, wait_for
from sentry_flags import FlagsIntegration, set_launchdarkly_context

SDK_SETTINGS = {"environment": "sdk-env", "release": "sdk@1.0", "server_name": "sdk-host"}
OUR_SETTINGS = {"environment": "flags-env", "release": "flags@2.0", "server_name": "flags-host"}


@pytest.fixture(autouse=True)
def _own_isolation_scope() -> Any:
    with sentry_sdk.isolation_scope():
        yield


@pytest.fixture
def flags_logger() -> Iterator[logging.Logger]:
    with sentry_flags_logger_restored() as log:
        yield log


def settings_of(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: payload.get(key) for key in OUR_SETTINGS}


# -- environment / release / server_name -------------------------------------------------------


def test_our_settings_win_over_sentry_init_on_errors_and_messages(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlagsIntegration(**OUR_SETTINGS)], **SDK_SETTINGS)

    raise_and_capture("boom")
    sentry_sdk.capture_message("hello")

    for event in received(sentry_receiver, 2):
        assert settings_of(event) == OUR_SETTINGS


def test_sentry_init_settings_kept_when_we_set_none(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlagsIntegration(environment="flags-env")], **SDK_SETTINGS)

    raise_and_capture("boom")

    assert settings_of(only_event(sentry_receiver)) == {**SDK_SETTINGS, "environment": "flags-env"}


def test_our_settings_win_over_values_set_on_the_event(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlagsIntegration(**OUR_SETTINGS)])

    sentry_sdk.capture_event({"message": "preset", "environment": "e", "release": "r", "server_name": "s"})

    assert settings_of(only_event(sentry_receiver)) == OUR_SETTINGS


def test_our_settings_are_the_clients_options_transactions_and_sessions_show_them(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    client = sentry_init(
        integrations=[FlagsIntegration(**OUR_SETTINGS)], traces_sample_rate=1.0, **SDK_SETTINGS
    )
    assert {key: client.options[key] for key in OUR_SETTINGS} == OUR_SETTINGS

    with start_transaction("settings-tx"):
        pass
    [transaction] = wait_for_transactions(sentry_receiver)
    assert settings_of(transaction) == OUR_SETTINGS
    # 3.x streams spans: its trace header is on the span envelope.
    trace_header = next(
        e.headers for e in sentry_receiver.envelopes if e.items[0].type in ("transaction", "span")
    )
    assert trace_header["trace"]["environment"] == "flags-env"
    assert trace_header["trace"]["release"] == "flags@2.0"

    scope = sentry_sdk.get_isolation_scope()
    scope.start_session(session_mode="application")
    scope.end_session()
    flush()

    def session_attrs() -> Any:
        for item in sentry_receiver.items():
            if item.type in ("session", "sessions"):
                return item.json["attrs"]
        return None

    attrs = wait_for(session_attrs, message="a session envelope")
    assert attrs["release"] == "flags@2.0"
    assert attrs["environment"] == "flags-env"


# -- release_from -------------------------------------------------------------------------------


def test_release_from_env(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORE_TEST_RELEASE", "  env@3.1  ")
    sentry_init(integrations=[FlagsIntegration(release_from="env:CORE_TEST_RELEASE", release="fallback@0")])

    raise_and_capture("boom")

    assert only_event(sentry_receiver)["release"] == "env@3.1"


def test_release_from_package(sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver) -> None:
    client = sentry_init(
        integrations=[FlagsIntegration(release_from="package:sentry-flags")], release="sdk@1"
    )

    raise_and_capture("boom")

    assert only_event(sentry_receiver)["release"] == metadata.version("sentry-flags")
    assert client.options["release"] == metadata.version("sentry-flags")


def test_release_from_module_attribute(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"core_release_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("__version__ = 'attr@4.5.6'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        sentry_init(integrations=[FlagsIntegration(release_from=f"{name}.__version__")])
        raise_and_capture("boom")
        assert only_event(sentry_receiver)["release"] == "attr@4.5.6"
    finally:
        sys.modules.pop(name, None)


def _failure(read: Callable[[], object]) -> str:
    """How the reading failed, as the warning puts it (the text differs between Pythons)."""
    try:
        read()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError("it was read")


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("env:CORE_TEST_RELEASE_UNSET", lambda: "not set"),
        ("env:CORE_TEST_RELEASE_EMPTY", lambda: "empty"),
        (
            "package:no-such-distribution-core-test",
            lambda: _failure(lambda: metadata.version("no-such-distribution-core-test")),
        ),
        (
            "no_such_module_core_test.version",
            lambda: _failure(lambda: importlib.import_module("no_such_module_core_test")),
        ),
        (
            "logging.no_such_attribute_core_test",
            lambda: _failure(lambda: logging.no_such_attribute_core_test),  # type: ignore[attr-defined]
        ),
    ],
    ids=["env-unset", "env-empty", "package", "module", "attribute"],
)
def test_unreadable_release_from_falls_back_to_release_with_a_warning(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    source: str,
    why: Callable[[], str],
) -> None:
    monkeypatch.delenv("CORE_TEST_RELEASE_UNSET", raising=False)
    monkeypatch.setenv("CORE_TEST_RELEASE_EMPTY", " ")
    caplog.set_level(logging.WARNING, logger="sentry_flags")
    sentry_init(integrations=[FlagsIntegration(release_from=source, release="fallback@9")], release="sdk@1")

    raise_and_capture("boom")

    assert only_event(sentry_receiver)["release"] == "fallback@9"
    assert [r.getMessage() for r in caplog.records if r.name == "sentry_flags"] == [
        f"release_from {source!r} could not be read when the Sentry client started ({why()}); "
        "using release='fallback@9'"
    ]


def test_unresolvable_release_from_without_release_keeps_sentry_init_release(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("CORE_TEST_RELEASE_UNSET", raising=False)
    caplog.set_level(logging.WARNING, logger="sentry_flags")
    sentry_init(integrations=[FlagsIntegration(release_from="env:CORE_TEST_RELEASE_UNSET")], release="sdk@1")

    raise_and_capture("boom")

    assert only_event(sentry_receiver)["release"] == "sdk@1"
    assert [r.getMessage() for r in caplog.records if r.name == "sentry_flags"] == [
        "release_from 'env:CORE_TEST_RELEASE_UNSET' could not be read when the Sentry client started "
        "(not set); using sentry-sdk's own release"
    ]


def test_release_from_is_read_when_each_client_starts(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration = FlagsIntegration(release_from="env:CORE_TEST_RELEASE")
    monkeypatch.setenv("CORE_TEST_RELEASE", "first@1")
    sentry_init(integrations=[integration])
    raise_and_capture("first")
    flush()
    monkeypatch.setenv("CORE_TEST_RELEASE", "second@2")
    sentry_init(integrations=[integration])
    raise_and_capture("second")

    events = by_summary(received(sentry_receiver, 2))
    assert events["first"]["release"] == "first@1"
    assert events["second"]["release"] == "second@2"


# -- logger ----------------------------------------------------------------------------------


def test_logger_is_set_only_when_the_event_has_none(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(
        integrations=[
            FlagsIntegration(logger="checkout-service"),
            LoggingIntegration(event_level=logging.ERROR),
        ]
    )

    raise_and_capture("no logger")
    sentry_sdk.capture_message("message without logger")
    logging.getLogger("core_tests.payments").error("from logging")
    sentry_sdk.capture_event({"message": "explicit logger", "logger": "custom.logger"})

    events = by_summary(received(sentry_receiver, 4))
    assert events["no logger"]["logger"] == "checkout-service"
    assert events["message without logger"]["logger"] == "checkout-service"
    assert events["from logging"]["logger"] == "core_tests.payments"
    assert events["explicit logger"]["logger"] == "custom.logger"


# -- debug -------------------------------------------------------------------------------------


def test_debug_logs_drops_and_attached_contexts(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    caplog: pytest.LogCaptureFixture,
    flags_logger: logging.Logger,
) -> None:
    ldclient = pytest.importorskip("ldclient")
    # No caplog.set_level: debug=True must turn the sentry_flags logger on by itself.
    sentry_init(integrations=[FlagsIntegration(ignore_errors=["ignored"], deny_urls=["/denied"], debug=True)])
    assert flags_logger.getEffectiveLevel() == logging.DEBUG

    set_launchdarkly_context(ldclient.Context.builder("dbg").kind("org").build())
    assert raise_and_capture("ignored error") is None
    sentry_sdk.capture_event({"message": "bad url", "request": {"url": "https://x.test/denied"}})
    raise_and_capture("kept")
    only_event(sentry_receiver)

    messages = flags_debug_messages(caplog.records)
    assert any("dropped by ignore_errors" in m for m in messages), messages
    assert any("dropped by deny_urls" in m for m in messages), messages
    assert any("launchdarklyContext attached" in m and "org" in m for m in messages), messages


def test_without_debug_no_decisions_are_logged(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    caplog: pytest.LogCaptureFixture,
    flags_logger: logging.Logger,
) -> None:
    ldclient = pytest.importorskip("ldclient")
    caplog.set_level(logging.DEBUG, logger="sentry_flags")
    sentry_init(integrations=[FlagsIntegration(ignore_errors=["ignored"])])

    set_launchdarkly_context(ldclient.Context.create("quiet"))
    assert raise_and_capture("ignored error") is None
    raise_and_capture("kept")
    only_event(sentry_receiver)

    messages = flags_debug_messages(caplog.records)
    assert not [m for m in messages if "dropped by" in m or "attached" in m], messages
