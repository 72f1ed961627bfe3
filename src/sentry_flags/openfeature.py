"""Record OpenFeature evaluations on Sentry errors: an ``openfeature.hook.Hook``.

    from openfeature import api
    from sentry_flags.openfeature import SentryFlagsHook

    api.add_hooks([SentryFlagsHook()])          # or client.add_hooks([...]) on one client

Per request or task (sentry-sdk's isolation scope), like the LaunchDarkly hook:

- the evaluation context becomes ``launchdarklyContext`` on errors, converted by LaunchDarkly's
  OpenFeature rules (see ``sentry_flags._openfeature``) and redacted as any LD context is;
- every result goes to ``flagEvaluations`` (source ``"openfeature"``, the provider's variant
  and reason; a failed evaluation as the default value with its error code as reason), and
  booleans to Sentry's own ``flags`` context.

The context is converted only when an error is captured; each evaluation only compares its
context with the one already recorded and, when it changed, keeps a copy. Building the
LaunchDarkly context needs the LD SDK: without ``ldclient`` the hook records flags only.

With LaunchDarkly's own provider (launchdarkly-openfeature-server), use
``FlagsIntegration(launchdarkly_client=provider.client)``: its hook sees the real LD context,
variation and reason. This hook may be registered as well (say, globally, for other
providers): an evaluation the LaunchDarkly hook recorded is not recorded again, so no flag
appears twice; it still records what only OpenFeature saw (the provider not ready, a type
mismatch after LaunchDarkly served a value).
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Mapping
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, Optional

from sentry_flags._context import CONTEXT_KEY, ContextSlot
from sentry_flags._flags import FLAGS_KEY, Failures, FlagLog, link_flag
from sentry_flags._fork import ForkSafeLock
from sentry_flags._openfeature import has_key, snapshot, to_ld_context
from sentry_flags._sentry import isolation_contexts

try:
    from openfeature.flag_evaluation import FlagEvaluationDetails, FlagValueType
    from openfeature.hook import Hook, HookContext, HookHints
except ImportError as exc:  # pragma: no cover - exercised by the no-extras tox env
    raise ImportError(
        "sentry_flags.openfeature needs the OpenFeature SDK: pip install 'sentry-flags[openfeature]'"
    ) from exc

if TYPE_CHECKING:
    from ldclient import Context
    from openfeature.evaluation_context import EvaluationContext

__all__ = ["SOURCE", "SentryFlagsHook"]

logger = logging.getLogger("sentry_flags")

SOURCE = "openfeature"
LD_HOOK_MODULE = "sentry_flags.launchdarkly"
LOG_BEFORE = "sentry_flags_log_before"  # our key in the hook's per-evaluation hook_data


class SentryFlagsHook(Hook):
    """OpenFeature hook that records each evaluation's context and result for Sentry errors.

    Records in ``finally_after``, which OpenFeature runs once for every evaluation, failed
    ones included, with the details the app got. Never raises into the evaluation.
    ``skipped_contexts`` counts evaluation contexts that did not become ``launchdarklyContext``.
    Register it with ``api.add_hooks([SentryFlagsHook()])`` (every client) or on one client;
    it takes no arguments. Guide: docs/openfeature.md.
    """

    def __init__(self) -> None:
        self._lock = ForkSafeLock()  # taken on evaluations: a fork may catch it held
        self._skipped: Counter[str] = Counter()
        self._ldclient = find_spec("ldclient") is not None
        self._failures = Failures()

    @property
    def failures(self) -> int:
        """Evaluations this hook could not record, each logged at debug on the
        ``sentry_flags`` logger with its traceback (the evaluation itself is unaffected)."""
        return self._failures.count

    @property
    def skipped_contexts(self) -> dict[str, int]:
        """By reason: ``no_key`` (an evaluation context without any key: the request's context
        stays as it was), ``no_ldclient`` (the LD SDK is not installed), ``invalid_context``
        (counted each time the context is needed, when an error is captured or by
        ``get_launchdarkly_context()``: no valid LD context could be made, so the error carries
        none; why is logged at debug)."""
        with self._lock:
            return dict(self._skipped)

    def skip(self, reason: str) -> None:
        """Count one context that did not become ``launchdarklyContext``, for ``reason``
        (the hook's own bookkeeping, shown in `skipped_contexts`)."""
        with self._lock:
            self._skipped[reason] += 1

    def before(self, hook_context: HookContext, hints: HookHints) -> Optional[EvaluationContext]:
        # Only when our LaunchDarkly hook may be in use: the provider may evaluate through an
        # LDClient that records this very evaluation itself (see finally_after).
        if LD_HOOK_MODULE in sys.modules:
            try:
                hook_context.hook_data[LOG_BEFORE] = isolation_contexts().get(FLAGS_KEY)
            except Exception:  # never into the evaluation
                self._failures.failed("OpenFeature hook (before)")
        return None

    def finally_after(
        self,
        hook_context: HookContext,
        details: FlagEvaluationDetails[FlagValueType],
        hints: HookHints,
    ) -> None:
        try:
            contexts = isolation_contexts()
            data = hook_context.hook_data
            if LOG_BEFORE in data and _recorded_by_ld_hook(contexts, data[LOG_BEFORE], details):
                return
            evaluated = hook_context.evaluation_context
            if evaluated is not None:
                self._record_context(contexts, evaluated.targeting_key, evaluated.attributes)
            error = details.error_code
            link_flag(
                contexts, SOURCE, details.flag_key, details.value, None, details.variant,
                _text(details.reason if error is None else error),
            )  # fmt: skip
        except Exception:  # never into the evaluation
            self._failures.failed("OpenFeature hook")

    def _record_context(
        self, contexts: dict[str, Any], targeting_key: Optional[str], attributes: Mapping[str, Any]
    ) -> None:
        slot = contexts.get(CONTEXT_KEY)
        # Most evaluations of a request share one context: OpenFeature merges it anew each
        # time, so compare it (equal numbers of another type, 1 and 1.0, count as the same).
        if (
            slot.__class__ is OpenFeatureSlot
            and slot.conversion.matches(targeting_key, attributes)
            and slot.reusable()
        ):
            return
        if not self._ldclient:
            self.skip("no_ldclient")
            return
        if not has_key(targeting_key, attributes):
            self.skip("no_key")
            return
        contexts[CONTEXT_KEY] = OpenFeatureSlot(Conversion(targeting_key, snapshot(attributes), self))


class Conversion:
    """A copy of one evaluation context, converted to an LD Context when an error needs it."""

    __slots__ = ("attributes", "hook", "targeting_key")

    def __init__(
        self, targeting_key: Optional[str], attributes: dict[str, Any], hook: SentryFlagsHook
    ) -> None:
        self.targeting_key = targeting_key
        self.attributes = attributes
        self.hook = hook

    def matches(self, targeting_key: Optional[str], attributes: Mapping[str, Any]) -> bool:
        return self.targeting_key == targeting_key and self.attributes == attributes

    def __call__(self) -> Optional[Context]:
        try:
            context = to_ld_context(self.targeting_key, self.attributes)
        except ImportError:  # ldclient went away after the hook was built
            self.hook.skip("no_ldclient")
            return None
        if not context.valid:
            self.hook.skip("invalid_context")  # ContextSlot.resolve logs why, at debug
        return context


class OpenFeatureSlot(ContextSlot):
    """The request's context slot when it came from an OpenFeature evaluation."""

    __slots__ = ("conversion",)

    def __init__(self, conversion: Conversion) -> None:
        # No redaction of its own: the stage applies every hooked LD client's
        # (_context.any_client_redaction), as for any context no LD evaluation saw.
        super().__init__(conversion, None)
        self.conversion = conversion


def _recorded_by_ld_hook(contexts: dict[str, Any], before: Any, details: FlagEvaluationDetails[Any]) -> bool:
    """Whether our LaunchDarkly hook recorded this evaluation while the provider ran it.

    Then it has the real LD context and result. OpenFeature's own failure after LaunchDarkly
    served a value (a type mismatch) is still recorded by us: the app got the default.
    """
    log = contexts.get(FLAGS_KEY)
    if log is before or log.__class__ is not FlagLog:
        return False
    if log.source != "launchdarkly" or log.flag != details.flag_key:
        return False
    if details.error_code is None:
        return True
    reason = log.reason
    return isinstance(reason, Mapping) and reason.get("kind") == "ERROR"


def _text(value: Any) -> Optional[str]:
    if value is None or value.__class__ is str:
        return value
    if isinstance(value, str):
        # Reason and ErrorCode are str enums: their plain text, cheaper than Enum.value.
        return str.__str__(value)
    return str(value)
