"""Secrets in logs: SDK keys, the Segment write key and the DSN's keys are never logged by us.

One full run, every logger captured at DEBUG (the root logger and ``sentry_flags``,
``sentry_sdk``, ``ldclient``, ``splitio``, ``segment``, ``analytics``, ``urllib3``,
``backoff``, ``requests``): every record formatted with its arguments, its exception text
and stack, plus the raw message, arguments and any ``extra`` fields. sentry-sdk runs with
``debug=True`` and ``FlagsIntegration(debug=True)``; the run covers init, a Flask request
that evaluates flags on LaunchDarkly and Split and fails, forwarding to all three vendors,
faults (Segment refused at the socket, LaunchDarkly answering 401 to events, Split 500 to
events), flush, and shutdown of every client. Each key is a unique canary.

Asserted: no record of ours (``sentry_flags``) and none of sentry-sdk's holds any secret, no
Sentry envelope carries a vendor key or the DSN secret (sentry-sdk's logging integration
turns vendor log records into breadcrumbs), and ``repr``/``str`` of the integration, the
forwarders and their stats reveal no key. What the vendor SDKs log themselves is their
behaviour, not ours: it is collected, reported (``record_property`` and stdout) and checked
only for being what ``VENDOR_KEY_LOGGING`` says, so a change shows up.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import pytest

flask = pytest.importorskip("flask")
pytest.importorskip("ldclient")
pytest.importorskip("splitio")
pytest.importorskip("segment.analytics")

import sentry_sdk  # noqa: E402
from ldclient import Context  # noqa: E402
from ldclient.client import LDClient  # noqa: E402
from ldclient.config import Config  # noqa: E402
from segment.analytics import Client as SegmentClient  # noqa: E402
from sentry_sdk.integrations.flask import FlaskIntegration  # noqa: E402
from splitio import get_factory  # noqa: E402

from helpers import (  # noqa: E402
    SPLIT_TEST_CONFIG,
    destroy_split_factories,
    ld_test_settings,
    pii_options,
    segment_client_options,
    sentry_flags_logger_restored,
    started_split_factory,
)
from receivers import (  # noqa: E402
    LaunchDarklyReceiver,
    Mode,
    SentryReceiver,
    SplitReceiver,
    closed_port_url,
)
from sentry_flags import FlagsIntegration  # noqa: E402
from sentry_flags.flask import FlagsExtension  # noqa: E402
from sentry_flags.forwarders import (  # noqa: E402
    LaunchDarklyForwarder,
    SegmentForwarder,
    SplitForwarder,
)
from sentry_flags.split import impression_listener  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")  # splitio's own

LOGGERS = (
    "",  # root
    "sentry_flags",
    "sentry_sdk",
    "sentry_sdk.errors",
    "ldclient",
    "splitio",
    "segment",
    "analytics",
    "urllib3",
    "backoff",
    "requests",
)
LD_FLAG = "new-checkout"
SPLIT_FLAG = "sentry_flags_user_flag"


@dataclass(frozen=True, repr=False)
class Keys:
    ld_sdk_key: str
    split_sdk_key: str
    segment_write_key: str
    dsn_public_key: str
    dsn_secret_key: str

    @classmethod
    def fresh(cls) -> Keys:
        def token(label: str) -> str:
            return f"{label}{uuid.uuid4().hex}"

        return cls(
            ld_sdk_key=f"sdk-{token('ldkey')}",
            split_sdk_key=token("splitkey"),
            segment_write_key=token("segkey"),
            dsn_public_key=token("dsnpub"),
            dsn_secret_key=token("dsnsecret"),
        )

    def __repr__(self) -> str:  # the app's views close over it; sentry-sdk sends frame vars
        return "<Keys>"

    def all(self) -> dict[str, str]:
        return {
            "ld_sdk_key": self.ld_sdk_key,
            "split_sdk_key": self.split_sdk_key,
            "segment_write_key": self.segment_write_key,
            "dsn_public_key": self.dsn_public_key,
            "dsn_secret_key": self.dsn_secret_key,
        }

    def vendor(self) -> dict[str, str]:
        return {k: v for k, v in self.all().items() if not k.startswith("dsn_")}


def found_in(text: str, secrets: dict[str, str]) -> list[str]:
    lowered = text.lower()
    # The random part alone as well: a key cut or re-encoded still gives itself away.
    return [name for name, value in secrets.items() if value.lower() in lowered or value[-32:] in lowered]


# -- capture -------------------------------------------------------------------------------------


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@dataclass(frozen=True)
class Captured:
    name: str
    level: str
    text: str


class CaptureAll(logging.Handler):
    """Keeps every record as all the text it can produce."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.formatter_ = logging.Formatter("%(name)s %(levelname)s %(message)s")
        self.records: list[Captured] = []
        self._seen: set[int] = set()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            if id(record) in self._seen:  # attached to several loggers; once is enough
                return
            self._seen.add(id(record))
        try:
            text = self.formatter_.format(record)
        except Exception as exc:  # a vendor's malformed record: keep what there is
            text = f"<unformattable: {exc!r}>"
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        text = "\n".join([text, repr(record.msg), repr(record.args), repr(extra)])
        with self._guard:
            self.records.append(Captured(record.name, record.levelname, text))

    def by(self, predicate: Callable[[str], bool]) -> list[Captured]:
        with self._guard:
            return [r for r in self.records if predicate(r.name)]


@pytest.fixture
def captured_logs() -> Iterator[CaptureAll]:
    handler = CaptureAll()
    saved = []
    for name in LOGGERS:
        log = logging.getLogger(name)
        saved.append((log, log.level))
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
    with sentry_flags_logger_restored():
        try:
            yield handler
        finally:
            for log, level in saved:
                log.removeHandler(handler)
                log.setLevel(level)


def ours(name: str) -> bool:
    return name == "sentry_flags" or name.startswith("sentry_flags.")


def sentrys(name: str) -> bool:
    return name == "sentry_sdk" or name.startswith("sentry_sdk.")


def vendors(name: str) -> bool:
    return not ours(name) and not sentrys(name)


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Run:
    keys: Keys
    integration: FlagsIntegration
    forwarders: tuple[Any, ...]
    sentry: SentryReceiver
    ld: LaunchDarklyReceiver
    split: SplitReceiver


def make_app(keys: Keys, ld: Any, split_client: Any) -> Any:
    app = flask.Flask("secrets_in_logs_app")
    FlagsExtension(app)

    @app.before_request
    def identify() -> None:
        sentry_sdk.set_user({"id": "user-logs"})

    @app.route("/checkout")
    def checkout() -> str:
        split_client.get_treatment("user-logs", SPLIT_FLAG)
        ld.variation(LD_FLAG, Context.create("user-logs"), False)
        raise ValueError("checkout failed")

    return app


@pytest.fixture
def full_run(
    captured_logs: CaptureAll,
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    ld_receiver: LaunchDarklyReceiver,
    split_receiver: SplitReceiver,
    ld_test_data: Any,
) -> Iterator[Run]:
    keys = Keys.fresh()
    dsn = (
        f"http://{keys.dsn_public_key}:{keys.dsn_secret_key}@127.0.0.1:{sentry_receiver.port}"
        f"/{sentry_receiver.project_id}"
    )
    ld_test_data.update(ld_test_data.flag(LD_FLAG).variation_for_all(True))
    # Faults: LaunchDarkly rejects the events (401, as for a bad key), Split's events API
    # fails, Segment refuses connections outright.
    ld_receiver.set_mode(Mode.ERROR, path_prefix="/bulk", error_status=401)
    split_receiver.set_mode(Mode.ERROR, path_prefix="/api/events")
    # The fixtures' settings, with this run's own keys (conftest's clients have fixed ones).
    ld = LDClient(
        Config(keys.ld_sdk_key, **ld_test_settings(ld_receiver, update_processor_class=ld_test_data)),
        start_wait=5,
    )
    factory = get_factory(
        keys.split_sdk_key,
        config={**SPLIT_TEST_CONFIG, "impressionListener": impression_listener()},
        **split_receiver.factory_kwargs,
    )
    segment = SegmentClient(
        keys.segment_write_key,
        # Not debug=True: it would add a stderr handler to the shared "segment" logger for
        # good; the capture sets that logger to DEBUG itself.
        **segment_client_options(
            SegmentClient,
            {
                "host": closed_port_url(),
                "sync_mode": False,
                "upload_interval": 0.05,
                "max_retries": 1,
                "timeout": 2,
                "max_total_backoff_duration": 1,
                "max_rate_limit_duration": 1,
            },
        ),
    )
    try:
        split_client = started_split_factory(factory).client()
        forwarders = (SplitForwarder(split_client), LaunchDarklyForwarder(ld), SegmentForwarder(segment))
        integration = FlagsIntegration(launchdarkly_client=ld, forwarders=list(forwarders), debug=True)
        sentry_init(
            dsn=dsn,
            debug=True,
            integrations=[FlaskIntegration(), integration],
            environment="production",
            **pii_options(True),  # the most there is to log
        )
        with sentry_sdk.isolation_scope():
            response = make_app(keys, ld, split_client).test_client().get("/checkout")
        assert response.status_code == 500
        sentry_sdk.flush(timeout=5)
        sentry_receiver.wait_for_events(1)
        # The faults were met: each vendor was tried and failed.
        ld_receiver.wait_for_requests(1, path_prefix="/bulk")
        split_receiver.wait_for_requests(1, path_prefix="/api/events")
        sentry_sdk.flush(timeout=5)
        yield Run(keys, integration, forwarders, sentry_receiver, ld_receiver, split_receiver)
    finally:
        # Shutdown inside the capture: what the SDKs log on the way out counts too.
        sentry_sdk.get_client().close(timeout=2)
        ld.close()
        destroy_split_factories([factory])
        if segment.consumers:
            segment.join()


# -- tests ---------------------------------------------------------------------------------------


def test_our_records_never_hold_a_key_or_the_dsn(full_run: Run, captured_logs: CaptureAll) -> None:
    mine = captured_logs.by(ours)
    # The run did log at debug (bound, context attached, forwarded, refusals...).
    assert len(mine) >= 3, [r.text for r in mine]
    leaked = [(r.level, r.text) for r in mine if found_in(r.text, full_run.keys.all())]
    assert leaked == []


BAGGAGE_LINE = "Adding `baggage` header"


def test_sentry_sdk_records_never_hold_a_key_or_the_dsn(full_run: Run, captured_logs: CaptureAll) -> None:
    theirs = captured_logs.by(sentrys)
    assert theirs, "sentry-sdk logged nothing with debug=True"
    keys = full_run.keys
    secrets = {**keys.vendor(), "dsn_secret_key": keys.dsn_secret_key}
    leaked = [(r.level, r.text) for r in theirs if found_in(r.text, secrets)]
    assert leaked == []
    # The DSN's public key: only where sentry-sdk logs the trace-propagation ``baggage``
    # header it adds to every outgoing HTTP request (``sentry-public_key=...``, the Dynamic
    # Sampling Context; public by design), vendor SDK requests included.
    public = [r.text for r in theirs if found_in(r.text, {"pub": keys.dsn_public_key})]
    assert [t for t in public if BAGGAGE_LINE not in t] == []


def test_no_sentry_envelope_carries_a_vendor_key_or_the_dsn_secret(full_run: Run) -> None:
    # Vendor log records reach Sentry as breadcrumbs (and events, for errors) through
    # sentry-sdk's logging integration; nothing we hand to sentry-sdk may carry a key.
    # The DSN's keys go to Sentry itself, as they must: in the X-Sentry-Auth header, and the
    # public key in each envelope's header (``trace.public_key``).
    keys = full_run.keys
    assert full_run.sentry.requests
    for request in full_run.sentry.requests:
        assert found_in(request.wire_bytes().decode("utf-8", "replace"), keys.vendor()) == [], request.path
        assert keys.dsn_secret_key not in request.body.decode("utf-8", "replace")
        assert keys.dsn_secret_key not in request.target
        for name, value in request.raw_headers:
            if name.lower() != "x-sentry-auth":
                assert keys.dsn_secret_key not in value, name


def test_each_key_reaches_only_its_own_vendor(full_run: Run) -> None:
    keys = full_run.keys
    for receiver, own in ((full_run.ld, "ld_sdk_key"), (full_run.split, "split_sdk_key")):
        others = {k: v for k, v in keys.all().items() if k not in (own, "dsn_public_key")}
        seen_own = False
        for request in receiver.requests:
            text = request.wire_bytes().decode("utf-8", "replace")
            assert found_in(text, others) == [], (type(receiver).__name__, request.path)
            seen_own = seen_own or bool(found_in(text, {own: keys.all()[own]}))
            # sentry-sdk's trace propagation adds ``baggage`` (with the DSN's public key)
            # to every outgoing request, vendor SDKs' included; nowhere else.
            for name, value in request.raw_headers:
                if name.lower() != "baggage":
                    assert keys.dsn_public_key not in value, (request.path, name)
            assert keys.dsn_public_key not in request.body.decode("utf-8", "replace")
            assert keys.dsn_public_key not in request.target
        assert seen_own, f"{own} never reached its vendor"


def test_repr_and_str_reveal_no_key(full_run: Run) -> None:
    keys = full_run.keys.all()
    integration = full_run.integration
    shown = [repr(integration), str(integration), repr(integration.delivery), str(integration.delivery)]
    for forwarder in full_run.forwarders:
        shown += [repr(forwarder), str(forwarder), repr(forwarder.stats), str(forwarder.stats)]
    for text in shown:
        assert found_in(text, keys) == [], text


def test_vendor_sdks_own_logging_is_reported(
    full_run: Run, captured_logs: CaptureAll, record_property: Callable[[str, Any], None]
) -> None:
    """Not ours to fix: which vendor loggers print which key, at which level."""
    findings: dict[str, set[str]] = {}
    for record in captured_logs.by(vendors):
        for key in found_in(record.text, full_run.keys.all()):
            findings.setdefault(key, set()).add(f"{record.name}:{record.level}")
    report = {key: sorted(where) for key, where in sorted(findings.items())}
    record_property("vendor_key_logging", json.dumps(report))
    print("vendor SDK records holding a key:", json.dumps(report, indent=1))
    # None of them, at any level, is one of our records or sentry-sdk's.
    for where in report.values():
        assert not any(w.startswith(("sentry_flags", "sentry_sdk")) for w in where)


@pytest.mark.parametrize("name", ["SplitForwarder", "LaunchDarklyForwarder", "SegmentForwarder"])
def test_a_key_passed_where_a_client_belongs_is_not_repeated_in_the_error(name: str) -> None:
    # SegmentForwarder(os.environ["SEGMENT_WRITE_KEY"]): the TypeError goes to the app's
    # start-up logs (and crash reporting); it names what was given, never its value.
    import sentry_flags.forwarders

    secret = f"sdk-{uuid.uuid4().hex}"
    with pytest.raises(TypeError) as raised:
        getattr(sentry_flags.forwarders, name)(secret)
    assert secret not in str(raised.value)
    assert "got a str" in str(raised.value)
