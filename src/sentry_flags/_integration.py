"""FlagsIntegration: options, validation, and binding to each Sentry client.

sentry-sdk calls ``setup_once`` once per process while apps and tests build many clients,
so everything per client (our before_send stage, the settings, the privacy rules) is bound
to each client when it is built (see ``_sentry.py`` for how).
"""

from __future__ import annotations

import atexit
import logging
import math
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional

import sentry_sdk
from sentry_sdk.integrations import Integration
from sentry_sdk.integrations.logging import ignore_logger

from sentry_flags import _sentry
from sentry_flags._bounds import value_limit
from sentry_flags._context import NO_REDACTION, Redaction
from sentry_flags._delivery import DEFAULT_MAX_PER_SECOND, DEFAULT_QUEUE_SIZE, Delivery
from sentry_flags._filters import ApplySettings, Filters, IncludePaths, Processor
from sentry_flags._patterns import compile_patterns, slashed_regexes
from sentry_flags._privacy import Privacy
from sentry_flags._release import ReleaseSource
from sentry_flags._stage import RedactingRepr, Stage

if TYPE_CHECKING:
    from sentry_flags.forwarders._base import Forwarder

logger = logging.getLogger("sentry_flags")

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
PATTERN_KEYS = ("ignoreErrors", "allowUrls", "denyUrls", "includePaths")


def _optional_str(option: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{option} must be a non-empty str or None, got {value!r}")
    return value.strip()


class FlagsIntegration(Integration):
    """Flag context on every error, RudderStack-style settings, and vendor forwarding.

    Add it to ``sentry_sdk.init(integrations=[...])``:

        sentry_sdk.init(
            dsn="...",
            integrations=[
                FlagsIntegration(
                    launchdarkly_client=ld,               # the context and flags of every evaluation
                    ignore_errors=["ResizeObserver loop"],
                    forwarders=[LaunchDarklyForwarder(ld)],
                )
            ],
        )

    Every error event then carries the LaunchDarkly context of its request or task
    (``launchdarklyContext``, redacted) and the flags that request was served (``flags``,
    ``flagEvaluations``), after the filters and settings below; with ``forwarders``, each
    error is also sent to the vendors on a background thread. Transactions, check-ins and
    logs are left alone. Every option is keyword-only and checked here. Guide:
    docs/how-it-works.md.

    Args:
        launchdarkly_client: An ``ldclient.LDClient`` or an ``AsyncLDClient``. A hook on it
            records the context and result of every evaluation for the current request or
            task, and its ``private_attributes`` / ``all_attributes_private`` redact
            ``launchdarklyContext`` (a context no evaluation saw: with those of every client
            hooked, plugins' included). Default `None`: contexts come from
            ``SentryFlagsPlugin``, the framework glue or `set_launchdarkly_context`.
        ignore_errors: Drop errors whose ``"Type: value"``, value or message matches an
            entry: a `str` (case-sensitive substring) or an ``re.Pattern`` (searched).
            Default `None`: none dropped.
        allow_urls: Keep only errors whose request URL, or the file or module of the frame
            that raised, matches an entry (an error with neither is kept). Entries as for
            ``ignore_errors``. Default `None`: all kept.
        deny_urls: Drop errors whose request URL, or the file or module of the frame that
            raised, matches an entry. Default `None`: none dropped.
        include_paths: Mark frames whose path or module matches an entry in-app, and the
            others not. Default `None`: sentry-sdk's own in-app marking.
        environment: The Sentry environment; wins over ``sentry_sdk.init``'s, and is
            written into the client's options, so transactions and sessions carry it too.
            Default `None`: sentry-sdk's.
        release: The release; wins over ``sentry_sdk.init``'s, like ``environment``.
            Default `None`: sentry-sdk's.
        release_from: Where to read the release when a client starts:
            ``"env:APP_VERSION"``, ``"package:myapp"`` (an installed distribution's
            version) or ``"myapp.VERSION"`` (a module attribute). When it cannot be read,
            ``release`` is used and a warning names why. Default `None`.
        server_name: The server name; wins over ``sentry_sdk.init``'s. Default `None`.
        logger: The logger name set on error events that have none. Default `None`.
        debug: Log every decision (dropped by which filter, context attached, forwarded
            where) on the ``sentry_flags`` logger. Default `False`.
        forwarders: The forwarders each error is sent to (``SplitForwarder``,
            ``LaunchDarklyForwarder``, ``SegmentForwarder``, ``OpenFeatureForwarder``, or
            your own), each at most once. Default `None`: no forwarding.
        queue_size: How many errors may wait for the forwarders' background thread; more
            are dropped and counted as ``dropped``. Default ``1000``.
        max_forwarded_per_second: Errors forwarded a second per process (a token bucket
            that allows bursts of at least as many); the rest still go to Sentry and are
            counted as ``rate_limited``. `None` forwards every error. Default ``200``.

    Raises:
        TypeError: An option has the wrong type (a message names it and what was expected).
        ValueError: An option has a wrong value (an invalid pattern, ``release_from``
            scheme, ``queue_size``, rate, or the same forwarder twice).
    """

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
    ) -> None:
        ignore_errors, allow_urls, deny_urls, include_paths = (
            _listed(v) for v in (ignore_errors, allow_urls, deny_urls, include_paths)
        )
        # What a pickled client rebuilds this integration from (see __reduce__).
        self._options: dict[str, Any] = {
            "ignore_errors": ignore_errors, "allow_urls": allow_urls, "deny_urls": deny_urls,
            "include_paths": include_paths, "environment": environment, "release": release,
            "release_from": release_from, "server_name": server_name, "logger": logger,
            "debug": debug, "queue_size": queue_size,
            "max_forwarded_per_second": max_forwarded_per_second,
        }  # fmt: skip
        if not isinstance(debug, bool):
            raise TypeError(f"debug must be a bool, got {debug!r}")
        self.debug = debug
        self.environment = _optional_str("environment", environment)
        self.release = _optional_str("release", release)
        self.server_name = _optional_str("server_name", server_name)
        self.logger = _optional_str("logger", logger)
        self.release_from = None if release_from is None else ReleaseSource.parse(release_from)
        patterns = {
            name: compile_patterns(name, value)
            for name, value in (
                ("ignore_errors", ignore_errors),
                ("allow_urls", allow_urls),
                ("deny_urls", deny_urls),
                ("include_paths", include_paths),
            )
        }
        include = patterns["include_paths"]
        filters = Filters(
            ignore=patterns["ignore_errors"],
            deny=patterns["deny_urls"],
            allow=patterns["allow_urls"],
            include=IncludePaths(include) if include else None,
        )
        self._filters: tuple[Processor, ...] = (filters,) if filters else ()
        if launchdarkly_client is not None:
            _check_launchdarkly_client(launchdarkly_client)
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
            Delivery(self.forwarders, queue_size=queue_size, max_per_second=rate) if self.forwarders else None
        )
        self._bind_lock = threading.Lock()
        # Last, once every option is known good: a construction that raises leaves no hook
        # on the app's LaunchDarkly client.
        self.launchdarkly_client = launchdarkly_client
        self.redaction = NO_REDACTION
        if launchdarkly_client is not None:
            self.redaction = _hook_launchdarkly(launchdarkly_client)
        _sentry.install(FlagsIntegration, _bind_client)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the options it was built from: sentry-sdk pickles a Client as its
        options, and rebuilds the client (and binds it again) on unpickling."""
        held = [type(f).__name__ for f in self.forwarders]
        if held:
            raise TypeError(
                f"a FlagsIntegration with forwarders ({', '.join(held)}) cannot be pickled: "
                "their vendor clients hold threads and sockets; build the integration and its "
                "forwarders in the process that uses them"
            )
        if self.launchdarkly_client is not None:
            raise TypeError(
                "a FlagsIntegration with a launchdarkly_client cannot be pickled: the LaunchDarkly "
                "client holds threads (or event-loop tasks) and sockets; build it in the process "
                "that uses it"
            )
        return (_rebuild, (self._options,))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kwargs: Any) -> FlagsIntegration:
        """Build from the keys of RudderStack's Sentry destination, e.g. loaded from JSON.

        Strings written ``/pattern/`` or ``/pattern/flags`` (``i m s x``; JavaScript's ``g``
        and ``u`` are accepted and ignored) are regular expressions.

        Args:
            config: Any of ``ignoreErrors``, ``allowUrls``, ``denyUrls``, ``includePaths``,
                ``environment``, ``release``, ``releaseFrom``, ``serverName``, ``logger``,
                ``debugMode``.
            **kwargs: The options JSON cannot hold (``launchdarkly_client``,
                ``forwarders``, ``queue_size``, ``max_forwarded_per_second``).

        Returns:
            The integration.

        Raises:
            TypeError: ``config`` is not a mapping, or a value has the wrong type.
            ValueError: An unknown key, an option given both ways, or a wrong value; the
                message names the key as written (``denyUrls[0] ...``).
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")
        unknown = sorted(str(k) for k in config if k not in CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown config key(s) {', '.join(unknown)}: expected {', '.join(CONFIG_KEYS)}")
        options = {CONFIG_KEYS[k]: v for k, v in config.items()}
        clash = sorted(set(options) & set(kwargs))
        if clash:
            raise ValueError(f"option(s) {', '.join(clash)} given both in config and as keywords")
        for key in PATTERN_KEYS:
            if key in config:
                # As regexes here, named as written ("denyUrls[0]"); the constructor takes them.
                options[CONFIG_KEYS[key]] = slashed_regexes(key, config[key])
        try:
            return cls(**options, **kwargs)
        except (TypeError, ValueError) as exc:
            # Name the key the user wrote ("denyUrls[0] ..."), not our keyword.
            message = str(exc)
            # The whole option name, so that release_from's message is not taken for release's.
            named = [
                (key, option)
                for key, option in CONFIG_KEYS.items()
                if key in config and re.match(rf"{re.escape(option)}\b", message)
            ]
            if named:
                key, option = max(named, key=lambda pair: len(pair[1]))
                raise type(exc)(key + message[len(option) :]) from None
            raise

    @staticmethod
    def setup_once() -> None:
        _sentry.add_event_processor()
        ignore_logger("sentry_flags")
        # Registered before sentry-sdk's own atexit handler, so it runs after Sentry's
        # close (which already drained us through flush); it matters when the app
        # disabled the default integrations.
        atexit.register(_flush_at_exit)

    # -- per client -----------------------------------------------------------------------

    def _bind(self, client: Any) -> Stage:
        """Compose our stage around the client's before_send; idempotent per client."""
        options = client.options
        current = options.get("before_send")
        if isinstance(current, Stage) and current.integration is self:
            return current
        with self._bind_lock:
            current = options.get("before_send")
            if isinstance(current, Stage) and current.integration is self:
                return current
            release = self.release_from.resolve(self.release) if self.release_from else None
            release = release or self.release
            for key, value in (
                ("environment", self.environment),
                ("release", release),
                ("server_name", self.server_name),
            ):
                if value is not None:
                    options[key] = value
            settings = ApplySettings(self.environment, release, self.server_name, self.logger)
            pipeline = (*self._filters, settings) if settings else self._filters
            limit = value_limit(options.get("max_value_length"))
            stage = Stage(self, current, Privacy.from_options(options), pipeline, limit)
            stage.options = options
            options["before_send"] = stage
            options["custom_repr"] = RedactingRepr(options.get("custom_repr"), self, stage.privacy)
            if self.debug:
                _enable_debug_logging()
                logger.debug("sentry-flags bound to a Sentry client (%d processors)", len(pipeline))
            return stage

    def flush(self, timeout: float) -> bool:
        """Deliver the queued errors to the forwarders, then flush the vendor clients.

        ``sentry_sdk.flush()`` calls it; so does `sentry_flags.testing.flush_forwarders`.

        Args:
            timeout: Seconds to wait at most.

        Returns:
            `False` when that did not finish in time.
        """
        return self.delivery.flush(timeout) if self.delivery is not None else True

    def close(self, timeout: float) -> None:
        """Deliver what is queued, within ``timeout`` seconds, and stop the background thread.

        ``sentry_sdk.get_client().close()`` calls it. Vendor clients are never closed here.
        """
        if self.delivery is not None:
            self.delivery.close(timeout)


def _bind_client(integration: FlagsIntegration, client: Any) -> None:
    # Looked up on each call, so that the method is the class's as it is then.
    integration._bind(client)


def _flush_at_exit() -> None:
    try:
        integration = sentry_sdk.get_client().get_integration(FlagsIntegration)
        if integration is not None:
            integration.flush(_sentry.FLUSH_SHARE)
    except Exception:
        logger.debug("sentry-flags exit flush failed", exc_info=True)


def _check_launchdarkly_client(client: Any) -> None:
    try:
        from sentry_flags.launchdarkly import client_types
    except ImportError as exc:
        raise TypeError(
            "launchdarkly_client needs the LaunchDarkly SDK: pip install 'sentry-flags[launchdarkly]'"
        ) from exc

    if not isinstance(client, client_types()):
        raise TypeError(
            "launchdarkly_client must be an ldclient.LDClient or an "
            f"ldclient.async_client.AsyncLDClient, got {type(client).__name__}"
        )


def _hook_launchdarkly(client: Any) -> Redaction:
    from sentry_flags.launchdarkly import install_hook

    install_hook(client)
    return Redaction.from_client(client)


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
                "(SplitForwarder, LaunchDarklyForwarder, SegmentForwarder, OpenFeatureForwarder), "
                f"got {type(item).__name__}"
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


def _rebuild(options: dict[str, Any]) -> FlagsIntegration:
    return FlagsIntegration(**options)


def _listed(value: Any) -> Any:
    """An iterable of patterns as a list, so a generator can be compiled and still pickled;
    anything else as it is, for compile_patterns to reject with the option's name."""
    if isinstance(value, (str, bytes, re.Pattern, Mapping)) or not isinstance(value, Iterable):
        return value
    return list(value)
