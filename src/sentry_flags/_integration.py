"""FlagsIntegration: options, validation and the wiring into each Sentry client.

sentry-sdk calls ``setup_once`` once per process while apps and tests call ``init`` many
times, so everything per-client (our before_send stage, the settings, the privacy rules) is
bound to each client as it is set on a scope, and checked again at event time.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional

import sentry_sdk
from sentry_sdk.integrations import Integration
from sentry_sdk.integrations.logging import ignore_logger
from sentry_sdk.scope import Scope, add_global_event_processor

from sentry_flags._context import (
    CONTEXT_KEY,
    HINT_KEY,
    NO_REDACTION,
    ContextSlot,
    Redaction,
    redact,
)
from sentry_flags._delivery import DEFAULT_MAX_PER_SECOND, DEFAULT_QUEUE_SIZE, Delivery
from sentry_flags._filters import (
    AllowUrls,
    ApplySettings,
    DenyUrls,
    IgnoreErrors,
    IncludePaths,
    Processor,
)
from sentry_flags._patterns import compile_patterns
from sentry_flags._privacy import Privacy
from sentry_flags._release import ReleaseSource
from sentry_flags._shape import Event, is_error_event

if TYPE_CHECKING:
    from sentry_flags.forwarders._base import Forwarder

logger = logging.getLogger("sentry_flags")

BeforeSend = Callable[[Event, dict[str, Any]], Optional[Event]]

FLUSH_SHARE = 2.0  # seconds of a Sentry flush we may spend draining the vendors

# Errors the vendor SDKs log become Sentry events through sentry-sdk's logging integration;
# forwarding those to the failing vendor would feed the failure back into itself.
VENDOR_LOGGERS = ("splitio", "ldclient", "segment", "analytics", "backoff", "sentry_flags")

CONFIG_KEYS = {
    "ignoreErrors": "ignore_errors",
    "allowUrls": "allow_urls",
    "denyUrls": "deny_urls",
    "includePaths": "include_paths",
    "environment": "environment",
    "release": "release",
    "releaseFrom": "release_from",
    "serverName": "server_name",
    "logger": "logger",
    "debugMode": "debug",
}


def _optional_str(option: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{option} must be a non-empty str or None, got {value!r}")
    return value.strip()


class FlagsIntegration(Integration):
    """Flag context on every error, RudderStack-style settings, and vendor forwarding."""

    identifier = "sentry_flags"

    def __init__(
        self,
        *,
        launchdarkly_client: Any = None,
        ignore_errors: Optional[Iterable[Any]] = None,
        allow_urls: Optional[Iterable[Any]] = None,
        deny_urls: Optional[Iterable[Any]] = None,
        include_paths: Optional[Iterable[Any]] = None,
        environment: Optional[str] = None,
        release: Optional[str] = None,
        release_from: Optional[str] = None,
        server_name: Optional[str] = None,
        logger: Optional[str] = None,
        debug: bool = False,
        forwarders: Optional[Iterable[Forwarder]] = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_forwarded_per_second: Optional[float] = DEFAULT_MAX_PER_SECOND,
        _slashed_regex: bool = False,
    ) -> None:
        if not isinstance(debug, bool):
            raise TypeError(f"debug must be a bool, got {debug!r}")
        self.debug = debug
        self.environment = _optional_str("environment", environment)
        self.release = _optional_str("release", release)
        self.server_name = _optional_str("server_name", server_name)
        self.logger = _optional_str("logger", logger)
        self.release_from = None if release_from is None else ReleaseSource.parse(release_from)
        patterns = {
            name: compile_patterns(name, value, slashed_regex=_slashed_regex)
            for name, value in (
                ("ignore_errors", ignore_errors),
                ("allow_urls", allow_urls),
                ("deny_urls", deny_urls),
                ("include_paths", include_paths),
            )
        }
        self._filters: tuple[Processor, ...] = tuple(
            proc
            for proc in (
                IgnoreErrors(patterns["ignore_errors"]),
                DenyUrls(patterns["deny_urls"]),
                AllowUrls(patterns["allow_urls"]),
                IncludePaths(patterns["include_paths"]),
            )
            if proc.matcher
        )
        self.redaction = NO_REDACTION
        self.launchdarkly_client = launchdarkly_client
        if launchdarkly_client is not None:
            self.redaction = _hook_launchdarkly(launchdarkly_client)
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be a positive int, got {queue_size!r}")
        rate = max_forwarded_per_second
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < math.inf
        ):
            raise ValueError(f"max_forwarded_per_second must be a positive number or None, got {rate!r}")
        if rate is not None:
            try:
                rate = float(rate)
            except OverflowError:  # an int past the float range
                raise ValueError(f"max_forwarded_per_second must be a finite number, got {rate!r}") from None
        self.forwarders = _check_forwarders(forwarders)
        self.delivery = (
            Delivery(self.forwarders, queue_size=queue_size, max_per_second=rate)
            if self.forwarders
            else None
        )
        self._pipeline: tuple[Processor, ...] = self._filters
        self._bind_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kwargs: Any) -> FlagsIntegration:
        """Build from RudderStack-style keys (``ignoreErrors``, ``denyUrls``, ``debugMode``...).

        Strings written ``/pattern/`` or ``/pattern/i`` are regexes. ``kwargs`` pass the
        options JSON cannot hold (``launchdarkly_client``, ``forwarders``).
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")
        unknown = sorted(str(k) for k in config if k not in CONFIG_KEYS)
        if unknown:
            raise ValueError(
                f"unknown config key(s) {', '.join(unknown)}: expected {', '.join(CONFIG_KEYS)}"
            )
        options = {CONFIG_KEYS[k]: v for k, v in config.items()}
        clash = sorted(set(options) & set(kwargs))
        if clash:
            raise ValueError(f"option(s) {', '.join(clash)} given both in config and as keywords")
        try:
            return cls(**options, **kwargs, _slashed_regex=True)
        except (TypeError, ValueError) as exc:
            # Name the key the user wrote ("denyUrls[0] ..."), not our keyword.
            message = str(exc)
            for key, option in CONFIG_KEYS.items():
                if key in config and message.startswith(option):
                    raise type(exc)(key + message[len(option) :]) from None
            raise

    @staticmethod
    def setup_once() -> None:
        add_global_event_processor(_process_event)  # type: ignore[arg-type]
        _patch_sentry()
        ignore_logger("sentry_flags")
        # Registered before sentry-sdk's own atexit handler, so it runs after Sentry's
        # close (which already drained us through flush); it matters when the app
        # disabled the default integrations.
        atexit.register(_flush_at_exit)

    # -- per client -----------------------------------------------------------------------

    def bind(self, client: Any) -> _Stage:
        """Compose our stage around the client's before_send; idempotent per client."""
        options = client.options
        current = options.get("before_send")
        if isinstance(current, _Stage) and current.integration is self:
            return current
        with self._bind_lock:
            current = options.get("before_send")
            if isinstance(current, _Stage) and current.integration is self:
                return current
            release = self.release_from.resolve() if self.release_from else None
            release = release or self.release
            for key, value in (
                ("environment", self.environment),
                ("release", release),
                ("server_name", self.server_name),
            ):
                if value is not None:
                    options[key] = value
            settings = ApplySettings(self.environment, release, self.server_name, self.logger)
            pipeline = (*self._filters, settings)
            stage = _Stage(self, current, Privacy.from_options(options), pipeline)
            options["before_send"] = stage
            options["custom_repr"] = _redacting_repr(options.get("custom_repr"), self, stage.privacy)
            if self.debug:
                _enable_debug_logging()
                logger.debug("sentry-flags bound to a Sentry client (%d processors)", len(pipeline))
            return stage

    def attach_context(self, event: Event, hint: dict[str, Any], stage: _Stage) -> None:
        contexts = event.get("contexts")
        slot = contexts.get(CONTEXT_KEY) if isinstance(contexts, dict) else None
        if not isinstance(slot, ContextSlot):
            return
        assert isinstance(contexts, dict)
        context = slot.resolve() if is_error_event(event) else None
        if context is None:
            del contexts[CONTEXT_KEY]
            return
        redaction = slot.redaction or self.redaction
        contexts[CONTEXT_KEY] = redact(context, redaction, pii=stage.privacy.user_info)
        hint[HINT_KEY] = context
        if self.debug:
            logger.debug("launchdarklyContext attached (kind %s)", context.kind)

    def flush(self, timeout: float) -> bool:
        return self.delivery.flush(timeout) if self.delivery is not None else True

    def close(self, timeout: float) -> None:
        if self.delivery is not None:
            self.delivery.close(timeout)


def _redacting_repr(
    previous: Optional[Callable[[Any], Any]], integration: FlagsIntegration, privacy: Privacy
) -> Any:
    """sentry-sdk's ``custom_repr`` that shows an LD ``Context`` redacted.

    A Context's own repr is its full JSON, private attributes included, and sentry-sdk sends
    the repr of every local variable of the raising frames. Only non-primitive values reach
    here, so the check costs nothing on the common path.
    """

    def custom_repr(value: Any) -> Any:
        context_type = getattr(sys.modules.get("ldclient"), "Context", None)
        if context_type is not None and isinstance(value, context_type):
            redacted = redact(value, integration.redaction, pii=privacy.user_info)
            return f"<Context {json.dumps(redacted, default=str, sort_keys=True)}>"
        return previous(value) if previous is not None else None

    return custom_repr


class _Stage:
    """Our before_send: filters -> settings -> the user's before_send -> forward."""

    __slots__ = ("integration", "pipeline", "privacy", "user_before_send")

    def __init__(
        self,
        integration: FlagsIntegration,
        user_before_send: Optional[BeforeSend],
        privacy: Privacy,
        pipeline: tuple[Processor, ...],
    ) -> None:
        self.integration = integration
        self.user_before_send = user_before_send
        self.privacy = privacy
        self.pipeline = pipeline

    def __call__(self, event: Event, hint: dict[str, Any]) -> Optional[Event]:
        integration = self.integration
        for processor in self.pipeline:
            try:
                result = processor(event)
            except Exception:
                logger.debug("%s failed; event passed on unchanged", processor.name, exc_info=True)
                continue
            if result is None:
                if integration.debug:
                    logger.debug("event %s dropped by %s", event.get("event_id"), processor.name)
                return None
            event = result
        if self.user_before_send is not None:
            # The user's own errors propagate to sentry-sdk, which handles them as it would
            # without us.
            user_result = self.user_before_send(event, hint)
            if user_result is None:
                return None
            event = user_result
        delivery = integration.delivery
        if delivery is not None:
            try:
                if _from_vendor_sdk(event):
                    delivery.skip("vendor_sdk_log")
                else:
                    delivery.submit(event, self.privacy, hint.get(HINT_KEY))
            except Exception:
                logger.debug("could not queue event for forwarding", exc_info=True)
        return event


def _from_vendor_sdk(event: Event) -> bool:
    name = event.get("logger")
    return isinstance(name, str) and name.split(".", 1)[0] in VENDOR_LOGGERS


def _process_event(event: Event, hint: dict[str, Any]) -> Optional[Event]:
    """Global event processor: bind late clients, attach the LD context."""
    try:
        client = sentry_sdk.get_client()
        integration = client.get_integration(FlagsIntegration)
        if integration is None:
            contexts = event.get("contexts")
            if isinstance(contexts, dict) and isinstance(contexts.get(CONTEXT_KEY), ContextSlot):
                del contexts[CONTEXT_KEY]
            return event
        stage = integration.bind(client)
        integration.attach_context(event, hint, stage)
    except Exception:
        logger.debug("sentry-flags event processor failed; event unchanged", exc_info=True)
    return event


_patched = False


def _patch_sentry() -> None:
    """Bind each client when it becomes current, and drain our queue on its flush/close."""
    global _patched
    if _patched:
        return
    _patched = True
    from sentry_sdk.client import _Client

    original_set_client = Scope.set_client
    original_flush = _Client.flush
    original_close = _Client.close

    def set_client(self: Scope, client: Any = None) -> None:
        original_set_client(self, client)
        try:
            integration = client.get_integration(FlagsIntegration) if client else None
            if integration is not None:
                integration.bind(client)
        except Exception:
            logger.debug("could not bind sentry-flags to the new client", exc_info=True)

    def flush(self: Any, timeout: Optional[float] = None, *args: Any, **kwargs: Any) -> Any:
        try:
            integration = self.get_integration(FlagsIntegration)
            if integration is not None:
                budget = float(timeout if timeout is not None else self.options.get("shutdown_timeout", 2))
                started = time.monotonic()
                # At most half the caller's budget: Sentry's own events keep the rest.
                integration.flush(min(budget / 2, FLUSH_SHARE))
                timeout = max(0.0, budget - (time.monotonic() - started))
        except Exception:
            logger.debug("sentry-flags flush failed", exc_info=True)
        return original_flush(self, timeout, *args, **kwargs)

    def close(self: Any, timeout: Optional[float] = None, *args: Any, **kwargs: Any) -> Any:
        result = original_close(self, timeout, *args, **kwargs)  # flushes us first
        try:
            integration = self.get_integration(FlagsIntegration)
            if integration is not None:
                integration.close(0.5)
        except Exception:
            logger.debug("sentry-flags close failed", exc_info=True)
        return result

    Scope.set_client = set_client  # type: ignore[method-assign]
    _Client.flush = flush  # type: ignore[method-assign]
    _Client.close = close  # type: ignore[method-assign]


def _flush_at_exit() -> None:
    try:
        integration = sentry_sdk.get_client().get_integration(FlagsIntegration)
        if integration is not None:
            integration.flush(FLUSH_SHARE)
    except Exception:
        logger.debug("sentry-flags exit flush failed", exc_info=True)


def _hook_launchdarkly(client: Any) -> Redaction:
    try:
        from sentry_flags.launchdarkly import install_hook
    except ImportError as exc:
        raise TypeError(
            "launchdarkly_client needs the LaunchDarkly SDK: pip install 'sentry-flags[launchdarkly]'"
        ) from exc
    from ldclient.client import LDClient

    if not isinstance(client, LDClient):
        raise TypeError(
            f"launchdarkly_client must be an ldclient.LDClient, got {type(client).__name__}"
        )
    return install_hook(client).redaction


def _check_forwarders(forwarders: Any) -> tuple[Forwarder, ...]:
    if forwarders is None:
        return ()
    from sentry_flags.forwarders._base import Forwarder

    if isinstance(forwarders, (str, bytes, Mapping)) or not isinstance(forwarders, Iterable):
        raise TypeError(f"forwarders must be a list of Forwarder, got {type(forwarders).__name__}")
    found = tuple(forwarders)
    for i, item in enumerate(found):
        if not isinstance(item, Forwarder):
            raise TypeError(
                f"forwarders[{i}] must be a sentry_flags.forwarders Forwarder "
                f"(SplitForwarder, LaunchDarklyForwarder, SegmentForwarder), got {type(item).__name__}"
            )
        first = next(j for j, other in enumerate(found) if other is item)
        if first != i:  # each error would reach that vendor twice
            raise ValueError(f"forwarders[{i}] is the same forwarder as forwarders[{first}]")
    return found


def _enable_debug_logging() -> None:
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(" [sentry-flags] %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
