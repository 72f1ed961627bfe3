"""How FlagsIntegration is wired into sentry-sdk: each client is bound where it is built.

sentry-sdk builds every client in ``_Client._init_impl`` (also when it rebuilds a pickled
one), so the stage follows where a client is *made*, not where it is *set*: a client that
is never made current, or captures while another one is current, still applies its own
filters, settings and privacy rules.
"""

from __future__ import annotations

import inspect
import pickle
import sys
from typing import Any, Callable

import pytest
import sentry_sdk
from sentry_sdk.client import _Client
from sentry_sdk.utils import event_from_exception

from helpers import (
    NO_PII_BASELINE,
    PRIVACY_OPTIONS,
    capture_error,
    exception_value,
    flush,
    ld_context_of,
    message_of,
    pii_options,
    raise_and_capture,
    received,
)
from receivers import SentryReceiver
from sentry_flags import FlagsIntegration, set_launchdarkly_context
from sentry_flags._stage import Stage
from sentry_flags.testing import RecordingForwarder

ldclient = pytest.importorskip("ldclient")
Context = ldclient.Context


@pytest.fixture(autouse=True)
def _own_scope(own_isolation_scope: None) -> None:
    pass


def make_client(dsn: str, *integrations: Any, **options: Any) -> Any:
    """A client as ``sentry_sdk.init`` builds one, but never made current; no personal data
    unless ``options`` say otherwise (as the ``sentry_init`` fixture)."""
    if not PRIVACY_OPTIONS & options.keys():
        options.update(NO_PII_BASELINE)
    return _Client(dsn=dsn, integrations=list(integrations), default_integrations=False, **options)


def event_of(exc_info: Any, client: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An event built from ``exc_info`` with ``client``'s options: 2.x takes them; 3.x reads
    the current client's (the same options here for what these tests check)."""
    if "client_options" in inspect.signature(event_from_exception).parameters:
        return event_from_exception(exc_info, client_options=client.options)
    return event_from_exception(exc_info)


def person() -> Any:
    return Context.builder("u-1").set("email", "ann@example.com").set("plan", "pro").build()


def test_a_client_is_bound_when_it_is_built(sentry_receiver: SentryReceiver) -> None:
    client = make_client(sentry_receiver.dsn, FlagsIntegration(environment="built-env"))
    try:
        assert isinstance(client.options["before_send"], Stage)
        assert client.options["environment"] == "built-env"
    finally:
        client.close(timeout=2)


def test_capture_event_on_a_client_that_is_never_current_applies_its_filters_and_settings(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init()  # the current client: no FlagsIntegration
    other = make_client(
        sentry_receiver.dsn, FlagsIntegration(ignore_errors=["noise"], environment="other-env")
    )
    try:
        assert other.capture_event({"message": "noise from a job"}) is None
        assert other.capture_event({"message": "kept"}) is not None
        other.flush(timeout=5)
        [event] = sentry_receiver.wait_for_events(1)
        assert message_of(event) == "kept"
        assert event["environment"] == "other-env"
    finally:
        other.close(timeout=2)


def test_the_capturing_clients_privacy_applies_when_another_client_is_current(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    # The current client allows PII; the capturing one does not. The LD context's email is
    # redacted by the rules of the client that sends the event, whichever one is current.
    sentry_init(integrations=[FlagsIntegration()], **pii_options(True))
    strict = make_client(sentry_receiver.dsn, FlagsIntegration(), **pii_options(False))
    set_launchdarkly_context(person())
    try:
        try:
            raise ValueError("captured by the strict client")
        except ValueError:
            event, hint = event_of(sys.exc_info(), strict)
            strict.capture_event(event, hint, scope=sentry_sdk.get_isolation_scope())
        capture_error("captured by the current client")
        strict.flush(timeout=5)
        events = {exception_value(e): e for e in received(sentry_receiver, 2)}
    finally:
        strict.close(timeout=2)
    assert ld_context_of(events["captured by the strict client"]) == {
        "kind": "user", "key": "u-1", "plan": "pro", "_meta": {"redactedAttributes": ["email"]},
    }  # fmt: skip
    assert ld_context_of(events["captured by the current client"]) == {
        "kind": "user", "key": "u-1", "email": "ann@example.com", "plan": "pro",
    }  # fmt: skip


def test_pickling_a_client_with_the_integration_gives_a_working_client(
    sentry_receiver: SentryReceiver,
) -> None:
    client = make_client(
        sentry_receiver.dsn,
        FlagsIntegration(ignore_errors=["noise"], environment="pickled-env", deny_urls=["/healthz"]),
        before_send=_record_before_send,
    )
    try:
        copy = pickle.loads(pickle.dumps(client))
    finally:
        client.close(timeout=2)
    try:
        integration = copy.get_integration(FlagsIntegration)
        assert integration is not None
        assert integration is not client.get_integration(FlagsIntegration)
        stage = copy.options["before_send"]
        assert isinstance(stage, Stage)
        assert stage.integration is integration
        assert stage.user_before_send is _record_before_send  # wrapped once, not twice
        sentry_sdk.get_current_scope().set_client(copy)
        set_launchdarkly_context(person())
        assert raise_and_capture("noise") is None
        capture_error("after unpickling")
        copy.flush(timeout=5)
        [event] = sentry_receiver.wait_for_events(1)
        assert exception_value(event) == "after unpickling"
        assert event["environment"] == "pickled-env"
        assert event["tags"]["before_send"] == "ran"
        assert ld_context_of(event) == {
            "kind": "user", "key": "u-1", "plan": "pro", "_meta": {"redactedAttributes": ["email"]},
        }  # fmt: skip
    finally:
        sentry_sdk.get_current_scope().set_client(None)
        copy.close(timeout=2)


def test_an_integration_from_config_pickles_with_its_regexes(sentry_receiver: SentryReceiver) -> None:
    integration = FlagsIntegration.from_config({"ignoreErrors": ["/^ValueError: noi[sz]e$/i", "plain"]})
    assert "_slashed_regex" not in inspect.signature(FlagsIntegration).parameters
    client = make_client(sentry_receiver.dsn, integration)
    try:
        copy = pickle.loads(pickle.dumps(client))
    finally:
        client.close(timeout=2)
    try:
        sentry_sdk.get_current_scope().set_client(copy)
        assert raise_and_capture("NOISE") is None  # still the regex, flag and all
        assert raise_and_capture("some plain text") is None
        capture_error("kept")
        copy.flush(timeout=5)
        [event] = sentry_receiver.wait_for_events(1)
        assert exception_value(event) == "kept"
    finally:
        sentry_sdk.get_current_scope().set_client(None)
        copy.close(timeout=2)


def _record_before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    event.setdefault("tags", {})["before_send"] = "ran"
    return event


def test_a_client_whose_integration_has_forwarders_fails_to_pickle_naming_them(
    sentry_receiver: SentryReceiver,
) -> None:
    client = make_client(sentry_receiver.dsn, FlagsIntegration(forwarders=[RecordingForwarder()]))
    try:
        with pytest.raises(TypeError, match=r"forwarders \(RecordingForwarder\) cannot be pickled"):
            pickle.dumps(client)
    finally:
        client.close(timeout=2)


def test_a_client_whose_integration_has_a_launchdarkly_client_fails_to_pickle_naming_it(
    sentry_receiver: SentryReceiver, ld_client: Any
) -> None:
    client = make_client(sentry_receiver.dsn, FlagsIntegration(launchdarkly_client=ld_client))
    try:
        with pytest.raises(TypeError, match="launchdarkly_client cannot be pickled"):
            pickle.dumps(client)
    finally:
        client.close(timeout=2)


def test_patterns_given_as_a_generator_survive_pickling(sentry_receiver: SentryReceiver) -> None:
    client = make_client(sentry_receiver.dsn, FlagsIntegration(ignore_errors=(p for p in ["noise"])))
    try:
        copy = pickle.loads(pickle.dumps(client))
    finally:
        client.close(timeout=2)
    try:
        assert copy.capture_event({"message": "noise"}) is None
    finally:
        copy.close(timeout=2)


def test_a_client_made_current_without_set_client_still_filters(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    # A framework copying scopes may assign scope.client directly; binding no longer
    # depends on how the client becomes current.
    sentry_init(integrations=[FlagsIntegration()])
    client = make_client(
        sentry_receiver.dsn, FlagsIntegration(ignore_errors=["late-dropped"], environment="late-env")
    )
    scope = sentry_sdk.get_current_scope()
    previous = scope.client
    scope.client = client  # bypasses set_client on purpose
    try:
        capture_error("kept")
        assert raise_and_capture("late-dropped") is None
    finally:
        scope.client = previous
    client.flush(timeout=5)
    [event] = received(sentry_receiver, 1)
    assert exception_value(event) == "kept"
    assert event["environment"] == "late-env"
    client.close(timeout=2)
    flush()


# -- without any FlagsIntegration ----------------------------------------------------------------

# A fresh process (our event processor is registered once per process, and this one has
# long had it): the plugin, the OpenFeature hook and set_launchdarkly_context store their
# values on the scope with no FlagsIntegration anywhere.
NO_INTEGRATION_APP = """
import sys
import sentry_sdk
from ldclient import Config, Context, LDClient
from ldclient.integrations.test_data import TestData
from sentry_flags import set_launchdarkly_context
from sentry_flags.launchdarkly import SentryFlagsPlugin

sentry_sdk.init(dsn=sys.argv[1], default_integrations=False, shutdown_timeout=5)
with sentry_sdk.isolation_scope():
    set_launchdarkly_context(Context.create("by-hand"))
    sentry_sdk.capture_message("set by hand", level="error")
ld = LDClient(Config("sdk-key", update_processor_class=TestData.data_source(), send_events=False,
                     plugins=[SentryFlagsPlugin()]))
with sentry_sdk.isolation_scope():
    ld.variation("checkout", Context.builder("evaluated").set("ssn", "1").private("ssn").build(), False)
    sentry_sdk.capture_message("evaluated", level="error")
try:
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from sentry_flags.openfeature import SentryFlagsHook
except ImportError:  # OpenFeature needs Python 3.9+ and the extra
    sentry_sdk.capture_message("through openfeature", level="error")
else:
    api.add_hooks([SentryFlagsHook()])
    with sentry_sdk.isolation_scope():
        api.get_client().get_boolean_value("checkout", False, EvaluationContext("of-user"))
        sentry_sdk.capture_message("through openfeature", level="error")
ld.close()
sentry_sdk.flush()
"""


def test_without_any_flags_integration_nothing_of_ours_reaches_sentry(
    sentry_receiver: SentryReceiver,
) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", NO_INTEGRATION_APP, sentry_receiver.dsn],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    events = received(sentry_receiver, 3)
    assert sorted(message_of(e) for e in events) == ["evaluated", "set by hand", "through openfeature"]
    for event in events:
        # Not even as {}: sentry-sdk would serialize what we stored, a dict subclass, so.
        assert not {"launchdarklyContext", "flagEvaluations"} & event.get("contexts", {}).keys()
