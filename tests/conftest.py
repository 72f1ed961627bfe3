"""Shared fixtures: loopback receivers plus real vendor SDK clients aimed at them.

Vendor fixtures import their SDK through ``pytest.importorskip`` so the suite
still runs (and skips those tests) when an optional extra is not installed.
Every client/factory a fixture creates is closed at teardown, with bounded
waits, so no SDK thread keeps running into the next test.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import pytest

from helpers import (
    NO_PII_BASELINE,
    PRIVACY_OPTIONS,
    SEGMENT_WRITE_KEY,
    SPLIT_TEST_CONFIG,
    Receivers,
    destroy_split_factories,
    ld_test_settings,
    segment_client_options,
    started_split_factory,
)
from receivers import (
    LaunchDarklyReceiver,
    SegmentReceiver,
    SentryReceiver,
    SplitReceiver,
)

LD_SDK_KEY = "sdk-test-key"
SPLIT_SDK_KEY = "split-test-sdk-key"


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    # The receivers live on 127.0.0.1; a proxy from the environment would
    # either break that or send traffic off the machine.  sentry-sdk, requests
    # and ldclient each read the proxy variables in their own way.
    with pytest.MonkeyPatch.context() as mp:
        for name in ("http_proxy", "https_proxy", "all_proxy"):
            mp.delenv(name, raising=False)
            mp.delenv(name.upper(), raising=False)
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield


@pytest.fixture(autouse=True)
def _no_launchdarkly_client_remembered() -> None:
    # The private attributes of every LaunchDarkly client sentry-flags hooked apply to the
    # contexts no evaluation saw: each test starts as a process that has hooked none, so
    # that a client an earlier test left for the garbage collector does not redact here.
    # Not restored afterwards: the generation only ever grows, as in a real process.
    import weakref

    from sentry_flags import _context

    _context._client_redactions = weakref.WeakKeyDictionary()
    _context._generation += 1


@pytest.fixture
def fresh_private(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No private name stepped aside, counted or warned about yet in this process (another
    test's would hide this one's warning); sentry_flags' warnings captured (read them with
    ``helpers.warnings_about``)."""
    from collections import Counter

    from sentry_flags import _private

    monkeypatch.setattr(_private, "_counts", Counter())
    monkeypatch.setattr(_private, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="sentry_flags"):
        yield


# --------------------------------------------------------------------------
# Receivers (cheap: one thread and one socket each)


@pytest.fixture
def sentry_receiver() -> Iterator[SentryReceiver]:
    with SentryReceiver() as receiver:
        yield receiver


@pytest.fixture
def ld_receiver() -> Iterator[LaunchDarklyReceiver]:
    with LaunchDarklyReceiver() as receiver:
        yield receiver


@pytest.fixture
def split_receiver() -> Iterator[SplitReceiver]:
    with SplitReceiver() as receiver:
        yield receiver


@pytest.fixture
def segment_receiver() -> Iterator[SegmentReceiver]:
    with SegmentReceiver() as receiver:
        yield receiver


@pytest.fixture
def receivers(
    sentry_receiver: SentryReceiver,
    ld_receiver: LaunchDarklyReceiver,
    split_receiver: SplitReceiver,
    segment_receiver: SegmentReceiver,
) -> Receivers:
    """All four, for tests that drive every endpoint (the same ones the fixtures above give)."""
    return Receivers(sentry_receiver, ld_receiver, split_receiver, segment_receiver)


# --------------------------------------------------------------------------
# Sentry


@pytest.fixture
def sentry_init(sentry_receiver: SentryReceiver) -> Iterator[Callable[..., Any]]:
    """``sentry_init(**options)`` -> client, initialised against ``sentry_receiver``.

    Defaults: default integrations on, no tracing, no proxy, 2s shutdown
    timeout, no personal data (``helpers.NO_PII_BASELINE``: sentry-sdk 2.x's own
    default, ``data_collection`` saying so on 3.x, which collects user info by
    default) unless ``send_default_pii`` or ``data_collection`` is given; with
    ``sentry_defaults=True`` sentry-sdk's own privacy defaults instead.  Any
    keyword overrides them.  At teardown the client is flushed
    and closed and all scopes are reset so nothing bleeds into later tests.
    Note: integrations' ``setup_once`` runs once per process, not per test.
    """
    sentry_sdk = pytest.importorskip("sentry_sdk")

    def init(*, sentry_defaults: bool = False, **options: Any) -> Any:
        settings: dict[str, Any] = {
            "dsn": sentry_receiver.dsn,
            "default_integrations": True,
            "shutdown_timeout": 2,
            "http_proxy": "",
            "https_proxy": "",
        }
        if not sentry_defaults and not PRIVACY_OPTIONS & options.keys():
            settings.update(NO_PII_BASELINE)
        settings.update(options)
        sentry_sdk.init(**settings)
        return sentry_sdk.get_client()

    yield init

    sentry_sdk.get_client().close(timeout=2)
    for scope in (
        sentry_sdk.get_current_scope(),
        sentry_sdk.get_isolation_scope(),
        sentry_sdk.get_global_scope(),
    ):
        scope.set_client(None)
        scope.clear()


@pytest.fixture
def own_isolation_scope() -> Iterator[None]:
    """Run the test in a fresh isolation scope: users, tags and the LD context live there."""
    sentry_sdk = pytest.importorskip("sentry_sdk")
    with sentry_sdk.isolation_scope():
        yield


# --------------------------------------------------------------------------
# LaunchDarkly


@pytest.fixture
def ld_test_data() -> Any:
    """``ldclient.integrations.test_data.TestData`` feeding ``ld_client``'s flags."""
    test_data = pytest.importorskip("ldclient.integrations.test_data")
    return test_data.TestData.data_source()


@pytest.fixture
def make_ld_client(ld_receiver: LaunchDarklyReceiver) -> Iterator[Callable[..., Any]]:
    """``make_ld_client(**config_overrides)`` -> real LDClient aimed at ``ld_receiver``.

    Flags are polled from ``ld_receiver`` (``stream=False``) unless you pass
    ``update_processor_class`` (e.g. a TestData).  Events go to
    ``ld_receiver`` with a 0.1s flush interval.  Clients are closed at teardown.
    """
    pytest.importorskip("ldclient")
    from ldclient.client import LDClient
    from ldclient.config import Config

    clients: list[Any] = []

    def make(*, start_wait: float = 5, **overrides: Any) -> Any:
        settings = ld_test_settings(ld_receiver, **overrides)
        client = LDClient(Config(LD_SDK_KEY, **settings), start_wait=start_wait)
        clients.append(client)
        return client

    yield make

    for client in clients:
        client.close()


@pytest.fixture
def ld_client(make_ld_client: Callable[..., Any], ld_test_data: Any) -> Any:
    """Real LDClient: flags from ``ld_test_data``, events to ``ld_receiver``."""
    return make_ld_client(update_processor_class=ld_test_data)


# --------------------------------------------------------------------------
# Split


@pytest.fixture
def make_split_factory(split_receiver: SplitReceiver) -> Iterator[Callable[..., Any]]:
    """``make_split_factory(**config_overrides)`` -> real SplitFactory (not waited for).

    Streaming off, every URL on ``split_receiver``, 0.2s event push rate,
    impressions in DEBUG mode every 1s (the SDK's minimum).  Factories are
    destroyed at teardown, waiting (bounded) for the final flush.
    """
    pytest.importorskip("splitio")
    from splitio import get_factory

    factories: list[Any] = []

    def make(**config_overrides: Any) -> Any:
        config = {**SPLIT_TEST_CONFIG, **config_overrides}
        factory = get_factory(SPLIT_SDK_KEY, config=config, **split_receiver.factory_kwargs)
        factories.append(factory)
        return factory

    yield make

    destroy_split_factories(factories)


@pytest.fixture
def split_factory(make_split_factory: Callable[..., Any]) -> Any:
    """A ready SplitFactory against ``split_receiver``, its periodic tasks running."""
    return started_split_factory(make_split_factory())


@pytest.fixture
def split_client(split_factory: Any) -> Any:
    return split_factory.client()


# --------------------------------------------------------------------------
# Segment


@pytest.fixture
def make_segment_client(segment_receiver: SegmentReceiver) -> Iterator[Callable[..., Any]]:
    """``make_segment_client(**overrides)`` -> real ``segment.analytics.Client``.

    Asynchronous (``sync_mode=False``), uploads every 0.05s, few retries and
    short timeouts so failure-mode tests stay fast (options the installed release
    predates are left out: ``helpers.segment_client_options``).  Clients are shut down
    (flushed and joined) at teardown.
    """
    pytest.importorskip("segment.analytics")
    from segment.analytics import Client

    clients: list[Any] = []

    def make(**overrides: Any) -> Any:
        settings: dict[str, Any] = {
            "host": segment_receiver.host,
            "sync_mode": False,
            "upload_interval": 0.05,
            "max_retries": 1,
            "timeout": 2,
            "max_total_backoff_duration": 2,
            "max_rate_limit_duration": 2,
        }
        settings.update(overrides)
        client = Client(SEGMENT_WRITE_KEY, **segment_client_options(Client, settings))
        clients.append(client)
        return client

    yield make

    for client in clients:
        if client.consumers:
            # join() rather than shutdown(): shutdown's flush() waits on the queue
            # without a timeout, which would hang on a receiver told to hang.
            client.join()


@pytest.fixture
def segment_client(make_segment_client: Callable[..., Any]) -> Any:
    return make_segment_client()


# --------------------------------------------------------------------------
# OpenFeature


@pytest.fixture
def openfeature_state(own_isolation_scope: None) -> Iterator[None]:
    """OpenFeature's process-wide hooks and providers put back as they were after the test."""
    api = pytest.importorskip("openfeature.api")
    hooks = list(api.get_hooks())
    yield
    api.clear_hooks()
    api.add_hooks(hooks)
    api.clear_providers()
