"""FlagsMiddleware: each Django request's LaunchDarkly context rides on its errors.

Requests go through Django's test client (sync and async) and, for per-request isolation of
concurrent requests, through Django's real WSGI and ASGI handlers, which sentry-sdk's
DjangoIntegration wraps the way it does in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any, Callable
from wsgiref.util import setup_testing_defaults

import pytest
import sentry_sdk

pytest.importorskip("django")
pytest.importorskip("ldclient")

import django
from ldclient import Context
from sentry_sdk.integrations.django import DjangoIntegration

from helpers import pii_options, split_whitelist_flag, started_split_factory
from receivers import SentryReceiver, SplitReceiver, wait_for
from sentry_flags import FlagsIntegration

CONTEXT = "launchdarklyContext"


@pytest.fixture(scope="session", autouse=True)
def _django(tmp_path_factory: pytest.TempPathFactory) -> None:
    from django_project.settings import configure

    configure(str(tmp_path_factory.mktemp("django") / "db.sqlite3"))


@pytest.fixture(autouse=True)
def _own_scope() -> Iterator[None]:
    # Django's test client bypasses the WSGI handler sentry-sdk patches to fork a scope per
    # request, so DjangoIntegration's per-request event processors (which add the logged-in
    # user) would pile up on this thread's scope and reach other tests' events.
    with sentry_sdk.isolation_scope():
        yield


@pytest.fixture
def init(sentry_init: Callable[..., Any]) -> Callable[..., Any]:
    def start(**options: Any) -> Any:
        options.setdefault("integrations", [DjangoIntegration(), FlagsIntegration()])
        return sentry_init(**options)

    return start


def make_user(**fields: Any) -> Any:
    from django.contrib.auth.models import User

    return User.objects.create_user(username=f"u-{uuid.uuid4().hex[:12]}", password="pw", **fields)


def client(**kwargs: Any) -> Any:
    from django.test import Client

    return Client(raise_request_exception=False, **kwargs)


def async_client() -> Any:
    from django.test import AsyncClient

    return AsyncClient(raise_request_exception=False)


def ld_context_of(event: dict[str, Any]) -> Any:
    return event["contexts"].get(CONTEXT)


def message_of(event: dict[str, Any]) -> str:
    value: str = event["exception"]["values"][-1]["value"]
    return value


def one_event(receiver: SentryReceiver) -> dict[str, Any]:
    (event,) = wait_for(lambda: receiver.events)
    return event


# -- the default context ---------------------------------------------------------------------


@pytest.mark.parametrize("pii", [False, True])
def test_an_authenticated_user_is_keyed_by_pk_with_name_and_email_only_with_pii(
    init: Callable[..., Any], sentry_receiver: SentryReceiver, pii: bool
) -> None:
    init(**pii_options(pii))
    user = make_user(email="ann@example.com", first_name="Ann", last_name="Lee")
    browser = client()
    browser.force_login(user)
    assert browser.get("/boom/a").status_code == 500
    expected: dict[str, Any] = {"kind": "user", "key": str(user.pk)}
    if pii:
        expected.update(name="Ann Lee", email="ann@example.com")
    assert ld_context_of(one_event(sentry_receiver)) == expected


def test_an_anonymous_session_gets_a_stable_key_that_is_not_the_session_key(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init()
    browser = client()
    session_key = browser.session.session_key  # the test client saves a session and sets its cookie
    browser.get("/boom/1")
    browser.get("/boom/2")
    events = wait_for(lambda: len(sentry_receiver.events) >= 2 and sentry_receiver.events)
    first, second = (ld_context_of(e) for e in events)
    assert first == second
    assert first["anonymous"] is True
    assert first["kind"] == "user"
    assert len(first["key"]) == 32
    assert session_key not in first["key"]


def test_an_anonymous_visitor_without_a_session_gets_a_random_key_per_request(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init()
    browser = client()
    browser.get("/boom/1")
    browser.get("/boom/2")
    events = wait_for(lambda: len(sentry_receiver.events) >= 2 and sentry_receiver.events)
    keys = {ld_context_of(e)["key"] for e in events}
    assert len(keys) == 2
    assert all(ld_context_of(e)["anonymous"] is True for e in events)


def test_all_errors_of_one_anonymous_request_share_its_random_key(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init()
    browser = client()
    browser.get("/twice")
    browser.get("/twice")
    events = wait_for(lambda: len(sentry_receiver.events) >= 4 and sentry_receiver.events)
    keys = [ld_context_of(e)["key"] for e in events]
    assert keys[0] == keys[1]
    assert keys[2] == keys[3]
    assert keys[0] != keys[2]


def test_without_auth_and_session_middleware_the_visitor_is_anonymous(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    from django.test import override_settings

    init()
    with override_settings(MIDDLEWARE=["sentry_flags.django.FlagsMiddleware"]):
        client().get("/boom/x")
    ctx = ld_context_of(one_event(sentry_receiver))
    assert ctx["anonymous"] is True
    assert len(ctx["key"]) == 32


# -- laziness, the setting, latest wins ---------------------------------------------------------


def test_the_configured_builder_is_called_only_when_an_error_is_captured(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    from django.test import override_settings

    from django_project import flags

    init()
    flags.calls.clear()
    with override_settings(SENTRY_FLAGS={"CONTEXT": "django_project.flags.context_for"}):
        browser = client()
        for _ in range(5):
            assert browser.get("/ok?account=a1").status_code == 200
        assert flags.calls == []  # requests without errors never build a context
        browser.get("/boom/a?account=a2")
    event = one_event(sentry_receiver)
    assert flags.calls == ["/boom/a"]
    assert ld_context_of(event) == {"kind": "account", "key": "a2", "plan": "pro"}


def test_the_default_builder_does_not_touch_the_user_of_requests_without_errors(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    init()
    browser = client()
    browser.force_login(make_user())
    with CaptureQueriesContext(connection) as queries:
        assert browser.get("/ok").status_code == 200
    assert len(queries) == 0  # no session load, no user lookup
    browser.get("/boom/q")
    assert "anonymous" not in ld_context_of(one_event(sentry_receiver))


def test_a_flag_evaluation_later_in_the_request_wins(
    init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_project import views

    monkeypatch.setattr(views, "ld_client", ld_client)
    init(integrations=[DjangoIntegration(), FlagsIntegration(launchdarkly_client=ld_client)])
    browser = client()
    browser.force_login(make_user())
    browser.get("/evaluate/z")
    assert ld_context_of(one_event(sentry_receiver)) == {"kind": "user", "key": "evaluated-z"}


def test_a_failing_builder_never_reaches_the_app(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    from django.test import override_settings

    def broken(request: Any) -> Context:
        raise KeyError("no account")

    init()
    with override_settings(SENTRY_FLAGS={"CONTEXT": broken}):
        response = client().get("/boom/b")
    assert response.status_code == 500  # the view's own error, nothing of ours
    event = one_event(sentry_receiver)
    assert message_of(event) == "boom b"
    assert ld_context_of(event) is None


# Wrong SENTRY_FLAGS settings are in test_bad_options.py.


# -- concurrency -----------------------------------------------------------------------------------


def test_concurrent_requests_keep_their_own_user(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init()
    users = [make_user() for _ in range(12)]
    browsers = []
    for user in users:
        browser = client()
        browser.force_login(user)
        browsers.append(browser)
    barrier = threading.Barrier(len(users))

    def hit(i: int) -> None:
        barrier.wait(timeout=10)
        browsers[i].get(f"/boom/{i}")

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(len(users))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    events = wait_for(lambda: len(sentry_receiver.events) >= len(users) and sentry_receiver.events)
    assert len(events) == len(users)
    for event in events:
        i = int(message_of(event).split()[-1])
        assert ld_context_of(event) == {"kind": "user", "key": str(users[i].pk)}


def wsgi_get(handler: Any, path: str, session_key: str) -> str:
    """GET ``path`` through a WSGI callable, with a session cookie; the response status."""
    from django.conf import settings

    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "HTTP_COOKIE": f"{settings.SESSION_COOKIE_NAME}={session_key}",
    }
    setup_testing_defaults(environ)
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return lambda data: None

    body = handler(environ, start_response)
    try:
        b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()  # ends the request: sentry-sdk's scope, Django's request_finished
    return statuses[0]


@pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")  # splitio's own
@pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning")  # splitio on 3.12+
def test_many_threads_through_the_wsgi_handler_keep_their_own_user_and_treatments(
    init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    split_receiver: SplitReceiver,
    make_split_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Django's real WSGIHandler, which sentry-sdk's DjangoIntegration patches to give each
    # request its own isolation scope (so FlagsMiddleware does not fork one itself). Each
    # request's view asks Split for a treatment keyed by its user, then fails; the Split SDK
    # reports the treatment through our impression listener on the request's thread. Each
    # thread serves a different user on every request, as a server's worker threads do.
    pytest.importorskip("splitio")
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connections

    from django_project import views
    from sentry_flags.split import impression_listener

    n_threads, per_thread = 20, 3
    users = [make_user() for _ in range(n_threads)]
    off_for = [str(user.pk) for user in users[::2]]
    split_receiver.set_splits(split_whitelist_flag(views.SPLIT_FLAG, off_for))
    factory = started_split_factory(make_split_factory(impressionListener=impression_listener()))
    monkeypatch.setattr(views, "split_client", factory.client())
    init()
    session_keys = []
    for user in users:
        browser = client()
        browser.force_login(user)
        session_keys.append(browser.session.session_key)
    handler = WSGIHandler()
    barrier = threading.Barrier(n_threads)
    statuses: list[str] = []

    def hit(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            for j in range(per_thread):
                k = (i + 7 * j) % n_threads  # the user of this request
                statuses.append(wsgi_get(handler, f"/split/{k}-{i}-{j}", session_keys[k]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    total = n_threads * per_thread
    assert statuses == ["500 Internal Server Error"] * total
    events = wait_for(lambda: len(sentry_receiver.events) >= total and sentry_receiver.events, timeout=20)
    assert len(events) == total
    assert sorted(message_of(e) for e in events) == sorted(
        f"boom {(i + 7 * j) % n_threads}-{i}-{j}" for i in range(n_threads) for j in range(per_thread)
    )
    for event in events:
        user = users[int(message_of(event).split()[-1].split("-")[0])]
        assert ld_context_of(event) == {"kind": "user", "key": str(user.pk)}
        off = str(user.pk) in off_for
        expected = (
            {"value": "off", "reason": "whitelisted"} if off else {"value": "on", "reason": "default rule"}
        )
        assert event["contexts"]["flagEvaluations"] == {
            "values": [{"flag": views.SPLIT_FLAG, **expected, "source": "split"}]
        }
        assert event["contexts"]["flags"]["values"] == [{"flag": views.SPLIT_FLAG, "result": not off}]
        assert "example.com" not in str(event["contexts"])  # Split attributes are not recorded


# -- async views -------------------------------------------------------------------------------------


def test_the_middleware_follows_the_chain_into_async_mode() -> None:
    from asgiref.sync import iscoroutinefunction

    from sentry_flags.django import FlagsMiddleware

    async def get_response(request: Any) -> Any:
        return None

    assert iscoroutinefunction(FlagsMiddleware(get_response))
    assert not iscoroutinefunction(FlagsMiddleware(lambda request: None))


def test_an_async_view_error_carries_the_user(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init()
    user = make_user()

    browser = async_client()
    browser.force_login(user)  # sync, before the loop: Django 4.2 has no aforce_login

    async def go() -> int:
        response = await browser.get("/async/boom/a")
        return int(response.status_code)

    assert asyncio.run(go()) == 500
    assert ld_context_of(one_event(sentry_receiver)) == {"kind": "user", "key": str(user.pk)}


def test_an_error_the_async_view_reports_after_loading_its_user_carries_it(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    if django.VERSION < (5, 0):
        pytest.skip("request.auser() is Django 5.0+")
    init(before_send=watch.close)
    user = make_user()
    browser = async_client()
    browser.force_login(user)

    async def go() -> int:
        response = await browser.get("/async/capture-after-auser/c")
        return int(response.status_code)

    with watch.capturing():
        assert asyncio.run(go()) == 200
    assert ld_context_of(one_event(sentry_receiver)) == {"kind": "user", "key": str(user.pk)}
    assert watch.queries == []


# -- capture reads only what the request loaded: no database, no thread, no wait ---------------------


class CaptureWatch:
    """The database queries run, on any thread, while sentry-sdk captures an event.

    A capture is watched from the event processors (a global one of ours here) to the app's
    ``before_send`` (``watch.close``): our stage, which builds the context, runs in between.
    Connections opened meanwhile (a helper thread's, Django's worker threads') are watched too.
    """

    def __init__(self) -> None:
        self.active = False
        self.open = threading.Event()
        self.queries: list[str] = []
        self.captures = 0
        self._wrapped: list[Any] = []
        sentry_sdk.scope.add_global_event_processor(self._opened)

    def _opened(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        if self.active:
            self.open.set()
        return event

    def close(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        if self.active:
            self.open.clear()
            self.captures += 1
        return event

    def _record(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if self.open.is_set():
            self.queries.append(sql)
        return execute(sql, params, many, context)

    def _wrap(self, connection: Any, **kwargs: Any) -> None:
        if self._record not in connection.execute_wrappers:
            connection.execute_wrappers.append(self._record)
            self._wrapped.append(connection)

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        from django.db import connections
        from django.db.backends.signals import connection_created

        self.queries.clear()
        self.captures = 0
        self.active = True
        connection_created.connect(self._wrap)
        for connection in connections.all():
            self._wrap(connection)
        try:
            yield
        finally:
            connection_created.disconnect(self._wrap)
            self.active = False
            self.open.clear()
            for connection in self._wrapped:
                with contextlib.suppress(ValueError):
                    connection.execute_wrappers.remove(self._record)
            self._wrapped.clear()


watch = CaptureWatch()


def test_an_error_the_view_reports_before_loading_its_user_reads_no_database(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init(before_send=watch.close, **pii_options(False))
    browser = client()
    browser.force_login(make_user())

    with watch.capturing():
        assert browser.get("/capture/r").status_code == 200

    event = one_event(sentry_receiver)
    assert watch.captures == 1
    assert watch.queries == []  # neither the session nor the user was read to capture it
    # Whoever it was cannot be told without reading them: no context, rather than a wrong one.
    assert ld_context_of(event) is None


def test_the_event_loop_keeps_serving_while_an_error_is_captured_on_it(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    from django_project import views

    init(before_send=watch.close, **pii_options(False))
    user = make_user()
    browser = async_client()
    browser.force_login(user)
    threads_before = {t.ident for t in threading.enumerate()}

    async def get(path: str) -> int:
        response = await browser.get(path)
        return int(response.status_code)

    async def go() -> list[int]:
        views.rendezvous = views.Rendezvous()  # its events belong to this loop
        # Two requests on this one loop: the error is reported (on the loop's thread, before
        # anything loaded the user) while the other request is in flight, and the reporting
        # request ends only after the other was served. The wait_for bounds a rendezvous
        # that never happens; it asserts no duration.
        both = asyncio.gather(get("/async/capture-amid-another/l"), get("/async/served-across-a-capture"))
        return list(await asyncio.wait_for(both, timeout=60))

    try:
        with watch.capturing():
            assert asyncio.run(go()) == [200, 200]
        log = views.rendezvous.log
    finally:
        views.rendezvous = None
    event = one_event(sentry_receiver)

    assert log == ["other request waiting", "error captured", "other request served"]
    assert watch.captures == 1
    assert watch.queries == []
    assert ld_context_of(event) is None  # documented: a session, its user never loaded
    started = [t.name for t in threading.enumerate() if t.ident not in threads_before]
    assert not [name for name in started if name.startswith("sentry-flags")]


def test_a_view_exception_carries_the_user_loaded_before_the_capture(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init(before_send=watch.close, **pii_options(False))
    user = make_user()
    sync_browser, async_browser = client(), async_client()
    sync_browser.force_login(user)
    async_browser.force_login(user)

    async def go() -> int:
        response = await async_browser.get("/async/boom/v")
        return int(response.status_code)

    with watch.capturing():
        assert sync_browser.get("/boom/v").status_code == 500
        assert asyncio.run(go()) == 500

    events = wait_for(lambda: len(sentry_receiver.events) >= 2 and sentry_receiver.events)
    assert [ld_context_of(e) for e in events] == [{"kind": "user", "key": str(user.pk)}] * 2
    assert watch.captures == 2
    assert watch.queries == []  # loaded by the middleware's process_exception, not by the capture


def test_concurrent_async_requests_through_the_asgi_handler_keep_their_own_context(
    init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    httpx = pytest.importorskip("httpx")
    from django.core.handlers.asgi import ASGIHandler
    from django.test import override_settings

    init()
    n = 12
    with override_settings(SENTRY_FLAGS={"CONTEXT": "django_project.flags.context_for"}):
        handler = ASGIHandler()  # sentry-sdk wraps it: one isolation scope per request

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            responses = await asyncio.gather(
                *(http.get(f"/async/boom/{i}", params={"account": f"acct-{i}"}) for i in range(n))
            )
        return [r.status_code for r in responses]

    assert asyncio.run(go()) == [500] * n
    events = wait_for(lambda: len(sentry_receiver.events) >= n and sentry_receiver.events)
    assert len(events) == n
    for event in events:
        i = message_of(event).split()[-1]
        assert ld_context_of(event) == {"kind": "account", "key": f"acct-{i}", "plan": "pro"}
