"""sentry-sdk's private names: only in ``_sentry.py``, and each one steps aside when it is gone.

A future sentry-sdk release may drop or rename any private name. Each test removes one
(fault injection: monkeypatch on sentry-sdk or on what ``_sentry`` found at import) and
checks the feature it serves steps aside: nothing raises into the app, a warning naming it
is logged once, and an error that can then not be handled is counted with a reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest
import sentry_sdk

from helpers import capture_error, flush, only_event, raise_and_capture, warnings_about
from receivers import SentryReceiver
from sentry_flags import (
    FlagsIntegration,
    _privacy,
    _sentry,
    get_launchdarkly_context,
    set_launchdarkly_context,
)
from sentry_flags._flags import record_flag
from sentry_flags._private import stepped_aside
from sentry_flags.testing import RecordingForwarder, flush_forwarders

SRC = Path(__file__).resolve().parent.parent / "src" / "sentry_flags"

# Every sentry-sdk private name the package uses, all of them in _sentry.py.
PRIVATE_NAMES = {
    "_Client", "_init_impl", "_contexts", "_wsgi_middleware_applied", "_asgi_middleware_applied",
    "_SENSITIVE_DENYLIST",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh(fresh_private: None) -> None:
    """Each test starts as a process that has stepped aside for nothing yet (conftest)."""


# -- where the names are -----------------------------------------------------------------------


def _sentry_sdk_private_names(path: Path) -> set[str]:
    """Underscore names imported from sentry_sdk, and sentry-sdk private attributes read."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sentry_sdk"):
            found |= {a.name for a in node.names if a.name.startswith("_")}
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
            found.add(node.attr)
    return found


def test_sentry_sdks_private_names_are_only_in_the_sentry_module() -> None:
    elsewhere = {
        str(path.relative_to(SRC)): names
        for path in SRC.rglob("*.py")
        if path.name != "_sentry.py" and (names := _sentry_sdk_private_names(path))
    }
    assert elsewhere == {}
    in_module = _sentry_sdk_private_names(SRC / "_sentry.py")
    source = (SRC / "_sentry.py").read_text(encoding="utf-8")
    # getattr(..., "_name") reads count too.
    in_module |= set(re.findall(r'getattr\([^)]*"(_[A-Za-z_]+)"', source)) & PRIVATE_NAMES
    assert in_module == PRIVATE_NAMES
    docstring = ast.get_docstring(ast.parse(source)) or ""
    for name in PRIVATE_NAMES:
        assert name in docstring, f"_sentry.py's docstring does not say why it uses {name}"
    for release in ("2.26.1", "3.0.0"):
        assert release in docstring


# -- Scope._contexts ----------------------------------------------------------------------------


def test_without_scope_contexts_nothing_is_recorded_and_nothing_raises(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    own_isolation_scope: None,
) -> None:
    ldclient = pytest.importorskip("ldclient")
    sentry_init(integrations=[FlagsIntegration()])
    monkeypatch.setattr(_sentry, "_isolation_scope", SimpleNamespace)  # a scope without it

    for i in range(3):
        set_launchdarkly_context(ldclient.Context.create(f"user-{i}"))
        record_flag("launchdarkly", "checkout", True)
    assert get_launchdarkly_context() is None
    capture_error("still captured")

    event = only_event(sentry_receiver)
    assert "launchdarklyContext" not in event.get("contexts", {})
    assert "flagEvaluations" not in event.get("contexts", {})
    [warning] = warnings_about(caplog, _sentry.SCOPE_CONTEXTS)
    assert "no launchdarklyContext or flag contexts are recorded" in warning
    assert sentry_sdk.VERSION in warning
    # Counted where every private name's step aside is, sentry-sdk's as the vendors'.
    assert stepped_aside()[_sentry.SCOPE_CONTEXTS.path] >= 6


def test_a_scope_without_contexts_reads_as_empty(caplog: pytest.LogCaptureFixture) -> None:
    assert _sentry.scope_contexts(SimpleNamespace()) == {}
    assert _sentry.scope_contexts(SimpleNamespace()) == {}
    assert len(warnings_about(caplog, "Scope._contexts")) == 1


# -- the client patch ---------------------------------------------------------------------------


def test_without_init_impl_nothing_is_bound_and_each_error_is_counted(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    processors: list[Any] = []
    monkeypatch.setattr(_sentry, "_installed", False)
    monkeypatch.setattr(_sentry, "_tracing_seen", False)
    monkeypatch.setattr(_sentry, "_streaming_seen", False)
    monkeypatch.setattr(_sentry, "_client_class", lambda: type("FutureClient", (), {}))
    monkeypatch.setattr(_sentry, "add_global_event_processor", processors.append)  # not for real

    _sentry.install(FlagsIntegration, lambda integration, client: None)
    _sentry.install(FlagsIntegration, lambda integration, client: None)  # once per process, as ever

    [count] = processors
    assert _sentry._tracing_seen  # no client is seen as it is built: every span is looked at
    [warning] = warnings_about(caplog, "_Client._init_impl")
    assert "cannot bind" in warning
    assert _sentry.UNSUPPORTED in warning
    assert stepped_aside() == {_sentry.INIT_IMPL.path: 1}
    # What the processor does for the errors of a client it could not bind to: count them.
    recorder = RecordingForwarder()
    sentry_init(integrations=[FlagsIntegration(forwarders=[recorder])])
    error = {"event_id": "e" * 32, "level": "error", "exception": {"values": []}}
    assert count(error, {}) is error
    assert count({"type": "transaction"}, {})["type"] == "transaction"
    assert recorder.stats.skipped == {_sentry.UNSUPPORTED: 1}
    assert recorder.views == []


def test_without_flush_and_close_sentrys_flush_still_works(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client_type = type("FutureClient", (), {"_init_impl": lambda self: None})
    _sentry._patch_flush_close(client_type, FlagsIntegration)
    _sentry._patch_flush_close(client_type, FlagsIntegration)

    assert not hasattr(client_type, "flush")
    [warning] = warnings_about(caplog, "_Client.flush/close")
    assert "at interpreter exit" in warning


# -- the middleware markers ----------------------------------------------------------------------


def test_without_the_middleware_markers_our_middleware_isolates_each_request(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sentry_sdk.integrations import wsgi

    from sentry_flags._web import request_isolation

    monkeypatch.delattr(wsgi, "_wsgi_middleware_applied")
    markers, gone = _sentry._request_markers()
    assert gone == [_sentry.WSGI_APPLIED]
    monkeypatch.setattr(_sentry, "_REQUEST_MARKERS", markers)
    monkeypatch.setattr(_sentry, "_MARKERS_GONE", gone)

    outside = sentry_sdk.get_isolation_scope()
    for _ in range(2):
        assert _sentry.sentry_isolates_request() is False
        with request_isolation():
            assert sentry_sdk.get_isolation_scope() is not outside
    [warning] = warnings_about(caplog, "_wsgi_middleware_applied")
    assert "own isolation scope" in warning


# -- data_collection's sensitive terms -------------------------------------------------------------


def test_without_sentry_sdks_sensitive_terms_a_copy_of_them_is_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    data_collection = pytest.importorskip("sentry_sdk.data_collection")
    if not hasattr(data_collection, "_SENSITIVE_DENYLIST"):
        pytest.skip("this sentry-sdk's data_collection has no _SENSITIVE_DENYLIST already")
    monkeypatch.delattr(data_collection, "_SENSITIVE_DENYLIST")
    monkeypatch.setattr(_privacy, "_terms", None)

    assert _sentry.sensitive_terms() == _sentry.FALLBACK_SENSITIVE_TERMS
    terms = _privacy.sensitive_terms()
    assert _privacy.is_sensitive_key("SAMLResponse")  # sentry-sdk's term, from the copy
    assert _privacy.is_sensitive_key("code")  # ours
    assert set(_sentry.FALLBACK_SENSITIVE_TERMS) <= set(terms)
    assert len(warnings_about(caplog, "_SENSITIVE_DENYLIST")) == 1


def test_the_fallback_terms_are_sentry_sdks_own(monkeypatch: pytest.MonkeyPatch) -> None:
    data_collection = pytest.importorskip("sentry_sdk.data_collection")
    listed = getattr(data_collection, "_SENSITIVE_DENYLIST", None)
    if listed is None:
        pytest.skip("this sentry-sdk's data_collection has no _SENSITIVE_DENYLIST")
    # A new term in sentry-sdk is followed at once; this says when the copy should follow too.
    assert set(_sentry.FALLBACK_SENSITIVE_TERMS) <= {t.lower() for t in listed}


# -- a warning once, not a flood ----------------------------------------------------------------


def test_a_missing_name_warns_once_however_often_it_is_needed(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    own_isolation_scope: None,
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    monkeypatch.setattr(_sentry, "_isolation_scope", SimpleNamespace)
    for i in range(50):
        record_flag("split", f"flag-{i}", "on")
        raise_and_capture(f"error {i}")
    flush()
    assert flush_forwarders()
    assert len(warnings_about(caplog, "Scope._contexts")) == 1
    assert stepped_aside()[_sentry.SCOPE_CONTEXTS.path] >= 50


# -- the span gate (public API: sentry_sdk.tracing_utils) ----------------------------------------


def test_spans_are_looked_at_once_a_client_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sentry, "_tracing_seen", False)
    monkeypatch.setattr(_sentry, "_streaming_seen", False)

    _sentry.note_client({"traces_sample_rate": None})
    assert not _sentry._tracing_seen  # no span of such a client is ever sent
    _sentry.note_client({"traces_sample_rate": 0.1})
    assert _sentry._tracing_seen
    _sentry.note_client({"traces_sample_rate": None})
    assert _sentry._tracing_seen  # for the life of the process
