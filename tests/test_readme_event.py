"""The README's example error event is what a real run sends, so it never drifts.

One request evaluates a flag through each source (an OpenFeature client with our hook, a
Split factory with our impression listener, a LaunchDarkly client with our hook), then
fails; the contexts that arrive at the loopback Sentry receiver must equal the JSON block
between ``<!-- example-event -->`` markers in README.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest

pytest.importorskip("openfeature")
pytest.importorskip("ldclient")
pytest.importorskip("splitio")

from ldclient import Context
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from helpers import capture_error, only_event, pii_options, started_split_factory
from receivers import SentryReceiver
from sentry_flags import FlagsIntegration
from sentry_flags.openfeature import SentryFlagsHook
from sentry_flags.split import impression_listener

README = Path(__file__).resolve().parent.parent / "README.md"
SHOWN = ("launchdarklyContext", "flags", "flagEvaluations")


def readme_event() -> dict[str, Any]:
    text = README.read_text()
    found = re.search(r"<!-- example-event -->\s*```json\n(.*?)```", text, re.DOTALL)
    assert found, "README.md has no <!-- example-event --> JSON block"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_the_readme_example_event_is_what_arrives(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    make_ld_client: Callable[..., Any],
    ld_test_data: Any,
    make_split_factory: Callable[..., Any],
    own_isolation_scope: None,
) -> None:
    ld_test_data.update(ld_test_data.flag("new-checkout").variation_for_all(True))
    ld = make_ld_client(update_processor_class=ld_test_data, private_attributes=["email"])
    split = started_split_factory(make_split_factory(impressionListener=impression_listener())).client()
    theme = InMemoryFlag("dark", {"dark": "#111", "light": "#fff"})
    api.set_provider(InMemoryProvider({"checkout-theme": theme}), "readme")
    openfeature = api.get_client("readme")
    openfeature.add_hooks([SentryFlagsHook()])
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], **pii_options(False))
    try:
        user = (
            Context.builder("user-42").kind("user").set("plan", "pro").set("email", "ann@example.com")
            .build()
        )  # fmt: skip
        org = Context.builder("acme").kind("org").set("seats", 12).build()

        openfeature.get_string_value("checkout-theme", "#fff", EvaluationContext("user-42"))
        split.get_treatment("user-42", "sentry_flags_user_flag")
        ld.variation("new-checkout", Context.create_multi(user, org), False)  # the latest context
        capture_error("card declined", RuntimeError)

        event = only_event(sentry_receiver)
        assert {key: event["contexts"][key] for key in SHOWN} == readme_event()
    finally:
        api.clear_providers()
