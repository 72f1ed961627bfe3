"""ignore_errors, deny_urls, allow_urls and include_paths on real events.

A dropped event never leaves the app: ``capture_*`` returns None (our stage runs inside
sentry-sdk's capture) and, after a flush, the receiver holds only the events kept.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration

from helpers import CoreTestError, by_summary, raise_and_capture, received, summaries
from receivers import SentryReceiver
from sentry_flags import FlagsIntegration

THIS_FILE = Path(__file__).name


@pytest.fixture(autouse=True)
def _own_isolation_scope() -> Any:
    with sentry_sdk.isolation_scope():
        yield


class PaymentError(Exception):
    pass


@pytest.fixture
def vendor_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real module on disk, outside the tests, whose functions raise or call back."""
    package = f"vendorlib_{uuid.uuid4().hex[:8]}"
    root = tmp_path / package
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "thing.py").write_text(
        textwrap.dedent(
            """
            def explode(message):
                raise ValueError(message)

            def call(callback):
                return callback()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(f"{package}.thing")
    yield module
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def capture_from(vendor: Any, message: str) -> Any:
    try:
        vendor.explode(message)
    except ValueError:
        return sentry_sdk.capture_exception()


def init_filters(sentry_init: Callable[..., Any], **options: Any) -> Any:
    extra = {k: options.pop(k) for k in list(options) if k in ("integrations_extra", "sentry_options")}
    sentry_options = extra.get("sentry_options", {})
    integrations = [FlagsIntegration(**options), *extra.get("integrations_extra", [])]
    return sentry_init(integrations=integrations, **sentry_options)


# -- ignore_errors ---------------------------------------------------------------------------


def test_ignore_errors_substring_is_case_sensitive(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init_filters(sentry_init, ignore_errors=["Card declined"])

    assert raise_and_capture("Card declined by issuer") is None
    assert raise_and_capture("card declined by issuer") is not None
    assert raise_and_capture("kept") is not None

    assert summaries(sentry_receiver, 2) == ["card declined by issuer", "kept"]


def test_ignore_errors_matches_type_colon_value(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init_filters(sentry_init, ignore_errors=["PaymentError: timeout"])

    assert raise_and_capture("timeout", PaymentError) is None
    assert raise_and_capture("timeout", ValueError) is not None  # "ValueError: timeout"
    assert raise_and_capture("gateway", PaymentError) is not None  # "PaymentError: gateway"

    assert summaries(sentry_receiver, 2) == ["gateway", "timeout"]


def test_ignore_errors_regex(sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver) -> None:
    init_filters(
        sentry_init, ignore_errors=[re.compile(r"^ValueError: code \d+$"), re.compile("^only-value$")]
    )

    assert raise_and_capture("code 42") is None
    assert raise_and_capture("only-value") is None  # the bare value is a candidate too
    assert raise_and_capture("code x") is not None
    assert raise_and_capture("code 42", KeyError) is not None

    assert summaries(sentry_receiver, 2) == ["'code 42'", "code x"]


def test_ignore_errors_matches_messages(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init_filters(sentry_init, ignore_errors=["noisy heartbeat", re.compile("^exact message$")])

    assert sentry_sdk.capture_message("a noisy heartbeat was seen") is None
    assert sentry_sdk.capture_message("exact message") is None
    assert sentry_sdk.capture_message("not an exact message") is not None
    assert sentry_sdk.capture_message("Noisy Heartbeat") is not None

    assert summaries(sentry_receiver, 2) == ["Noisy Heartbeat", "not an exact message"]


def test_ignore_errors_matches_logging_logentry(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init_filters(
        sentry_init,
        ignore_errors=["cache miss for user-7", re.compile(r"^retrying %s after %d s$")],
        integrations_extra=[LoggingIntegration(event_level=logging.ERROR)],
    )
    log = logging.getLogger("core_tests.filters")

    log.error("cache miss for %s", "user-7")  # matched on the formatted text
    log.error("retrying %s after %d s", "job", 3)  # matched on the template
    log.error("cache miss for %s", "user-8")

    [event] = received(sentry_receiver, 1)
    assert event["logentry"]["formatted"] == "cache miss for user-8"
    assert event["logger"] == "core_tests.filters"


def test_sentry_sdk_ignore_errors_still_works_alongside(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init_filters(
        sentry_init,
        ignore_errors=["ours drops this"],
        sentry_options={"ignore_errors": [KeyError, "PaymentError"]},
    )

    assert raise_and_capture("sdk drops this", KeyError) is None
    assert raise_and_capture("sdk drops this too", PaymentError) is None
    assert raise_and_capture("ours drops this") is None
    assert raise_and_capture("kept") is not None

    assert summaries(sentry_receiver, 1) == ["kept"]


# -- deny_urls / allow_urls on frames ----------------------------------------------------------


def test_deny_urls_matches_the_raising_frames_path(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, vendor_module: Any
) -> None:
    package = vendor_module.__name__.split(".")[0]
    init_filters(sentry_init, deny_urls=[package])

    assert capture_from(vendor_module, "from the vendor") is None
    assert raise_and_capture("from the app") is not None

    assert summaries(sentry_receiver, 1) == ["from the app"]


@pytest.mark.parametrize(
    "which",
    ["abs_path", "filename", "module"],
)
def test_deny_urls_matches_abs_path_filename_and_module(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, vendor_module: Any, which: str
) -> None:
    package = re.escape(vendor_module.__name__.split(".")[0])
    pattern = {
        # Anchored so each regex can only match the one frame field.
        "abs_path": re.compile(rf"^/.*[/\\]{package}[/\\]thing\.py$"),
        "filename": re.compile(rf"^{package}[/\\]thing\.py$"),
        "module": re.compile(rf"^{package}\.thing$"),
    }[which]
    init_filters(sentry_init, deny_urls=[pattern])

    assert capture_from(vendor_module, "from the vendor") is None
    assert raise_and_capture("from the app") is not None

    assert summaries(sentry_receiver, 1) == ["from the app"]


def test_deny_urls_looks_only_at_the_raising_frame(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, vendor_module: Any
) -> None:
    package = vendor_module.__name__.split(".")[0]
    init_filters(sentry_init, deny_urls=[package])

    def app_callback() -> None:
        raise ValueError("raised by the app, called through the vendor")

    try:
        vendor_module.call(app_callback)
    except ValueError:
        event_id = sentry_sdk.capture_exception()
    assert event_id is not None

    [event] = received(sentry_receiver, 1)
    paths = [f.get("abs_path", "") for f in event["exception"]["values"][-1]["stacktrace"]["frames"]]
    assert any(package in p for p in paths)  # the vendor frame is in the stack, not raising


def test_string_pseudo_path_is_skipped(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init_filters(sentry_init, deny_urls=["<string>"])
    code = compile("raise ValueError('from exec')", "<string>", "exec")

    try:
        exec(code, {"__name__": "exec_module"})
    except ValueError:
        assert sentry_sdk.capture_exception() is not None

    [event] = received(sentry_receiver, 1)
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames[-1]["filename"] == "<string>"  # the pseudo frame raised, and was skipped


def test_string_pseudo_path_falls_back_to_the_real_caller(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init_filters(sentry_init, deny_urls=[re.compile(rf"{re.escape(THIS_FILE)}$")])
    code = compile("raise ValueError('from exec')", "<string>", "exec")

    try:
        exec(code, {"__name__": "exec_module"})
    except ValueError:
        assert sentry_sdk.capture_exception() is None


def test_frozen_pseudo_path_is_skipped(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init_filters(sentry_init, deny_urls=["<frozen", "importlib._bootstrap"])

    try:
        importlib.import_module(f"no_such_module_{uuid.uuid4().hex}")
    except ImportError:
        assert sentry_sdk.capture_exception() is not None

    [event] = received(sentry_receiver, 1)
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames[-1]["filename"].startswith("<frozen")


def test_frozen_pseudo_path_falls_back_to_the_real_frame(sentry_init: Callable[..., Any]) -> None:
    init_filters(sentry_init, deny_urls=[re.compile(r"importlib[/\\]__init__\.py$")])

    try:
        importlib.import_module(f"no_such_module_{uuid.uuid4().hex}")
    except ImportError:
        assert sentry_sdk.capture_exception() is None


def test_allow_urls_keeps_only_matching_frames_and_events_without_urls(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, vendor_module: Any
) -> None:
    package = vendor_module.__name__.split(".")[0]
    init_filters(sentry_init, allow_urls=[package])

    assert capture_from(vendor_module, "from the allowed vendor") is not None
    assert raise_and_capture("from the app") is None
    assert sentry_sdk.capture_message("a message has no URL") is not None
    assert (
        sentry_sdk.capture_event({"message": "request elsewhere", "request": {"url": "https://x.test/"}})
        is None
    )
    assert (
        sentry_sdk.capture_event(
            {"message": "request allowed", "request": {"url": f"https://x.test/{package}/"}}
        )
        is not None
    )

    assert summaries(sentry_receiver, 3) == [
        "a message has no URL",
        "from the allowed vendor",
        "request allowed",
    ]


def test_deny_urls_on_the_request_url_of_a_plain_event(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    init_filters(sentry_init, deny_urls=[re.compile(r"^https://shop\.test/admin/")])

    assert (
        sentry_sdk.capture_event({"message": "admin", "request": {"url": "https://shop.test/admin/x"}})
        is None
    )
    assert (
        sentry_sdk.capture_event({"message": "shop", "request": {"url": "https://shop.test/cart"}})
        is not None
    )

    assert summaries(sentry_receiver, 1) == ["shop"]


# -- framework integration: Flask ------------------------------------------------------------


@pytest.fixture
def flask_app() -> Any:
    flask = pytest.importorskip("flask")
    app = flask.Flask("core_filters_app")
    app.logger.disabled = True

    @app.route("/healthz")
    def healthz() -> str:
        raise RuntimeError("health check failed")

    @app.route("/other")
    def other() -> str:
        raise RuntimeError("other failed")

    @app.route("/api/orders")
    def orders() -> str:
        raise RuntimeError("orders failed")

    return app


def test_deny_urls_sees_the_request_url_flask_adds(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, flask_app: Any
) -> None:
    from sentry_sdk.integrations.flask import FlaskIntegration

    init_filters(sentry_init, deny_urls=["/healthz"], integrations_extra=[FlaskIntegration()])
    client = flask_app.test_client()

    assert client.get("/healthz").status_code == 500
    assert client.get("/other").status_code == 500

    [event] = received(sentry_receiver, 1)
    assert event["exception"]["values"][-1]["value"] == "other failed"
    assert event["request"]["url"].endswith("/other")


def test_allow_urls_sees_the_request_url_flask_adds(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, flask_app: Any
) -> None:
    from sentry_sdk.integrations.flask import FlaskIntegration

    init_filters(
        sentry_init, allow_urls=[re.compile(r"//[^/]+/api/")], integrations_extra=[FlaskIntegration()]
    )
    client = flask_app.test_client()

    client.get("/healthz")
    client.get("/api/orders")
    client.get("/other")

    [event] = received(sentry_receiver, 1)
    assert event["exception"]["values"][-1]["value"] == "orders failed"


# -- include_paths ---------------------------------------------------------------------------


def test_include_paths_marks_matching_frames_in_app(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, vendor_module: Any
) -> None:
    package = vendor_module.__name__.split(".")[0]
    init_filters(sentry_init, include_paths=[package])

    def app_callback() -> None:
        vendor_module.explode("nested")

    try:
        vendor_module.call(app_callback)
    except ValueError:
        sentry_sdk.capture_exception()

    [event] = received(sentry_receiver, 1)
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    marks = [(package in f.get("abs_path", ""), f["in_app"]) for f in frames]
    assert (True, True) in marks
    assert (False, False) in marks
    assert all(in_vendor == in_app for in_vendor, in_app in marks)


def test_include_paths_by_module_regex(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    this_module = __name__
    init_filters(sentry_init, include_paths=[re.compile(rf"^{re.escape(this_module)}$")])

    raise_and_capture("boom", CoreTestError)

    [event] = received(sentry_receiver, 1)
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames, event["exception"]
    for frame in frames:
        assert frame["in_app"] is (frame.get("module") == this_module), frame


def test_filters_combine(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, vendor_module: Any
) -> None:
    package = vendor_module.__name__.split(".")[0]
    init_filters(sentry_init, ignore_errors=["ignored"], deny_urls=[package], include_paths=[THIS_FILE])

    assert raise_and_capture("ignored here") is None
    assert capture_from(vendor_module, "denied") is None
    assert raise_and_capture("kept") is not None

    events = by_summary(received(sentry_receiver, 1))
    assert list(events) == ["kept"]
    frames = events["kept"]["exception"]["values"][-1]["stacktrace"]["frames"]
    assert [f["in_app"] for f in frames] == [THIS_FILE in f["abs_path"] for f in frames]
