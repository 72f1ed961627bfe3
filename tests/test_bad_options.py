"""Every constructor option with wrong values: one table, across the whole public surface.

Issue 6, "Bad input": each wrong value fails when the object is built (never at the first
error, in production) with ``TypeError`` or ``ValueError`` whose message names the option
as the user wrote it (``ignoreErrors[1]`` in ``from_config``, ``forwarders[0]``,
``identities['user']``). Django's settings fail the Django way, with
``ImproperlyConfigured`` naming ``SENTRY_FLAGS``.

Covered: ``FlagsIntegration(...)`` and ``FlagsIntegration.from_config(...)``;
``SplitForwarder``, ``LaunchDarklyForwarder``, ``SegmentForwarder`` (on real clients in
their offline modes: splitio ``localhost``, LaunchDarkly ``offline=True``, Segment
``send=False``; LaunchDarkly's experimental ``AsyncLDClient`` offline, where the SDK has it)
and ``sentry_flags.testing.RecordingForwarder``; Flask's
``FlagsExtension``; the ASGI ``FlagsMiddleware``; Django's ``SENTRY_FLAGS`` setting;
``sentry_flags.celery.connect``. Missing checks are rows marked ``xfail(strict=True)``.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Optional

import pytest

pytest.importorskip("splitio")
pytest.importorskip("ldclient")
pytest.importorskip("segment.analytics")
pytest.importorskip("flask")
pytest.importorskip("django")
pytest.importorskip("starlette")
pytest.importorskip("celery")

import flask
import ldclient
from django.core.exceptions import ImproperlyConfigured
from ldclient.client import LDClient
from ldclient.config import Config
from segment.analytics import Client as SegmentClient
from splitio import get_factory

from sentry_flags import FlagsIntegration
from sentry_flags.forwarders import LaunchDarklyForwarder, SegmentForwarder, SplitForwarder
from sentry_flags.testing import RecordingForwarder

HUGE_INT = 10**400  # finite, but past what a float holds
SAME_FORWARDER = RecordingForwarder()
CLOSED_LOOP = asyncio.new_event_loop()  # a real loop; closed, as the check comes first anyway
CLOSED_LOOP.close()


# -- Real clients, offline --------------------------------------------------------------------


@dataclass
class Clients:
    split: Any
    launchdarkly: Any
    segment: Any
    launchdarkly_async: Any = None  # None: LD SDK < 9.20 or no aiohttp (its async extra)


def _offline_async_ld_client() -> Any:
    try:
        from ldclient.async_client import AsyncLDClient
        from ldclient.async_config import AsyncConfig
    except ImportError:
        return None
    # Never started: it opens nothing, so there is nothing to close.
    return AsyncLDClient(AsyncConfig("sdk-bad-options", offline=True))


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    """Real vendor clients that never touch the network."""
    split_file = tmp_path_factory.mktemp("split") / "splits.yaml"
    split_file.write_text("- checkout:\n    treatment: 'on'\n")
    factory = get_factory("localhost", config={"splitFile": str(split_file), "impressionsMode": "debug"})
    factory.block_until_ready(5)
    ld = LDClient(Config("sdk-bad-options", offline=True))
    segment = SegmentClient("write-key-bad-options", send=False)
    try:
        yield Clients(factory.client(), ld, segment, _offline_async_ld_client())
    finally:
        ld.close()
        destroyed = threading.Event()
        factory.destroy(destroyed)
        destroyed.wait(5)


class AsyncTrack:
    """splitio's asyncio client as far as SplitForwarder can tell: an async ``track``."""

    async def track(self, *args: Any, **kwargs: Any) -> bool:
        return True


class NoCallableTrack:
    track = 1


class AsyncLD:
    """Stands for the ``clients`` fixture's AsyncLDClient in a row (built where the SDK has it)."""

    def __repr__(self) -> str:
        return "AsyncLDClient()"


ASYNC_LD = AsyncLD()


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    pass


# -- How each target is built: valid defaults, then the row's options -------------------------


@pytest.fixture(scope="module")
def django_configured(tmp_path_factory: pytest.TempPathFactory) -> None:
    from django_project.settings import configure

    configure(str(tmp_path_factory.mktemp("django") / "db.sqlite3"))


def build_split(clients: Clients, options: dict[str, Any]) -> Any:
    client = options.pop("split_client", clients.split)
    return SplitForwarder(client, **options)


def build_launchdarkly(clients: Clients, options: dict[str, Any]) -> Any:
    client = options.pop("ld_client", clients.launchdarkly)
    if client is ASYNC_LD:
        if clients.launchdarkly_async is None:
            pytest.skip("this LD SDK has no AsyncLDClient (9.20+ with aiohttp)")
        client = clients.launchdarkly_async
    return LaunchDarklyForwarder(client, **options)


def build_segment(clients: Clients, options: dict[str, Any]) -> Any:
    client = options.pop("segment_client", clients.segment)
    return SegmentForwarder(client, **options)


def build_from_config(clients: Clients, options: dict[str, Any]) -> Any:
    config = options.pop("config")
    return FlagsIntegration.from_config(config, **options)


def build_flask(clients: Clients, options: dict[str, Any]) -> Any:
    from sentry_flags.flask import FlagsExtension

    return FlagsExtension(**options)


def build_flask_init_app(clients: Clients, options: dict[str, Any]) -> Any:
    from sentry_flags.flask import FlagsExtension

    return FlagsExtension().init_app(**options)


def build_asgi(clients: Clients, options: dict[str, Any]) -> Any:
    from sentry_flags.asgi import FlagsMiddleware

    app = options.pop("app", asgi_app)
    return FlagsMiddleware(app, **options)


def build_django(clients: Clients, options: dict[str, Any]) -> Any:
    from django.test import override_settings

    from sentry_flags.django import FlagsMiddleware

    with override_settings(SENTRY_FLAGS=options["SENTRY_FLAGS"]):
        return FlagsMiddleware(lambda request: None)


def build_celery(clients: Clients, options: dict[str, Any]) -> Any:
    import sentry_flags.celery

    try:
        sentry_flags.celery.connect(**options)
    finally:
        sentry_flags.celery.disconnect()


BUILDERS: dict[str, Callable[[Clients, dict[str, Any]], Any]] = {
    "FlagsIntegration": lambda clients, options: FlagsIntegration(**options),
    "from_config": build_from_config,
    "SplitForwarder": build_split,
    "LaunchDarklyForwarder": build_launchdarkly,
    "SegmentForwarder": build_segment,
    "RecordingForwarder": lambda clients, options: RecordingForwarder(**options),
    "flask.FlagsExtension": build_flask,
    "flask.FlagsExtension.init_app": build_flask_init_app,
    "asgi.FlagsMiddleware": build_asgi,
    "django.FlagsMiddleware": build_django,
    "celery.connect": build_celery,
}


# -- The table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """``target(**options)`` must raise exactly ``error``, with ``names`` and ``says`` in its message."""

    target: str
    options: dict[str, Any]
    error: type[Exception]
    names: str  # the option, as the user wrote it
    says: str = ""  # more of the message worth pinning
    xfail: Optional[str] = field(default=None, compare=False)

    def param(self) -> Any:
        marks = [pytest.mark.xfail(strict=True, reason=self.xfail)] if self.xfail else []
        return pytest.param(self, id=self.id, marks=marks)

    @property
    def id(self) -> str:
        shown = ",".join(f"{k}={_short(v)}" for k, v in self.options.items())
        return f"{self.target}:{shown}"


def _short(value: Any) -> str:
    if isinstance(value, int) and abs(value) > 10**12:
        return "10**400"
    if isinstance(value, str) and len(value) > 60 and len(set(value)) == 1:
        return f"{value[0]!r}*{len(value)}"  # "e" * 64 and "e" * 70 get ids of their own
    text = repr(value)
    text = re.sub(r"<(?:[\w]+\.)*(\w+) object at 0x[0-9a-f]+>", r"\1()", text)
    text = re.sub(r"<class '(?:[\w]+\.)*(\w+)'>", r"\1", text)
    return text if len(text) <= 60 else text[:57] + "..."


# What LaunchDarklyForwarder says of a client it cannot call track() on.
LD_CLIENT_EXPECTED = "ld_client must be an ldclient.LDClient or another client with a track() method"

FI, CFG = "FlagsIntegration", "from_config"
SPLIT, LD, SEG, REC = "SplitForwarder", "LaunchDarklyForwarder", "SegmentForwarder", "RecordingForwarder"
FLASK, FLASK_INIT, ASGI = "flask.FlagsExtension", "flask.FlagsExtension.init_app", "asgi.FlagsMiddleware"
DJANGO, CELERY = "django.FlagsMiddleware", "celery.connect"


def _environments_rows(target: str) -> list[Bad]:
    """``environments`` is shared by every forwarder (forwarders/_base.parse_environments)."""
    return [
        Bad(
            target,
            {"environments": "production"},
            TypeError,
            "environments",
            "environments must be None or a set",
        ),
        Bad(target, {"environments": b"production"}, TypeError, "environments"),
        Bad(target, {"environments": 5}, TypeError, "environments"),
        Bad(target, {"environments": []}, ValueError, "environments", "environments must not be empty"),
        Bad(target, {"environments": set()}, ValueError, "environments"),
        Bad(target, {"environments": [""]}, TypeError, "environments", "non-empty str"),
        Bad(target, {"environments": ["production", ""]}, TypeError, "environments", "non-empty str"),
        Bad(target, {"environments": [1]}, TypeError, "environments"),
        Bad(target, {"environments": [None]}, TypeError, "environments"),
    ]


BAD: list[Bad] = [
    # FlagsIntegration: pattern lists (ignore_errors, allow_urls, deny_urls, include_paths)
    Bad(FI, {"ignore_errors": "x"}, TypeError, "ignore_errors", "must be a list"),
    Bad(FI, {"ignore_errors": b"x"}, TypeError, "ignore_errors"),
    Bad(FI, {"ignore_errors": re.compile("x")}, TypeError, "ignore_errors"),
    Bad(FI, {"ignore_errors": 5}, TypeError, "ignore_errors"),
    Bad(FI, {"ignore_errors": {"ResizeObserver": True}}, TypeError, "ignore_errors"),
    Bad(FI, {"ignore_errors": [1]}, TypeError, "ignore_errors[0]"),
    Bad(FI, {"ignore_errors": ["ok", None]}, TypeError, "ignore_errors[1]"),
    Bad(FI, {"ignore_errors": [""]}, ValueError, "ignore_errors[0]", "must not be an empty string"),
    Bad(FI, {"allow_urls": "https://x"}, TypeError, "allow_urls"),
    Bad(FI, {"allow_urls": [b"x"]}, TypeError, "allow_urls[0]"),
    Bad(FI, {"allow_urls": ["ok", ""]}, ValueError, "allow_urls[1]"),
    Bad(FI, {"deny_urls": 3}, TypeError, "deny_urls"),
    Bad(FI, {"deny_urls": [re.compile(b"x")]}, TypeError, "deny_urls[0]", "must be a str pattern"),
    Bad(FI, {"deny_urls": [["nested"]]}, TypeError, "deny_urls[0]"),
    Bad(FI, {"include_paths": "src"}, TypeError, "include_paths"),
    Bad(FI, {"include_paths": [3.5]}, TypeError, "include_paths[0]"),
    Bad(FI, {"include_paths": [None]}, TypeError, "include_paths[0]"),
    # FlagsIntegration: settings
    Bad(FI, {"environment": ""}, TypeError, "environment"),
    Bad(FI, {"environment": "   "}, TypeError, "environment"),
    Bad(FI, {"environment": 1}, TypeError, "environment"),
    Bad(FI, {"environment": ["production"]}, TypeError, "environment"),
    Bad(FI, {"release": ""}, TypeError, "release"),
    Bad(FI, {"release": 2.0}, TypeError, "release"),
    Bad(FI, {"server_name": b"host"}, TypeError, "server_name"),
    Bad(FI, {"server_name": "  "}, TypeError, "server_name"),
    Bad(FI, {"logger": 0}, TypeError, "logger"),
    Bad(FI, {"logger": ""}, TypeError, "logger"),
    Bad(FI, {"release_from": "ftp:x"}, ValueError, "release_from", "unknown scheme"),
    Bad(FI, {"release_from": ""}, ValueError, "release_from"),
    Bad(FI, {"release_from": "env:"}, ValueError, "release_from", "names no env"),
    Bad(FI, {"release_from": "package:  "}, ValueError, "release_from", "names no package"),
    Bad(FI, {"release_from": "nodot"}, ValueError, "release_from"),
    Bad(FI, {"release_from": "a..b"}, ValueError, "release_from"),
    Bad(FI, {"release_from": " env:X"}, ValueError, "release_from"),
    Bad(FI, {"release_from": 3}, TypeError, "release_from"),
    Bad(FI, {"release_from": b"env:X"}, TypeError, "release_from"),
    Bad(FI, {"release_from": ["env:X"]}, TypeError, "release_from"),
    Bad(FI, {"debug": "yes"}, TypeError, "debug"),
    Bad(FI, {"debug": 1}, TypeError, "debug"),
    Bad(FI, {"debug": 0}, TypeError, "debug"),
    Bad(FI, {"debug": None}, TypeError, "debug"),
    # FlagsIntegration: LaunchDarkly client, forwarders, delivery
    Bad(FI, {"launchdarkly_client": object()}, TypeError, "launchdarkly_client"),
    Bad(FI, {"launchdarkly_client": "sdk-key"}, TypeError, "launchdarkly_client"),
    Bad(
        FI,
        {"launchdarkly_client": []},
        TypeError,
        "launchdarkly_client",
        "launchdarkly_client must be an ldclient.LDClient",
    ),
    Bad(FI, {"launchdarkly_client": ldclient}, TypeError, "launchdarkly_client"),  # the module, not .get()
    Bad(  # an async client that is not LaunchDarkly's: both accepted types are named
        FI,
        {"launchdarkly_client": AsyncTrack()},
        TypeError,
        "launchdarkly_client",
        "must be an ldclient.LDClient or an ldclient.async_client.AsyncLDClient",
    ),
    Bad(FI, {"forwarders": "x"}, TypeError, "forwarders"),
    Bad(FI, {"forwarders": 7}, TypeError, "forwarders"),
    Bad(FI, {"forwarders": {"split": 1}}, TypeError, "forwarders"),
    Bad(FI, {"forwarders": [object()]}, TypeError, "forwarders[0]"),
    Bad(FI, {"forwarders": [RecordingForwarder]}, TypeError, "forwarders[0]"),  # the class
    Bad(FI, {"forwarders": [RecordingForwarder(), None]}, TypeError, "forwarders[1]"),
    Bad(
        FI,
        {"forwarders": [SAME_FORWARDER, SAME_FORWARDER]},
        ValueError,
        "forwarders",
    ),
    Bad(FI, {"queue_size": 0}, ValueError, "queue_size"),
    Bad(FI, {"queue_size": -5}, ValueError, "queue_size"),
    Bad(FI, {"queue_size": 1.5}, ValueError, "queue_size"),
    Bad(FI, {"queue_size": True}, ValueError, "queue_size"),
    Bad(FI, {"queue_size": "100"}, ValueError, "queue_size"),
    Bad(FI, {"queue_size": None}, ValueError, "queue_size"),
    Bad(FI, {"max_forwarded_per_second": 0}, ValueError, "max_forwarded_per_second"),
    Bad(FI, {"max_forwarded_per_second": -1}, ValueError, "max_forwarded_per_second"),
    Bad(FI, {"max_forwarded_per_second": math.inf}, ValueError, "max_forwarded_per_second"),
    Bad(FI, {"max_forwarded_per_second": math.nan}, ValueError, "max_forwarded_per_second"),
    Bad(FI, {"max_forwarded_per_second": "10"}, ValueError, "max_forwarded_per_second"),
    Bad(FI, {"max_forwarded_per_second": True}, ValueError, "max_forwarded_per_second"),
    Bad(
        FI,
        {"max_forwarded_per_second": HUGE_INT, "forwarders": [RecordingForwarder()]},
        ValueError,
        "max_forwarded_per_second",
    ),
    Bad(FI, {"ignoreErrors": ["x"]}, TypeError, "ignoreErrors"),  # a from_config key as keyword
    # from_config: RudderStack keys name themselves, not our keywords
    Bad(CFG, {"config": None}, TypeError, "config", "config must be a mapping"),
    Bad(CFG, {"config": [("environment", "x")]}, TypeError, "config", "config must be a mapping"),
    Bad(CFG, {"config": "environment=prod"}, TypeError, "config", "config must be a mapping"),
    Bad(CFG, {"config": 3}, TypeError, "config", "config must be a mapping"),
    Bad(CFG, {"config": {"sampleRate": 1}}, ValueError, "sampleRate", "unknown config key"),
    Bad(CFG, {"config": {"ignore_errors": ["x"]}}, ValueError, "ignore_errors", "unknown config key"),
    Bad(CFG, {"config": {"environment": "prod", "dsn": "x"}}, ValueError, "dsn"),
    Bad(CFG, {"config": {1: "x"}}, ValueError, "1", "unknown config key"),
    Bad(CFG, {"config": {"ignoreErrors": "x"}}, TypeError, "ignoreErrors"),
    Bad(CFG, {"config": {"ignoreErrors": [1]}}, TypeError, "ignoreErrors[0]"),
    Bad(
        CFG,
        {"config": {"ignoreErrors": ["ok", "/(unclosed/i"]}},
        ValueError,
        "ignoreErrors[1]",
        "not a valid regex",
    ),
    Bad(
        CFG,
        {"config": {"ignoreErrors": ["//"]}},
        ValueError,
        "ignoreErrors[0]",
        "ignoreErrors[0] is an empty regex",
    ),
    Bad(
        CFG,
        {"config": {"ignoreErrors": ["ok", "/^Timeout/q"]}},
        ValueError,
        "ignoreErrors[1]",
        "ignoreErrors[1] '/^Timeout/q' is written as a regex, but 'q' is not a regex flag",
    ),
    Bad(
        CFG,
        {"config": {"denyUrls": ["/^/api(/v1)?/zq"]}},
        ValueError,
        "denyUrls[0]",
        "'q', 'z' are not regex",
    ),
    Bad(CFG, {"config": {"denyUrls": ["/[/"]}}, ValueError, "denyUrls[0]", "not a valid regex"),
    Bad(CFG, {"config": {"denyUrls": [""]}}, ValueError, "denyUrls[0]"),
    Bad(CFG, {"config": {"allowUrls": [{"url": "x"}]}}, TypeError, "allowUrls[0]"),
    Bad(CFG, {"config": {"allowUrls": ["/x/", "//"]}}, ValueError, "allowUrls[1]"),
    Bad(CFG, {"config": {"includePaths": "src"}}, TypeError, "includePaths"),
    Bad(CFG, {"config": {"includePaths": ["/a{2,1}/"]}}, ValueError, "includePaths[0]"),
    Bad(CFG, {"config": {"releaseFrom": "ftp:x"}}, ValueError, "releaseFrom"),
    Bad(CFG, {"config": {"releaseFrom": 3}}, TypeError, "releaseFrom"),
    # With release given too: named by the whole key, not as release's ("release_from ...").
    Bad(CFG, {"config": {"release": "1", "releaseFrom": "bogus"}}, ValueError, "releaseFrom 'bogus'"),
    Bad(CFG, {"config": {"release": "1", "releaseFrom": 3}}, TypeError, "releaseFrom must"),
    Bad(CFG, {"config": {"debugMode": "true"}}, TypeError, "debugMode"),
    Bad(CFG, {"config": {"debugMode": "false"}}, TypeError, "debugMode"),
    Bad(CFG, {"config": {"environment": ""}}, TypeError, "environment"),
    Bad(CFG, {"config": {"release": ""}}, TypeError, "release"),
    Bad(CFG, {"config": {"serverName": 1}}, TypeError, "serverName"),
    Bad(CFG, {"config": {"logger": 5}}, TypeError, "logger"),
    Bad(CFG, {"config": {"environment": "a"}, "environment": "b"}, ValueError, "environment", "given both"),
    Bad(CFG, {"config": {}, "queue_size": 0}, ValueError, "queue_size"),
    Bad(CFG, {"config": {}, "launchdarkly_client": 1}, TypeError, "launchdarkly_client"),
    Bad(CFG, {"config": {}, "forwarders": [1]}, TypeError, "forwarders[0]"),
    Bad(CFG, {"config": {}, "bogus": 1}, TypeError, "bogus"),
    # SplitForwarder
    Bad(SPLIT, {"split_client": None}, TypeError, "split_client"),
    Bad(SPLIT, {"split_client": object()}, TypeError, "split_client", "track()"),
    Bad(SPLIT, {"split_client": NoCallableTrack()}, TypeError, "split_client", "track()"),
    Bad(SPLIT, {"split_client": AsyncTrack()}, TypeError, "loop=", "asyncio client"),
    Bad(SPLIT, {"split_client": AsyncTrack(), "loop": "not a loop"}, TypeError, "loop"),
    Bad(SPLIT, {"loop": "not a loop"}, TypeError, "loop"),
    Bad(SPLIT, {"loop": CLOSED_LOOP}, TypeError, "loop", "only for splitio's asyncio client"),
    Bad(SPLIT, {"identities": "user.id"}, TypeError, "identities", "identities must be a mapping"),
    Bad(
        SPLIT,
        {"identities": [("user", "user.id")]},
        TypeError,
        "identities",
        "identities must be a mapping",
    ),
    Bad(SPLIT, {"identities": {}}, ValueError, "identities", "at least one"),
    Bad(SPLIT, {"identities": {"": "user.id"}}, TypeError, "identities", "traffic type"),
    Bad(SPLIT, {"identities": {1: "user.id"}}, TypeError, "identities", "traffic type"),
    Bad(
        SPLIT,
        {"identities": {"my user": "user.id"}},
        ValueError,
        "identities",
        "not a valid Split traffic type",
    ),
    Bad(
        SPLIT,
        {"identities": {"-user": "user.id"}},
        ValueError,
        "identities",
        "not a valid Split traffic type",
    ),
    Bad(
        SPLIT,
        {"identities": {"u" * 81: "user.id"}},
        ValueError,
        "identities",
        "not a valid Split traffic type",
    ),
    Bad(
        SPLIT,
        {"identities": {"User": "user.id", "user": "user.orgId"}},
        ValueError,
        "identities",
        "mapped twice",
    ),
    Bad(SPLIT, {"identities": {"user": ""}}, TypeError, "identities['user']", "dotted path"),
    Bad(SPLIT, {"identities": {"user": 5}}, TypeError, "identities['user']", "dotted path"),
    Bad(SPLIT, {"identities": {"user": ["user.id"]}}, TypeError, "identities['user']"),
    Bad(SPLIT, {"identities": {"user": "user..id"}}, ValueError, "identities['user']", "empty segment"),
    Bad(SPLIT, {"identities": {"user": "user.id."}}, ValueError, "identities['user']", "empty segment"),
    Bad(
        SPLIT,
        {"identities": {"user": "usr.id"}},
        ValueError,
        "identities['user']",
        "must start with one of",
    ),
    Bad(SPLIT, {"identities": {"user": "user"}}, ValueError, "identities['user']", "names the whole user"),
    Bad(SPLIT, {"identities": {"org": "data.error.tags"}}, ValueError, "identities['org']", "'tags.tenant'"),
    Bad(SPLIT, {"event_type": ""}, ValueError, "event_type"),
    Bad(SPLIT, {"event_type": "has space"}, ValueError, "event_type", "not a valid Split event type"),
    Bad(SPLIT, {"event_type": "_leading"}, ValueError, "event_type"),
    Bad(SPLIT, {"event_type": "e" * 81, "capture_culprit": False}, ValueError, "event_type"),
    Bad(
        SPLIT, {"event_type": "e" * 64, "capture_culprit": True}, ValueError, "event_type", "capture_culprit"
    ),
    Bad(
        SPLIT, {"event_type": "e" * 70, "capture_culprit": True}, ValueError, "event_type", "capture_culprit"
    ),
    Bad(SPLIT, {"event_type": 5}, TypeError, "event_type"),
    Bad(SPLIT, {"capture_culprit": "yes"}, TypeError, "capture_culprit"),
    Bad(SPLIT, {"include_tags": 1}, TypeError, "include_tags"),
    Bad(SPLIT, {"value": "1"}, TypeError, "value"),
    Bad(SPLIT, {"value": True}, TypeError, "value"),
    Bad(SPLIT, {"value": 1j}, TypeError, "value"),
    Bad(SPLIT, {"value": math.nan}, ValueError, "value", "finite"),
    Bad(SPLIT, {"value": -math.inf}, ValueError, "value", "finite"),
    Bad(SPLIT, {"value": HUGE_INT}, ValueError, "value", "finite"),
    Bad(SPLIT, {"value": Fraction(HUGE_INT, 3)}, ValueError, "value", "finite"),
    *_environments_rows(SPLIT),
    Bad(SPLIT, {"environments": {1}}, TypeError, "environments"),
    # LaunchDarklyForwarder
    *(
        Bad(LD, {"ld_client": client}, TypeError, "ld_client", LD_CLIENT_EXPECTED)
        for client in (None, object(), NoCallableTrack())
    ),
    Bad(LD, {"ld_client": ldclient}, TypeError, "ld_client"),  # the module: it has no track()
    Bad(LD, {"ld_client": ASYNC_LD}, TypeError, "loop=", "is an AsyncLDClient: pass loop="),
    Bad(LD, {"ld_client": ASYNC_LD, "loop": None}, TypeError, "loop="),
    Bad(LD, {"ld_client": ASYNC_LD, "loop": "not a loop"}, TypeError, "loop", "an asyncio event loop"),
    Bad(LD, {"ld_client": ASYNC_LD, "loop": asyncio}, TypeError, "loop"),  # the module
    Bad(LD, {"loop": CLOSED_LOOP}, TypeError, "loop", "only for ldclient.async_client.AsyncLDClient"),
    Bad(LD, {"loop": "not a loop"}, TypeError, "loop", "only for"),
    Bad(LD, {"ld_client": AsyncTrack(), "loop": CLOSED_LOOP}, TypeError, "loop", "only for"),
    Bad(LD, {"event_key": 42}, TypeError, "event_key", "event_key must be a str"),
    Bad(LD, {"event_key": None}, TypeError, "event_key"),
    Bad(LD, {"event_key": ""}, ValueError, "event_key", "event_key must be a non-empty"),
    Bad(LD, {"event_key": "   "}, ValueError, "event_key", "event_key must be a non-empty"),
    *_environments_rows(LD),
    # SegmentForwarder
    Bad(
        SEG,
        {"segment_client": None},
        TypeError,
        "segment_client",
        "segment_client must be a Segment client",
    ),
    Bad(SEG, {"segment_client": object()}, TypeError, "segment_client", "with a track() method"),
    Bad(SEG, {"segment_client": NoCallableTrack()}, TypeError, "segment_client"),
    Bad(
        SEG,
        {"max_per_second": 0},
        ValueError,
        "max_per_second",
        "max_per_second must be a finite number, at least 1",
    ),
    Bad(SEG, {"max_per_second": -5}, ValueError, "max_per_second"),
    Bad(SEG, {"max_per_second": 0.5}, ValueError, "max_per_second", "at least 1"),
    Bad(SEG, {"max_per_second": math.inf}, ValueError, "max_per_second", "finite"),
    Bad(SEG, {"max_per_second": math.nan}, ValueError, "max_per_second", "finite"),
    Bad(SEG, {"max_per_second": HUGE_INT}, ValueError, "max_per_second", "finite"),
    Bad(SEG, {"max_per_second": "200"}, TypeError, "max_per_second", "max_per_second must be a number"),
    Bad(SEG, {"max_per_second": None}, TypeError, "max_per_second"),
    Bad(SEG, {"max_per_second": True}, TypeError, "max_per_second"),
    Bad(SEG, {"event_name": ""}, ValueError, "event_name", "event_name must be a non-empty"),
    Bad(SEG, {"event_name": "   "}, ValueError, "event_name"),
    Bad(SEG, {"event_name": None}, TypeError, "event_name", "event_name must be a str"),
    Bad(SEG, {"event_name": b"Error Captured"}, TypeError, "event_name", "event_name must be a str"),
    Bad(SEG, {"event_name": "x" * 201}, ValueError, "event_name", "at most 200 characters"),
    *_environments_rows(SEG),
    # sentry_flags.testing.RecordingForwarder
    Bad(REC, {"environments": "production"}, TypeError, "environments"),
    Bad(REC, {"environments": []}, ValueError, "environments"),
    # Flask
    Bad(FLASK, {"context_from_request": "not callable"}, TypeError, "context_from_request"),
    Bad(FLASK, {"context_from_request": 42}, TypeError, "context_from_request"),
    Bad(
        FLASK,
        {"app": "app"},
        TypeError,
        "app",
    ),
    Bad(
        FLASK_INIT,
        {"app": None},
        TypeError,
        "app",
    ),
    # ASGI
    Bad(ASGI, {"context_from_scope": "not callable"}, TypeError, "context_from_scope"),
    Bad(ASGI, {"context_from_scope": 42}, TypeError, "context_from_scope"),
    Bad(
        ASGI,
        {"app": None},
        TypeError,
        "app",
    ),
    # Django: the SENTRY_FLAGS setting, read when the middleware loads
    Bad(DJANGO, {"SENTRY_FLAGS": ["CONTEXT"]}, ImproperlyConfigured, "SENTRY_FLAGS", "must be a dict"),
    Bad(
        DJANGO,
        {"SENTRY_FLAGS": "django_project.flags.context_for"},
        ImproperlyConfigured,
        "SENTRY_FLAGS",
        "must be a dict",
    ),
    Bad(
        DJANGO,
        {"SENTRY_FLAGS": {"CONTEXTS": "x.y"}},
        ImproperlyConfigured,
        "SENTRY_FLAGS",
        "unknown SENTRY_FLAGS key",
    ),
    Bad(  # the value is fine: the key alone is wrong
        DJANGO,
        {"SENTRY_FLAGS": {"CONTEXTS": "django_project.flags.context_for"}},
        ImproperlyConfigured,
        "SENTRY_FLAGS",
        "unknown SENTRY_FLAGS key",
    ),
    Bad(
        DJANGO,
        {"SENTRY_FLAGS": {1: "x.y"}},
        ImproperlyConfigured,
        "SENTRY_FLAGS",
        "unknown SENTRY_FLAGS key",
    ),
    Bad(
        DJANGO,
        {"SENTRY_FLAGS": {"CONTEXT": 42}},
        ImproperlyConfigured,
        'SENTRY_FLAGS["CONTEXT"]',
        "must be a callable",
    ),
    Bad(
        DJANGO,
        {"SENTRY_FLAGS": {"CONTEXT": "django_project.flags.not_callable"}},
        ImproperlyConfigured,
        'SENTRY_FLAGS["CONTEXT"]',
        "must be a callable",
    ),
    Bad(
        DJANGO,
        {"SENTRY_FLAGS": {"CONTEXT": "django_project.flags.missing"}},
        ImproperlyConfigured,
        'SENTRY_FLAGS["CONTEXT"]',
        "cannot import 'django_project.flags.missing'",
    ),
    Bad(
        DJANGO,
        {"SENTRY_FLAGS": {"CONTEXT": ""}},
        ImproperlyConfigured,
        'SENTRY_FLAGS["CONTEXT"]',
        "cannot import",
    ),
    Bad(
        DJANGO,
        {"SENTRY_FLAGS": {"CONTEXT": "nodots"}},
        ImproperlyConfigured,
        'SENTRY_FLAGS["CONTEXT"]',
        "cannot import",
    ),
    # Celery
    Bad(
        CELERY,
        {"attributes": "no"},
        TypeError,
        "attributes",
    ),
]


@pytest.mark.parametrize("bad", [row.param() for row in BAD])
def test_a_wrong_option_fails_at_construction_naming_it(request: pytest.FixtureRequest, bad: Bad) -> None:
    clients = request.getfixturevalue("clients")
    if bad.target == DJANGO:
        request.getfixturevalue("django_configured")
        assert bad.error is ImproperlyConfigured  # Django's way for a bad setting
    else:
        assert bad.error in (TypeError, ValueError)

    with pytest.raises(bad.error) as info:
        BUILDERS[bad.target](clients, dict(bad.options))

    assert type(info.value) is bad.error
    message = str(info.value)
    assert bad.names in message
    assert bad.says in message


def test_every_row_is_unique() -> None:
    seen = [(row.target, row.id) for row in BAD]
    assert len(seen) == len(set(seen))


# -- The defaults each row starts from are valid: a row fails for its own option only ----------


GOOD: dict[str, dict[str, Any]] = {
    FI: {},
    CFG: {"config": {}},
    SPLIT: {},
    LD: {},
    SEG: {},
    REC: {},
    FLASK: {},
    FLASK_INIT: {"app": flask.Flask("bad-options")},
    ASGI: {},
    DJANGO: {"SENTRY_FLAGS": {"CONTEXT": "django_project.flags.context_for"}},
    CELERY: {"attributes": False},
}


@pytest.mark.parametrize("target", sorted(GOOD))
def test_the_defaults_of_each_target_are_accepted(request: pytest.FixtureRequest, target: str) -> None:
    clients = request.getfixturevalue("clients")
    if target == DJANGO:
        request.getfixturevalue("django_configured")
    built = BUILDERS[target](clients, dict(GOOD[target]))
    close = getattr(built, "close", None)
    if isinstance(built, FlagsIntegration) and callable(close):
        close(0.5)


def test_every_target_has_rows() -> None:
    assert {row.target for row in BAD} == set(BUILDERS)


# -- Edge cases that are not plain rejections -----------------------------------------------------


@pytest.mark.parametrize("written", ["/boom/g", "/boom/gi"])
def test_a_javascript_regex_flag_is_not_silently_a_substring(written: str) -> None:
    try:
        integration = FlagsIntegration.from_config({"ignoreErrors": [written]})
    except ValueError as exc:
        rejected = str(exc)
    else:
        rejected = ""
    if rejected:
        assert "ignoreErrors[0]" in rejected
        return
    [ignore] = integration._filters
    assert ignore({"message": "boom"}) is None  # dropped: it was read as a regex


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"value": Fraction(3, 2)}, 1.5),
        ({"value": 10**300}, 1e300),
        ({"value": -0.0}, -0.0),
    ],
)
def test_split_value_edge_numbers_are_taken(
    clients: Clients, options: dict[str, Any], expected: float
) -> None:
    assert build_split(clients, dict(options)).value == expected


def test_pasted_identity_paths_still_work(clients: Clients) -> None:
    forwarder = build_split(clients, {"identities": {"user": "data.error.user.id", "org": "tags.org"}})
    assert dict(forwarder.identities) == {"user": ("user", "id"), "org": ("tags", "org")}


def test_an_async_launchdarkly_client_with_its_loop_is_accepted(clients: Clients) -> None:
    if clients.launchdarkly_async is None:
        pytest.skip("this LD SDK has no AsyncLDClient (9.20+ with aiohttp)")
    loop = asyncio.new_event_loop()
    try:
        forwarder = LaunchDarklyForwarder(clients.launchdarkly_async, loop=loop)
        assert forwarder.loop is loop
        # ... and for capture (the hook), where it needs no loop.
        FlagsIntegration(launchdarkly_client=clients.launchdarkly_async)
    finally:
        loop.close()


@pytest.mark.parametrize(
    "bad",
    [
        {"queue_size": 0},
        {"max_forwarded_per_second": -1},
        {"forwarders": ["not a forwarder"]},
        {"ignore_errors": [1]},
        {"release_from": "nowhere:x"},
    ],
)
def test_a_construction_that_raises_leaves_no_hook_on_the_launchdarkly_client(bad: dict[str, Any]) -> None:
    from helpers import ld_hooks

    ld = LDClient(Config("sdk-bad-options-hook", offline=True))
    try:
        with pytest.raises((TypeError, ValueError)):
            FlagsIntegration(launchdarkly_client=ld, **bad)
        assert ld_hooks(ld) == []  # every option is checked before the client is touched
        FlagsIntegration(launchdarkly_client=ld)
        assert len(ld_hooks(ld)) == 1
    finally:
        ld.close()
