"""What sentry-flags relies on in sentry-sdk, checked on whichever major is installed.

Every test of the suite runs on sentry-sdk 2.26.1 (tox ``sentry-oldest``), the newest 2.x
(the main suite, ``sentry-latest``) and the newest 3.x (``sentry-next``). Where each of the
behaviours sentry-flags is built on is checked:

- ``setup_once`` runs once per process, so each client is bound in ``_Client._init_impl``:
  here;
- our stage composed around the app's ``before_send``: tests/test_pipeline.py;
- ``custom_repr`` composed with the app's, for frame variables: tests/test_privacy_scan.py
  (``test_context_locals_show_redacted_and_the_apps_custom_repr_still_runs``) and here;
- the global event processor (``add_global_event_processor``) on every client's events:
  tests/test_flags.py (``test_without_the_integration_nothing_of_the_log_is_sent``), here;
- isolation scopes fork our per-request values: tests/test_concurrency.py,
  tests/oldest/test_oldest_smoke.py;
- ``contexts.flags`` merged with what ``add_feature_flag`` wrote: tests/test_flags.py;
- ``flush``/``close`` drain the vendors first: tests/test_shutdown.py, here;
- pickling a client rebuilds and rebinds it: tests/test_sentry_wiring.py.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import sentry_sdk
from sentry_sdk.integrations import Integration

from helpers import capture_error, only_event
from receivers import SentryReceiver
from sentry_flags import FlagsIntegration
from sentry_flags._stage import RedactingRepr, Stage
from sentry_flags.testing import RecordingForwarder


class CountingIntegration(Integration):
    identifier = "sentry_flags_contract_counter"
    setups: ClassVar[int] = 0

    @staticmethod
    def setup_once() -> None:
        CountingIntegration.setups += 1


def test_setup_once_runs_once_and_every_client_is_bound_to_its_own_integration(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    def app_repr(value: Any) -> Any:
        return None

    clients = []
    for i in range(3):
        integration = FlagsIntegration(environment=f"env-{i}")
        client = sentry_init(integrations=[CountingIntegration(), integration], custom_repr=app_repr)
        clients.append((client, integration))

    assert CountingIntegration.setups == 1  # three clients, one process
    for client, integration in clients:
        stage = client.options["before_send"]
        assert isinstance(stage, Stage)
        assert stage.integration is integration
        composed = client.options["custom_repr"]
        assert isinstance(composed, RedactingRepr)
        assert composed.previous is app_repr
    capture_error("on the last client")
    assert only_event(sentry_receiver)["environment"] == "env-2"


def test_close_delivers_to_the_vendors_before_sentry_shuts_down(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    recorder = RecordingForwarder()
    sentry_init(integrations=[FlagsIntegration(forwarders=[recorder])])
    sentry_sdk.set_user({"id": "u-1"})
    capture_error("before close")

    sentry_sdk.get_client().close(timeout=2)

    assert [v.exception_value for v in recorder.views] == ["before close"]
    assert recorder.stats.forwarded == 1
