"""Capture the LaunchDarkly context and the result of every flag evaluation.

Use :class:`SentryFlagsPlugin` in ``ldclient.Config(plugins=[...])`` when the LD client is
built after Sentry (:class:`SentryFlagsAsyncPlugin` in ``AsyncConfig(plugins=[...])`` for the
experimental ``ldclient.async_client.AsyncLDClient``), or pass the client, sync or async, to
``FlagsIntegration(launchdarkly_client=...)``. One hook records both who was evaluated
(``launchdarklyContext``) and what they were served (Sentry's ``flags`` context for
booleans, ``flagEvaluations`` for every value): it replaces sentry-sdk's own
``LaunchDarklyIntegration``, which records booleans only.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Optional, Union

from sentry_flags._context import CONTEXT_KEY, NO_REDACTION, ContextSlot, Redaction
from sentry_flags._flags import link_flag
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

__all__ = ["LaunchDarklyContextHook", "SentryFlagsAsyncPlugin", "SentryFlagsPlugin", "install_hook"]

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

    def __init__(self, redaction: Redaction = NO_REDACTION) -> None:
        self.redaction = redaction

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
            pass
        return data


_hooked: weakref.WeakKeyDictionary[AnyLDClient, LaunchDarklyContextHook] = weakref.WeakKeyDictionary()
_hooked_lock = threading.Lock()


def install_hook(client: AnyLDClient) -> LaunchDarklyContextHook:
    """Add our hook to ``client`` (an ``LDClient`` or ``AsyncLDClient``) once, however often
    Sentry is initialised."""
    with _hooked_lock:
        hook = _hooked.get(client)
        if hook is None:
            hook = _plugin_hook(client)
            if hook is not None:
                # The async client registers its plugins only in start(), often after
                # Sentry is set up: the plugin's hook will run, adding ours would record
                # every evaluation twice. Its privacy settings are known already.
                hook.redaction = Redaction.from_client(client)
            else:
                hook = LaunchDarklyContextHook(Redaction.from_client(client))
                client.add_hook(hook)
                if isinstance(client, LDClient):  # AsyncLDClient has no postfork()
                    _keep_after_postfork(client, hook)
            _hooked[client] = hook
        return hook


def _plugin_hook(client: Any) -> Optional[LaunchDarklyContextHook]:
    """The hook of a sentry-flags plugin in ``client``'s config, if it has one."""
    config = client_config(client)
    plugins: Any = None if config is UNREADABLE else getattr(config, "plugins", None)
    if not isinstance(plugins, (list, tuple)):
        return None
    for plugin in plugins:
        hook = getattr(plugin, "_hook", None) if isinstance(plugin, tuple(_plugin_types)) else None
        if isinstance(hook, LaunchDarklyContextHook):
            return hook
    return None


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
            self._hook = LaunchDarklyContextHook()

        @property
        def metadata(self) -> PluginMetadata:
            return PluginMetadata(name=HOOK_NAME)

        def register(self, client: LDClient, metadata: EnvironmentMetadata) -> None:
            # get_hooks() runs before register(), so the client's privacy settings
            # reach the hook here.
            self._hook.redaction = Redaction.from_client(client)
            with _hooked_lock:
                _hooked[client] = self._hook

        def get_hooks(self, metadata: EnvironmentMetadata) -> list[Hook]:
            return [self._hook]

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
            self._hook = LaunchDarklyContextHook()

        @property
        def metadata(self) -> PluginMetadata:
            return PluginMetadata(name=HOOK_NAME)

        async def register(self, client: AsyncLDClient, metadata: EnvironmentMetadata) -> None:
            # As in SentryFlagsPlugin: get_hooks() ran first, the privacy settings come here.
            self._hook.redaction = Redaction.from_client(client)
            with _hooked_lock:
                _hooked[client] = self._hook

        def get_hooks(self, metadata: EnvironmentMetadata) -> list[Hook]:
            return [self._hook]

    _plugin_types.append(SentryFlagsAsyncPlugin)
