"""No silent failures: what goes wrong inside sentry-flags is counted and logged, never hidden.

A capture hook that fails lets the app's evaluation go on (LaunchDarkly's and OpenFeature's
hook runners would log it as the app's error otherwise), and says so: ``hook.failures`` and
a debug record with the traceback. A Sentry client sentry-flags could not set up sends its
events without our filters, settings, contexts and redaction: a warning, once, with why.
The failures are injected (pytest-mock); the SDKs around them are real.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import pytest
import sentry_sdk

from helpers import capture_error, ld_context_of, only_event
from receivers import SentryReceiver
from sentry_flags import FlagsIntegration, set_launchdarkly_context

FLAG = "checkout-v2"
INJECTED = "injected failure"

pytestmark = pytest.mark.usefixtures("own_isolation_scope")


def debug_failures(caplog: pytest.LogCaptureFixture, what: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "sentry_flags" and r.levelno == logging.DEBUG and r.getMessage().startswith(what)
    ]


@pytest.fixture
def flags(ld_test_data: Any) -> Any:
    ld_test_data.update(ld_test_data.flag(FLAG).variation_for_all(True))
    return ld_test_data


def test_a_launchdarkly_hook_failure_is_counted_and_logged_and_the_evaluation_goes_on(
    sentry_init: Callable[..., Any],
    make_ld_client: Callable[..., Any],
    flags: Any,
    mocker: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ldclient import Context

    from sentry_flags.launchdarkly import SentryFlagsPlugin, install_hook

    plugin = SentryFlagsPlugin()
    hooked = make_ld_client(update_processor_class=flags)
    plugged = make_ld_client(update_processor_class=flags, plugins=[plugin])
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=hooked)])
    hook = install_hook(hooked)
    assert hook is not None
    mocker.patch("sentry_flags.launchdarkly.link_flag", side_effect=RuntimeError(INJECTED))

    with caplog.at_level(logging.DEBUG, logger="sentry_flags"):
        assert hooked.variation(FLAG, Context.create("u-1"), False) is True
        assert plugged.variation(FLAG, Context.create("u-2"), False) is True
        assert plugged.variation(FLAG, Context.create("u-3"), False) is True

    assert (hook.failures, plugin.failures) == (1, 2)
    records = debug_failures(caplog, "sentry-flags LaunchDarkly hook failed")
    assert len(records) == 3
    assert all(r.exc_info is not None and str(r.exc_info[1]) == INJECTED for r in records)


def test_an_openfeature_hook_failure_is_counted_and_logged_and_the_evaluation_goes_on(
    openfeature_state: None, mocker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

    from sentry_flags.openfeature import SentryFlagsHook

    api.set_provider(InMemoryProvider({FLAG: InMemoryFlag("on", {"on": True, "off": False})}))
    hook = SentryFlagsHook()
    client = api.get_client()
    client.add_hooks([hook])
    mocker.patch("sentry_flags.openfeature.link_flag", side_effect=RuntimeError(INJECTED))

    with caplog.at_level(logging.DEBUG, logger="sentry_flags"):
        assert client.get_boolean_value(FLAG, False, EvaluationContext("u-1")) is True

    assert hook.failures == 1
    [record] = debug_failures(caplog, "sentry-flags OpenFeature hook failed")
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == INJECTED


def test_a_client_that_could_not_be_set_up_is_a_warning_once_with_the_reason(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    mocker: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ldclient import Context

    from sentry_flags import _sentry

    monkeypatch.setattr(_sentry, "_bind_warned", False)
    mocker.patch.object(FlagsIntegration, "_bind", side_effect=RuntimeError(INJECTED))

    with caplog.at_level(logging.DEBUG, logger="sentry_flags"):
        sentry_init(integrations=[FlagsIntegration(ignore_errors=["ignored"])])
        sentry_init(integrations=[FlagsIntegration(ignore_errors=["ignored"])])
    set_launchdarkly_context(Context.create("u-1"))
    capture_error("ignored, were it set up")

    warnings = [r for r in caplog.records if r.name == "sentry_flags" and r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"sentry-flags could not set up a Sentry client (RuntimeError: {INJECTED}): its events are "
        "sent without sentry-flags' filters, settings, flag contexts, frame-variable redaction "
        "and forwarding"
    ]
    assert len(debug_failures(caplog, "could not bind sentry-flags")) == 2  # with the traceback
    event = only_event(sentry_receiver)  # the client still sends, as the warning says
    assert ld_context_of(event) is None
    assert sentry_sdk.get_client().options["before_send"] is None
