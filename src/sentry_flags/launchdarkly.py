"""Capture the LaunchDarkly context and the result of every flag evaluation.

Use `SentryFlagsPlugin` in ``ldclient.Config(plugins=[...])`` when the LD client is
built after Sentry (`SentryFlagsAsyncPlugin` in ``AsyncConfig(plugins=[...])`` for the
experimental ``ldclient.async_client.AsyncLDClient``), or pass the client, sync or async, to
``FlagsIntegration(launchdarkly_client=...)``. One hook records both who was evaluated
(``launchdarklyContext``) and what they were served (Sentry's ``flags`` context for
booleans, ``flagEvaluations`` for every value): it replaces sentry-sdk's own
``LaunchDarklyIntegration``, which records booleans only.
"""

from __future__ import annotations

import logging
import sys
import weakref
from typing import TYPE_CHECKING, Any, Optional, Union

from sentry_flags._context import (
    CONTEXT_KEY,
    NO_REDACTION,
    ContextSlot,
    Redaction,
    remember_client_redaction,
)
from sentry_flags._flags import Failures, link_flag
from sentry_flags._fork import ForkSafeLock
from sentry_flags._ldclient import UNREADABLE, client_config
from sentry_flags._sentry import isolation_contexts

try:
    from ldclient.client import LDClient
    from ldclient.evaluation import EvaluationDetail
    from ldclient.hook import EvaluationSeriesContext, Hook, Metadata
except ImportError as exc:  # pragma: no cover - exercised by the no-extras tox env
    raise ImportError(
        "sentry_flags.launchdarkly needs the LaunchDarkly SDK: pip install 'sentry-flags[launchdarkly]'"
    ) from exc

try:
    from ldclient.plugin import EnvironmentMetadata, Plugin, PluginMetadata
except ImportError:  # LD SDK < 9.12 has hooks but no plugins
    Plugin = None  # type: ignore[assignment,misc]

try:
    from ldclient.plugin import AsyncPlugin
except ImportError:  # LD SDK releases before the (experimental) async client
    AsyncPlugin = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from ldclient.async_client import AsyncLDClient

    AnyLDClient = Union[LDClient, AsyncLDClient]

__all__ = ["SentryFlagsPlugin", "install_hook"]  # and SentryFlagsAsyncPlugin where it exists

logger = logging.getLogger("sentry_flags")

HOOK_NAME = "sentry-flags"
ASYNC_CLIENT_MODULE = "ldclient.async_client"


def async_client_type() -> Any:
    """``AsyncLDClient`` if its module is loaded, else None.

    Only looked up in ``sys.modules``: an ``AsyncLDClient`` instance means its module was
    imported, and importing it ourselves would pull in aiohttp (the SDK's ``async`` extra)
    for apps that only have the sync client, or fail on LD SDKs that predate it.
    """
    module = sys.modules.get(ASYNC_CLIENT_MODULE)
    return getattr(module, "AsyncLDClient", None)


def client_types() -> tuple[type[Any], ...]:
    """The LaunchDarkly client classes the hook can be added to."""
    async_type = async_client_type()
    return (LDClient,) if async_type is None else (LDClient, async_type)


def is_async_client(client: Any) -> bool:
    async_type = async_client_type()
    return async_type is not None and isinstance(client, async_type)


class LaunchDarklyContextHook(Hook):
    """Records the evaluated context and the flag result on the current isolation scope.

    Runs after evaluation, which LaunchDarkly calls for every evaluation, failed ones
    included (with the default value and an error reason). Storing costs two small objects;
    redaction, size limits and Sentry's context shapes wait until an error is captured.
    """

    def __init__(self, redaction: Redaction = NO_REDACTION, *, failures: Optional[Failures] = None) -> None:
        self.redaction = redaction
        self._failures = failures if failures is not None else Failures()

    @property
    def failures(self) -> int:
        """Evaluations this hook could not record, each logged at debug on the
        ``sentry_flags`` logger with its traceback (the evaluation itself is unaffected)."""
        return self._failures.count

    @property
    def metadata(self) -> Metadata:
        return Metadata(name=HOOK_NAME)

    def before_evaluation(
        self, series_context: EvaluationSeriesContext, data: dict[Any, Any]
    ) -> dict[Any, Any]:
        return data

    def after_evaluation(
        self,
        series_context: EvaluationSeriesContext,
        data: dict[Any, Any],
        detail: EvaluationDetail,
    ) -> dict[Any, Any]:
        try:
            contexts = isolation_contexts()
            context = series_context.context
            slot = contexts.get(CONTEXT_KEY)
            # Most evaluations of a request are for the same Context: keep its slot.
            if slot.__class__ is not ContextSlot or not slot.holds(context, self.redaction):
                contexts[CONTEXT_KEY] = ContextSlot(context, self.redaction)
            link_flag(
                contexts, "launchdarkly", series_context.key, detail.value,
                detail.variation_index, None, detail.reason,
            )  # fmt: skip
        except Exception:  # never into the app's evaluation
            self._failures.failed("LaunchDarkly hook")
        return data


_hooked: weakref.WeakKeyDictionary[AnyLDClient, LaunchDarklyContextHook] = weakref.WeakKeyDictionary()
_hooked_lock = ForkSafeLock()

# What a plugin's hook redacts until the LD SDK tells the plugin which client it serves: no
# evaluation runs before that, but if one did, nothing private could leave.
UNBOUND = Redaction(all_private=True)


def install_hook(client: AnyLDClient) -> Optional[LaunchDarklyContextHook]:
    """Add our hook to ``client`` (an ``LDClient`` or ``AsyncLDClient``) once, however often
    Sentry is initialised; None when a sentry-flags plugin in its config gives it one."""
    with _hooked_lock:
        hook = _hooked.get(client)
        if hook is not None:
            return hook
        if _has_plugin(client):
            # The plugin gives the client a hook of its own when the client registers it (the
            # async client only in start(), often after Sentry is set up): adding ours too
            # would record every evaluation twice.
            return None
        hook = LaunchDarklyContextHook(Redaction.from_client(client))
        remember_client_redaction(client, hook.redaction)
        client.add_hook(hook)
        if isinstance(client, LDClient):  # AsyncLDClient has no postfork()
            _keep_after_postfork(client, hook)
        _hooked[client] = hook
        return hook


def _has_plugin(client: Any) -> bool:
    """Whether ``client``'s config holds a sentry-flags plugin."""
    config = client_config(client)
    plugins: Any = None if config is UNREADABLE else getattr(config, "plugins", None)
    if not isinstance(plugins, (list, tuple)):
        return False
    return any(isinstance(plugin, tuple(_plugin_types)) for plugin in plugins)


class _PluginHooks:
    """One hook per LD client a plugin is given to, each with that client's redaction.

    A plugin instance may sit in several clients' configs. The LD SDK (9.12 to 9.20, sync
    and async) starts each client by asking its plugins for hooks, ``get_hooks(metadata)``,
    then calling ``register(client, metadata)`` with the same metadata object: that object
    is what ties the hook handed out to the client it now belongs to.
    """

    def __init__(self) -> None:
        self._lock = ForkSafeLock()
        # (the metadata get_hooks was given, its hook); the metadata is only held weakly.
        self._unbound: list[tuple[weakref.ref[Any], LaunchDarklyContextHook]] = []
        self.failures = Failures()  # of every hook handed out, whatever client it serves

    def hooks(self, metadata: Any) -> list[Hook]:
        hook = LaunchDarklyContextHook(UNBOUND, failures=self.failures)
        with self._lock:
            # A start-up that failed between get_hooks and register leaves an entry whose
            # metadata is gone by now: dropped here, so the list stays as short as that.
            self._unbound = [(ref, h) for ref, h in self._unbound if ref() is not None]
            self._unbound.append((_weak(metadata), hook))
        return [hook]

    def register(self, client: Any, metadata: Any) -> None:
        with self._lock:
            found = [h for ref, h in self._unbound if ref() is metadata]
            self._unbound = [(ref, h) for ref, h in self._unbound if ref() is not metadata]
        if not found:
            # An LD SDK that registers with another object than it asked for hooks with:
            # the hooks handed out keep redacting everything but kind and key.
            logger.warning(
                "sentry-flags plugin: could not tell which hook belongs to this LaunchDarkly "
                "client; its contexts are sent with every attribute redacted"
            )
            return
        redaction = Redaction.from_client(client)
        remember_client_redaction(client, redaction)
        for hook in found:
            hook.redaction = redaction
        with _hooked_lock:
            _hooked[client] = found[-1]


def _weak(value: Any) -> weakref.ref[Any]:
    try:
        return weakref.ref(value)
    except TypeError:  # not weak-referenceable: held for as long as the entry is
        return lambda: value  # type: ignore[return-value]


_plugin_types: list[type[Any]] = []  # the plugin classes this LD SDK lets us define


def _keep_after_postfork(client: LDClient, hook: LaunchDarklyContextHook) -> None:
    # postfork() rebuilds the client's hooks from its Config (hooks=, plugins=) and drops
    # those added with add_hook(), so a forked worker would stop recording contexts.
    original = getattr(type(client), "postfork", None)
    if original is None:  # LD SDKs without postfork()
        return
    ref = weakref.ref(client)

    def postfork(*args: Any, **kwargs: Any) -> Any:
        current = ref()
        result = original(current, *args, **kwargs)
        if current is not None:
            current.add_hook(hook)
        return result

    client.postfork = postfork  # type: ignore[method-assign]


if Plugin is not None:

    class SentryFlagsPlugin(Plugin):
        """LD SDK plugin form of the capture hook (LD Python SDK 9.12+)."""

        def __init__(self) -> None:
            self._hooks = _PluginHooks()

        @property
        def metadata(self) -> PluginMetadata:
            return PluginMetadata(name=HOOK_NAME)

        @property
        def failures(self) -> int:
            """Evaluations its hooks could not record, on every client it was given to (each
            logged at debug with its traceback)."""
            return self._hooks.failures.count

        def register(self, client: LDClient, metadata: EnvironmentMetadata) -> None:
            # get_hooks() ran first: the client's privacy settings reach its hook here.
            self._hooks.register(client, metadata)

        def get_hooks(self, metadata: EnvironmentMetadata) -> list[Hook]:
            return self._hooks.hooks(metadata)

    _plugin_types.append(SentryFlagsPlugin)


if AsyncPlugin is not None:

    class SentryFlagsAsyncPlugin(AsyncPlugin):
        """``AsyncPlugin`` form of the capture hook, for ``AsyncConfig(plugins=[...])``.

        The async client is experimental in the LD SDK (9.20+). Its hooks are the same
        synchronous hooks, run inside the evaluating task, so each task records on its own
        isolation scope. They are collected in ``await client.start()``: evaluations before
        that are not recorded.
        """

        def __init__(self) -> None:
            self._hooks = _PluginHooks()

        @property
        def metadata(self) -> PluginMetadata:
            return PluginMetadata(name=HOOK_NAME)

        @property
        def failures(self) -> int:
            """As `SentryFlagsPlugin.failures`."""
            return self._hooks.failures.count

        async def register(self, client: AsyncLDClient, metadata: EnvironmentMetadata) -> None:
            # As in SentryFlagsPlugin: get_hooks() ran first, the privacy settings come here.
            self._hooks.register(client, metadata)

        def get_hooks(self, metadata: EnvironmentMetadata) -> list[Hook]:
            return self._hooks.hooks(metadata)

    _plugin_types.append(SentryFlagsAsyncPlugin)
    __all__ += ["SentryFlagsAsyncPlugin"]
