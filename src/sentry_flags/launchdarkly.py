"""Capture the LaunchDarkly context and the result of every flag evaluation.

Use :class:`SentryFlagsPlugin` in ``ldclient.Config(plugins=[...])`` when the LD client is
built after Sentry, or pass the client to ``FlagsIntegration(launchdarkly_client=...)``.
One hook records both who was evaluated (``launchdarklyContext``) and what they were served
(Sentry's ``flags`` context for booleans, ``flagEvaluations`` for every value): it replaces
sentry-sdk's own ``LaunchDarklyIntegration``, which records booleans only.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sentry_flags._context import CONTEXT_KEY, NO_REDACTION, ContextSlot, Redaction
from sentry_flags._flags import link_flag
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

__all__ = ["LaunchDarklyContextHook", "SentryFlagsPlugin", "install_hook"]

HOOK_NAME = "sentry-flags"


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


_hooked: weakref.WeakKeyDictionary[LDClient, LaunchDarklyContextHook] = weakref.WeakKeyDictionary()
_hooked_lock = threading.Lock()


def install_hook(client: LDClient) -> LaunchDarklyContextHook:
    """Add our hook to ``client`` once, however often Sentry is initialised."""
    with _hooked_lock:
        hook = _hooked.get(client)
        if hook is None:
            hook = LaunchDarklyContextHook(Redaction.from_client(client))
            client.add_hook(hook)
            _hooked[client] = hook
            _keep_after_postfork(client, hook)
        return hook


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
