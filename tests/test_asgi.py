"""FlagsMiddleware for ASGI: each Starlette request's LaunchDarkly context rides on its errors.

With sentry-sdk's Starlette integration (the normal case: it forks a scope per request) and
without it (then the middleware forks one itself), through Starlette's TestClient.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Callable, Optional

import pytest

pytest.importorskip("starlette")
pytest.importorskip("ldclient")

import sentry_sdk
from ldclient import Context
from sentry_sdk.integrations.starlette import StarletteIntegration
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

with warnings.catch_warnings():  # starlette 1.x would rather have httpx2 for its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from helpers import pii_options
from receivers import SentryReceiver, wait_for
from sentry_flags import FlagsIntegration
from sentry_flags.asgi import FlagsMiddleware

CONTEXT = "launchdarklyContext"


class HeaderAuth(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> Optional[tuple[AuthCredentials, SimpleUser]]:
        name = conn.headers.get("x-user")
        return (AuthCredentials(["authenticated"]), SimpleUser(name)) if name else None


def make_app(
    context_from_scope: Optional[Callable[[Any], Any]] = None,
    *,
    ld: Any = None,
    wrap: bool = False,
    lifespan: Any = None,
) -> Any:
    async def boom(request: Request) -> PlainTextResponse:
        name = request.path_params["name"]
        await asyncio.sleep(0.005)  # lets concurrent requests interleave
        if ld is not None:
            ld.variation("some-flag", Context.create(f"evaluated-{name}"), False)
        raise RuntimeError(f"boom {name}")

    async def report(request: Request) -> PlainTextResponse:
        # An error the app reports itself: the only kind captured without Sentry's middleware.
        name = request.path_params["name"]
        await asyncio.sleep(0.005)
        sentry_sdk.capture_message(f"report {name}")
        return PlainTextResponse("reported")

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def twice(request: Request) -> PlainTextResponse:
        sentry_sdk.capture_message("first")
        sentry_sdk.capture_message("second")
        return PlainTextResponse("reported twice")

    middleware = [Middleware(AuthenticationMiddleware, backend=HeaderAuth())]
    if not wrap:
        middleware.append(Middleware(FlagsMiddleware, context_from_scope=context_from_scope))
    app = Starlette(
        routes=[
            Route("/boom/{name}", boom),
            Route("/report/{name}", report),
            Route("/ok", ok),
            Route("/twice", twice),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    return FlagsMiddleware(app, context_from_scope=context_from_scope) if wrap else app


def ld_context_of(event: dict[str, Any]) -> Any:
    return event["contexts"].get(CONTEXT)


def label_of(event: dict[str, Any]) -> str:
    if "exception" in event:
        value: str = event["exception"]["values"][-1]["value"]
        return value
    message: str = event["message"]
    return message


@pytest.fixture
def with_sentry_middleware(sentry_init: Callable[..., Any]) -> Callable[..., Any]:
    def start(**options: Any) -> Any:
        options.setdefault("integrations", [StarletteIntegration(), FlagsIntegration()])
        return sentry_init(**options)

    return start


@pytest.mark.parametrize("pii", [False, True])
def test_an_authenticated_user_is_keyed_by_identity(
    with_sentry_middleware: Callable[..., Any], sentry_receiver: SentryReceiver, pii: bool
) -> None:
    with_sentry_middleware(**pii_options(pii))
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        assert client.get("/boom/a", headers={"x-user": "ann"}).status_code == 500
    (event,) = wait_for(lambda: sentry_receiver.events)
    expected = {"kind": "user", "key": "ann"}
    if pii:
        expected["name"] = "ann"
    assert ld_context_of(event) == expected


def test_a_visitor_without_a_user_is_anonymous_with_a_random_key(
    with_sentry_middleware: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    with_sentry_middleware()
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        client.get("/boom/1")
        client.get("/boom/2")
    events = wait_for(lambda: len(sentry_receiver.events) >= 2 and sentry_receiver.events)
    contexts = [ld_context_of(e) for e in events]
    assert all(c["anonymous"] is True and len(c["key"]) == 32 for c in contexts)
    assert contexts[0]["key"] != contexts[1]["key"]


def test_an_anonymous_visitor_keeps_one_key_for_the_whole_request(
    with_sentry_middleware: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    with_sentry_middleware()
    with TestClient(make_app()) as client:
        client.get("/twice")
        client.get("/twice")
    events = wait_for(lambda: len(sentry_receiver.events) >= 4 and sentry_receiver.events)
    keys = [ld_context_of(e)["key"] for e in events]
    assert keys[0] == keys[1]
    assert keys[2] == keys[3]
    assert keys[0] != keys[2]


def test_the_builder_runs_only_when_an_error_is_captured(
    with_sentry_middleware: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    calls: list[str] = []

    def context_for(scope: Any) -> Context:
        calls.append(scope["path"])
        return Context.builder(scope["user"].display_name).kind("member").set("plan", "pro").build()

    with_sentry_middleware()
    with TestClient(make_app(context_for), raise_server_exceptions=False) as client:
        for _ in range(5):
            assert client.get("/ok", headers={"x-user": "bo"}).status_code == 200
        assert calls == []  # requests without errors never build a context
        client.get("/boom/b", headers={"x-user": "bo"})
    (event,) = wait_for(lambda: sentry_receiver.events)
    assert calls == ["/boom/b"]
    assert ld_context_of(event) == {"kind": "member", "key": "bo", "plan": "pro"}


def test_a_flag_evaluation_later_in_the_request_wins(
    with_sentry_middleware: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any
) -> None:
    with_sentry_middleware(
        integrations=[StarletteIntegration(), FlagsIntegration(launchdarkly_client=ld_client)]
    )
    with TestClient(make_app(ld=ld_client), raise_server_exceptions=False) as client:
        client.get("/boom/z", headers={"x-user": "ann"})
    (event,) = wait_for(lambda: sentry_receiver.events)
    assert ld_context_of(event) == {"kind": "user", "key": "evaluated-z"}


def test_a_failing_builder_never_reaches_the_app(
    with_sentry_middleware: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    def broken(scope: Any) -> Context:
        raise KeyError("no user")

    with_sentry_middleware()
    with TestClient(make_app(broken), raise_server_exceptions=False) as client:
        assert client.get("/boom/x").status_code == 500
    (event,) = wait_for(lambda: sentry_receiver.events)
    assert label_of(event) == "boom x"
    assert ld_context_of(event) is None


def test_wrapping_the_whole_app_works_too(
    with_sentry_middleware: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    # Outside Sentry's middleware: ours forks a scope, Sentry's forks a copy of it inside.
    with_sentry_middleware()
    started: list[bool] = []

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        started.append(True)
        yield

    app = make_app(wrap=True, lifespan=lifespan)
    with TestClient(app, raise_server_exceptions=False) as client:  # lifespan passes through
        client.get("/boom/w", headers={"x-user": "cy"})
    assert started == [True]
    (event,) = wait_for(lambda: sentry_receiver.events)
    assert ld_context_of(event) == {"kind": "user", "key": "cy"}


@pytest.mark.parametrize("sentry_middleware", [True, False], ids=["sentry-middleware", "own-scope"])
def test_concurrent_requests_keep_their_own_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, sentry_middleware: bool
) -> None:
    httpx = pytest.importorskip("httpx")
    if sentry_middleware:
        sentry_init(integrations=[StarletteIntegration(), FlagsIntegration()])
        path = "boom"
    else:
        # No Starlette/ASGI integration: nothing forks a scope per request but us, and the
        # only errors captured are those the app reports itself.
        sentry_init(auto_enabling_integrations=False, integrations=[FlagsIntegration()])
        path = "report"
    n = 16
    app = make_app()

    async def go() -> None:
        # All requests are tasks of one event loop, so without a fork per request they
        # would share one isolation scope.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await asyncio.gather(
                *(http.get(f"/{path}/{i}", headers={"x-user": f"user-{i}"}) for i in range(n))
            )

    asyncio.run(go())
    events = wait_for(lambda: len(sentry_receiver.events) >= n and sentry_receiver.events)
    assert len(events) == n
    for event in events:
        i = label_of(event).split()[-1]
        assert ld_context_of(event) == {"kind": "user", "key": f"user-{i}"}


def test_requests_from_several_threads_keep_their_own_context(
    with_sentry_middleware: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    with_sentry_middleware()
    n = 8
    barrier = threading.Barrier(n)
    with TestClient(make_app(), raise_server_exceptions=False) as client:  # one event loop for all

        def hit(i: int) -> None:
            barrier.wait(timeout=10)
            client.get(f"/boom/{i}", headers={"x-user": f"user-{i}"})

        threads = [threading.Thread(target=hit, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
    events = wait_for(lambda: len(sentry_receiver.events) >= n and sentry_receiver.events)
    assert sorted(ld_context_of(e)["key"] for e in events) == sorted(f"user-{i}" for i in range(n))


def test_a_non_callable_builder_is_refused() -> None:
    with pytest.raises(TypeError, match="context_from_scope"):
        FlagsMiddleware(make_app(), context_from_scope="not callable")  # type: ignore[arg-type]


def test_the_default_context_from_a_scope() -> None:
    from sentry_flags.asgi import context_for_user

    class Member:
        is_authenticated = True
        id = 7
        email = "m@example.com"

    assert context_for_user({"user": Member()}).key == "7"
    assert context_for_user({"user": SimpleUser("sam")}).key == "sam"
    assert context_for_user({}).anonymous
    from starlette.authentication import UnauthenticatedUser

    assert context_for_user({"user": UnauthenticatedUser()}).anonymous
