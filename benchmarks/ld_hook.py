"""2. LaunchDarkly ``variation()``: our evaluation hook vs sentry-sdk's own vs no hook.

Four real ``LDClient``s on TestData sources with ``send_events=False``, one per variant:
one hooked by ``FlagsIntegration(launchdarkly_client=...)`` (context and flag), one by
sentry-sdk's ``LaunchDarklyIntegration(ld_client=...)`` (flag only; on 3.x its hook, which
its integration adds to ``ldclient.get()`` only), one with both hooks (as
an app that keeps sentry-sdk's integration after adding ours), one with no hook. One Sentry
client has both integrations, so every hook runs against the same scopes, and the flag is a
boolean, the case both hooks record. Overheads are per-round differences against the no-hook
client; the budget is ours <= sentry-sdk's.
"""

from __future__ import annotations

from typing import Any, Callable

from benchmarks._harness import Row, interleave, log, paired_diff, per_op_ns, us, verdict
from benchmarks._harness import median as med
from benchmarks._vendors import DropTransport, bench_flags, ld_context, make_client

NAME = "ld_hook"


def ld_client() -> Any:
    from ldclient.client import LDClient
    from ldclient.config import Config

    config = Config(
        "sdk-bench-key",
        update_processor_class=bench_flags(),
        send_events=False,
        diagnostic_opt_out=True,
    )
    return LDClient(config, start_wait=5)


def sentry_hook(client: Any) -> list[Any]:
    """Hook sentry-sdk's own LaunchDarkly flag tracking onto ``client``; the integrations to init.

    2.x: ``LaunchDarklyIntegration(ld_client=...)`` adds its hook to the client it is given.
    3.x: ``LaunchDarklyIntegration()`` takes no client and hooks ``ldclient.get()`` once per
    process; its hook (``LaunchDarklyHook``, what it registers) is added here instead.
    """
    import inspect

    from sentry_sdk.integrations.launchdarkly import LaunchDarklyHook, LaunchDarklyIntegration

    if "ld_client" in inspect.signature(LaunchDarklyIntegration.__init__).parameters:
        integration: Any = LaunchDarklyIntegration  # typed by whichever major is installed
        return [integration(ld_client=client)]
    client.add_hook(LaunchDarklyHook())
    return []


def run(quick: bool) -> list[Row]:
    from sentry_flags import FlagsIntegration

    rounds, n = (7, 5000) if quick else (25, 20000)
    clients = {"none": ld_client(), "ours": ld_client(), "sentry": ld_client(), "both": ld_client()}
    make_client(
        "http://public@127.0.0.1:9/1",
        [FlagsIntegration(launchdarkly_client=clients["ours"]), *sentry_hook(clients["sentry"])],
        transport=DropTransport,
    )
    # Each constructor adds its hook to the client it is given.
    FlagsIntegration(launchdarkly_client=clients["both"])
    sentry_hook(clients["both"])
    context = ld_context()

    def variant(client: Any) -> Callable[[], float]:
        variation = client.variation

        def loop(count: int) -> None:
            for _ in range(count):
                variation("bench-flag", context, False)

        def one_round() -> float:
            loop(200)  # warm-up
            return per_op_ns(loop, n)

        return one_round

    log(f"{NAME}: {rounds} rounds x {n} variation() calls per variant")
    samples = interleave({name: variant(client) for name, client in clients.items()}, rounds)
    for client in clients.values():
        client.close()
    ours = paired_diff(samples["ours"], samples["none"])
    theirs = paired_diff(samples["sentry"], samples["none"])
    both = paired_diff(samples["both"], samples["none"])
    title = "2 LD variation()"
    return [
        Row(title, "no hook", us(med(samples["none"])) + "/call"),
        Row(title, "sentry-sdk LaunchDarklyIntegration hook", us(med(samples["sentry"])) + "/call",
            f"+{us(theirs)}"),
        Row(title, "our hook (FlagsIntegration: context + flag)", us(med(samples["ours"])) + "/call",
            f"+{us(ours)}", "<= sentry-sdk's", verdict(ours <= theirs)),
        Row(title, "both hooks on one client", us(med(samples["both"])) + "/call", f"+{us(both)}"),
        Row.note(title, f"overhead ours / sentry-sdk's = {ours / theirs:.2f} (per-round differences)"),
    ]  # fmt: skip
