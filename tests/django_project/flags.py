"""A project's own context builder, named in ``SENTRY_FLAGS["CONTEXT"]`` by the tests."""

from __future__ import annotations

from typing import Any

from ldclient import Context

calls: list[str] = []


def context_for(request: Any) -> Context:
    calls.append(request.path)
    return Context.builder(request.GET["account"]).kind("account").set("plan", "pro").build()


not_callable = 42
