"""sentry_flags.celery: the LaunchDarkly context of the sender reaches the task's errors.

A real Celery worker (solo pool, in a thread) consumes from Celery's in-memory broker, so
every task goes through a real message with headers, with sentry-sdk's CeleryIntegration
enabled on the client and without it. Celery is in the ``test`` extra; without it these
tests skip.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest

pytest.importorskip("celery")
pytest.importorskip("ldclient")

import sentry_sdk
from celery import Celery, signals
from ldclient import Context

import sentry_flags.celery as flags_celery
from helpers import pii_options
from receivers import SentryReceiver, wait_for
from sentry_flags import FlagsIntegration, get_launchdarkly_context, set_launchdarkly_context

CONTEXT = "launchdarklyContext"
TIMEOUT = 10


class Recorder:
    """What the tasks saw and what the messages carried, for one test."""

    def __init__(self) -> None:
        self.seen: list[Optional[dict[str, Any]]] = []
        self.headers: list[dict[str, Any]] = []

    def on_publish(self, headers: Optional[dict[str, Any]] = None, **kwargs: Any) -> None:
        self.headers.append(dict(headers or {}))


# Celery keeps task names process-wide, so the app and its tasks are made once.
app = Celery("sentry_flags_tests", broker="memory://", backend="cache+memory://")
app.conf.update(
    task_always_eager=False,
    worker_hijack_root_logger=False,
    broker_transport_options={"polling_interval": 0.01},  # the memory transport polls
)
recorder = Recorder()


@app.task(name="sentry_flags_tests.record")
def record() -> None:
    context = get_launchdarkly_context()
    recorder.seen.append(None if context is None else context.to_dict())


@app.task(name="sentry_flags_tests.fail")
def fail(name: str) -> None:
    raise RuntimeError(f"task failed {name}")


@app.task(name="sentry_flags_tests.report")
def report(name: str) -> None:
    sentry_sdk.capture_message(f"task report {name}")


@app.task(name="sentry_flags_tests.in_a_request_context")
def in_a_request_context(name: str) -> None:
    # A task that pushes a Flask request context (for url_for, say) of an app with the
    # extension, which builds "from-request" for it.
    import flask

    from sentry_flags.flask import FlagsExtension

    web = flask.Flask("task_web")
    FlagsExtension(web, context_from_request=lambda request: member("from-request"))
    with web.test_request_context("/"):
        if name == "stored-in-the-request":
            set_launchdarkly_context(member("stored-in-the-request"))
        context = get_launchdarkly_context()
        recorder.seen.append(None if context is None else context.to_dict())
        sentry_sdk.capture_message(f"task report {name}")


# A helper thread a task starts and leaves running: it serves requests of a Flask app with
# the extension (which builds "from-request"), one per job, and answers with their context.
helper_jobs: queue.Queue[Optional[str]] = queue.Queue()
helper_answers: queue.Queue[Optional[str]] = queue.Queue()
helper_threads: list[threading.Thread] = []


def _serve_requests() -> None:
    import flask

    from sentry_flags.flask import FlagsExtension

    web = flask.Flask("helper_web")
    FlagsExtension(web, context_from_request=lambda request: member("from-request"))
    while helper_jobs.get() is not None:
        with web.test_request_context("/"):
            context = get_launchdarkly_context()
            helper_answers.put(None if context is None else context.key)


@app.task(name="sentry_flags_tests.start_a_helper_thread")
def start_a_helper_thread() -> None:
    thread = threading.Thread(target=_serve_requests, daemon=True)
    helper_threads.append(thread)
    thread.start()
    helper_jobs.put("during the task")
    recorder.seen.append({"during the task": helper_answers.get(timeout=TIMEOUT)})


@pytest.fixture
def connected() -> Iterator[None]:
    flags_celery.connect()
    yield
    flags_celery.disconnect()


@pytest.fixture(scope="module")
def _worker() -> Iterator[None]:
    # The worker builds its task tracers when it starts, with the build_tracer its consumer
    # module imported; sentry-sdk's Celery integration patches that function, so it must be
    # set up before the worker modules are imported (as when sentry_sdk.init runs first).
    from sentry_sdk.integrations import setup_integrations
    from sentry_sdk.integrations.celery import CeleryIntegration

    setup_integrations([CeleryIntegration()], with_defaults=False)
    from celery.contrib.testing.worker import start_worker

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=TIMEOUT):
        yield


@pytest.fixture
def worker(_worker: None, connected: None) -> Iterator[Recorder]:
    global recorder
    recorder = Recorder()
    # Runs after ours (connected first), so it sees the headers as they are sent.
    signals.before_task_publish.connect(recorder.on_publish, weak=False, dispatch_uid="test-recorder")
    yield recorder
    signals.before_task_publish.disconnect(recorder.on_publish, dispatch_uid="test-recorder")


def run(task: Any, *args: Any) -> None:
    result = task.delay(*args)
    result.get(timeout=TIMEOUT, interval=0.01, propagate=False)


def member(key: str, **attributes: Any) -> Context:
    builder = Context.builder(key).kind("user")
    for name, value in attributes.items():
        builder.set(name, value)
    return builder.build()


@pytest.mark.parametrize("celery_integration", [True, False], ids=["sentry-celery", "no-sentry-celery"])
def test_an_error_in_the_task_carries_the_context_it_was_sent_with(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    worker: Recorder,
    celery_integration: bool,
) -> None:
    if celery_integration:
        from sentry_sdk.integrations.celery import CeleryIntegration

        sentry_init(integrations=[CeleryIntegration(), FlagsIntegration()])
        task = fail
    else:
        sentry_init(auto_enabling_integrations=False, integrations=[FlagsIntegration()])
        task = report  # nothing captures task failures without the integration
    set_launchdarkly_context(member("u-1", plan="pro"))
    run(task, "a")
    (event,) = wait_for(lambda: sentry_receiver.events, timeout=TIMEOUT)
    assert event["contexts"][CONTEXT] == {"kind": "user", "key": "u-1", "plan": "pro"}


def test_private_attributes_and_pii_stay_out_of_the_message(
    sentry_init: Callable[..., Any], worker: Recorder
) -> None:
    sentry_init(integrations=[FlagsIntegration()], **pii_options(False))
    context = (
        Context.builder("u-2")
        .name("Ann")
        .set("email", "ann@example.com")
        .set("plan", "pro")
        .set("secret", "s3")
        .private("secret")
        .build()
    )
    set_launchdarkly_context(context)
    run(record)
    assert worker.headers[-1][flags_celery.HEADER] == {"kind": "user", "key": "u-2", "plan": "pro"}
    assert worker.seen == [{"kind": "user", "key": "u-2", "plan": "pro"}]


@pytest.mark.parametrize("source", ["evaluated", "set-by-hand", "set-by-hand-plugin-client"])
def test_the_launchdarkly_client_s_private_attributes_stay_out_of_the_message(
    sentry_init: Callable[..., Any],
    worker: Recorder,
    make_ld_client: Callable[..., Any],
    ld_test_data: Any,
    source: str,
) -> None:
    # Private by the LD client's config, not by the context: the evaluation hook records the
    # client's settings with the context; a context set by hand gets every hooked client's
    # (FlagsIntegration's, or one hooked through its plugin).
    private = ["plan", "/address/street"]
    if source == "set-by-hand-plugin-client":
        from sentry_flags.launchdarkly import SentryFlagsPlugin

        make_ld_client(
            update_processor_class=ld_test_data, plugins=[SentryFlagsPlugin()], private_attributes=private
        )
        sentry_init(integrations=[FlagsIntegration()])
    else:
        ld = make_ld_client(update_processor_class=ld_test_data, private_attributes=private)
        sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])
    context = (
        Context.builder("u-7")
        .set("plan", "pro")
        .set("address", {"street": "1 Main St", "city": "Oslo"})
        .set("tier", "gold")
        .build()
    )
    if source == "evaluated":
        ld.variation("some-flag", context, False)
    else:
        set_launchdarkly_context(context)
    run(record)
    expected = {"kind": "user", "key": "u-7", "address": {"city": "Oslo"}, "tier": "gold"}
    assert worker.headers[-1][flags_celery.HEADER] == expected
    assert worker.seen == [expected]


def test_names_and_emails_travel_when_pii_is_allowed(
    sentry_init: Callable[..., Any], worker: Recorder
) -> None:
    sentry_init(integrations=[FlagsIntegration()], **pii_options(True))
    set_launchdarkly_context(Context.builder("u-3").name("Ann").set("email", "ann@example.com").build())
    run(record)
    assert worker.seen == [{"kind": "user", "key": "u-3", "name": "Ann", "email": "ann@example.com"}]


def test_only_kinds_and_keys_with_attributes_off(sentry_init: Callable[..., Any], worker: Recorder) -> None:
    flags_celery.connect(attributes=False)
    sentry_init(integrations=[FlagsIntegration()])
    org = Context.builder("o-1").kind("org").set("tier", "gold").build()
    user = Context.builder("anon-1").anonymous(True).set("plan", "pro").build()
    set_launchdarkly_context(Context.create_multi(user, org))
    run(record)
    assert worker.seen == [
        {"kind": "multi", "user": {"key": "anon-1", "anonymous": True}, "org": {"key": "o-1"}}
    ]


def test_a_lazy_context_is_built_when_the_task_is_sent(
    sentry_init: Callable[..., Any], worker: Recorder
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    calls: list[int] = []

    def build() -> Context:
        calls.append(1)
        return member("u-4")

    set_launchdarkly_context(build)
    assert calls == []
    run(record)
    assert calls == [1]
    assert worker.seen == [{"kind": "user", "key": "u-4"}]


def test_a_task_sent_from_a_flask_request_carries_the_requests_context(
    sentry_init: Callable[..., Any], worker: Recorder
) -> None:
    # The Flask extension stores nothing per request: the task message gets the context an
    # error of the request would carry, found through the request when the task is sent.
    flask = pytest.importorskip("flask")
    from sentry_sdk.integrations.flask import FlaskIntegration

    from sentry_flags.flask import FlagsExtension

    sentry_init(auto_enabling_integrations=False, integrations=[FlaskIntegration(), FlagsIntegration()])
    web = flask.Flask("celery_sender")
    FlagsExtension(web, context_from_request=lambda request: member(request.args["user"]))

    @web.route("/send")
    def send() -> str:
        run(record)
        return "sent"

    assert web.test_client().get("/send?user=u-web").text == "sent"
    run(record)  # outside the request: nothing
    assert worker.seen == [{"kind": "user", "key": "u-web"}, None]


@pytest.mark.parametrize("sent", ["sent-with-a-context", "sent-without", "stored-in-the-request"])
def test_a_request_context_the_task_pushes_keeps_the_task_s_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, worker: Recorder, sent: str
) -> None:
    pytest.importorskip("flask")
    from sentry_sdk.integrations.celery import CeleryIntegration

    sentry_init(integrations=[CeleryIntegration(), FlagsIntegration()])
    if sent != "sent-without":
        set_launchdarkly_context(member("u-sender"))
    run(in_a_request_context, sent)

    expected = {
        "sent-with-a-context": {"kind": "user", "key": "u-sender"},
        "sent-without": None,  # none, as in the task itself: not the one the extension builds
        "stored-in-the-request": {"kind": "user", "key": "stored-in-the-request"},
    }[sent]
    assert worker.seen == [expected]
    (event,) = wait_for(lambda: sentry_receiver.events, timeout=TIMEOUT)
    assert event["contexts"].get(CONTEXT) == expected


def test_a_thread_the_task_started_serves_later_requests_with_their_own_context(
    sentry_init: Callable[..., Any], worker: Recorder
) -> None:
    # sentry-sdk's ThreadingIntegration gives the thread a copy of the task's scope, which
    # it keeps after the task ends: while the task runs, a request context the thread pushes
    # is the task's work; once it has ended, a request is the request's own.
    pytest.importorskip("flask")
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.threading import ThreadingIntegration

    sentry_init(
        auto_enabling_integrations=False,
        integrations=[CeleryIntegration(), ThreadingIntegration(propagate_scope=True), FlagsIntegration()],
    )
    set_launchdarkly_context(member("u-sender"))
    run(start_a_helper_thread)
    try:
        helper_jobs.put("after the task")
        after = helper_answers.get(timeout=TIMEOUT)
    finally:
        helper_jobs.put(None)
        helper_threads.pop().join(TIMEOUT)
    assert worker.seen == [{"during the task": "u-sender"}]
    assert after == "from-request"


def test_a_task_sent_without_a_context_does_not_see_the_previous_task_s(
    sentry_init: Callable[..., Any], worker: Recorder
) -> None:
    sentry_init(auto_enabling_integrations=False, integrations=[FlagsIntegration()])
    set_launchdarkly_context(member("u-5"))
    run(record)
    set_launchdarkly_context(None)
    run(record)
    assert worker.seen == [{"kind": "user", "key": "u-5"}, None]
    assert flags_celery.HEADER not in worker.headers[-1]


def test_an_eager_task_runs_in_its_caller_s_scope_and_leaves_it_alone(
    sentry_init: Callable[..., Any], connected: None
) -> None:
    global recorder
    recorder = Recorder()
    sentry_init(integrations=[FlagsIntegration()])
    set_launchdarkly_context(member("u-6"))
    record.apply()  # what task_always_eager makes of delay()
    assert recorder.seen == [{"kind": "user", "key": "u-6"}]
    context = get_launchdarkly_context()
    assert context is not None
    assert context.key == "u-6"


def test_senders_on_several_threads_each_send_their_own(
    sentry_init: Callable[..., Any], worker: Recorder
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    n = 8
    barrier = threading.Barrier(n)

    def send(i: int) -> None:
        set_launchdarkly_context(member(f"u-{i}"))  # each thread has its own isolation scope
        barrier.wait(timeout=TIMEOUT)
        run(record)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIMEOUT * 2)
    assert sorted(s["key"] for s in worker.seen if s) == sorted(f"u-{i}" for i in range(n))
