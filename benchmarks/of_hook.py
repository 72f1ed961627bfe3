"""7. OpenFeature ``get_boolean_value()``: our hook vs sentry-sdk's own vs a no-op hook vs none.

Real openfeature-sdk clients on one ``InMemoryProvider``, one per variant, each with its hook
on the client: none; OpenFeature's base ``Hook`` (does nothing: what OpenFeature itself costs
per hook); sentry-sdk's ``OpenFeatureIntegration`` hook; ours (``SentryFlagsHook``), also with
``sentry_flags.launchdarkly`` imported, which makes it read the flag log in ``before`` too.
One context of five attributes, reused per evaluation as a request would. Overheads are
per-round differences against the no-hook client; the budget is ours <= sentry-sdk's.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from benchmarks._harness import Row, interleave, log, paired_diff, per_op_ns, us, verdict
from benchmarks._harness import median as med
from benchmarks._vendors import DropTransport, make_client

NAME = "of_hook"
LD_HOOK_MODULE = "sentry_flags.launchdarkly"


def run(quick: bool) -> list[Row]:
    import sentry_sdk
    from openfeature import api
    from openfeature.client import OpenFeatureClient
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.hook import Hook
    from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
    from sentry_sdk.integrations.openfeature import OpenFeatureHook

    import sentry_flags.launchdarkly as ld_hook_module
    from sentry_flags import FlagsIntegration
    from sentry_flags.openfeature import SentryFlagsHook

    rounds, n = (7, 3000) if quick else (25, 20000)
    make_client("http://public@127.0.0.1:9/1", [FlagsIntegration()], transport=DropTransport)
    api.set_provider(InMemoryProvider({"bench-flag": InMemoryFlag("on", {"on": True, "off": False})}))
    context = EvaluationContext(
        "user-42", {"kind": "user", "plan": "pro", "email": "a@b.c", "orgId": "org-7", "beta": True}
    )
    hooks: dict[str, list[Any]] = {
        "none": [], "noop": [Hook()], "sentry": [OpenFeatureHook()], "ours": [SentryFlagsHook()],
        "ours_ld": [SentryFlagsHook()],
    }  # fmt: skip

    def variant(name: str) -> Callable[[], float]:
        evaluate = OpenFeatureClient(None, None, hooks=hooks[name]).get_boolean_value

        def loop(count: int) -> None:
            for _ in range(count):
                evaluate("bench-flag", False, context)

        def one_round() -> float:
            # Whether our LaunchDarkly hook module is loaded is all SentryFlagsHook.before asks.
            if name == "ours_ld":
                sys.modules[LD_HOOK_MODULE] = ld_hook_module
            else:
                sys.modules.pop(LD_HOOK_MODULE, None)
            loop(200)  # warm-up
            return per_op_ns(loop, n)

        return one_round

    log(f"{NAME}: {rounds} rounds x {n} get_boolean_value() calls per variant")
    with sentry_sdk.isolation_scope():
        samples = interleave({name: variant(name) for name in hooks}, rounds)
    sys.modules[LD_HOOK_MODULE] = ld_hook_module
    over = {name: paired_diff(samples[name], samples["none"]) for name in hooks if name != "none"}
    title = "7 OpenFeature get_boolean_value()"
    return [
        Row(title, "no hook", us(med(samples["none"])) + "/call"),
        Row(title, "OpenFeature's no-op Hook", us(med(samples["noop"])) + "/call", f"+{us(over['noop'])}"),
        Row(title, "sentry-sdk OpenFeatureIntegration hook", us(med(samples["sentry"])) + "/call",
            f"+{us(over['sentry'])}"),
        Row(title, "our hook (SentryFlagsHook)", us(med(samples["ours"])) + "/call", f"+{us(over['ours'])}",
            "<= sentry-sdk's", verdict(over["ours"] <= over["sentry"])),
        Row(title, "our hook, sentry_flags.launchdarkly loaded", us(med(samples["ours_ld"])) + "/call",
            f"+{us(over['ours_ld'])}"),
        Row.note(title, f"our own work (ours - no-op hook) = {us(over['ours'] - over['noop'])}, "
                 f"with before() too = {us(over['ours_ld'] - over['noop'])}; sentry-sdk's = "
                 f"{us(over['sentry'] - over['noop'])}"),
    ]  # fmt: skip
