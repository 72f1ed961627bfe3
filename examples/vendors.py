"""Build Sentry's FlagsIntegration and the vendor clients from environment variables.

Shared by the examples. Every vendor is optional: leave its key unset and it is skipped.

    SENTRY_DSN, SENTRY_ENVIRONMENT, SENTRY_RELEASE
    LAUNCHDARKLY_SDK_KEY   [LAUNCHDARKLY_BASE_URI: polling + events at this URL, e.g. a relay]
    SPLIT_SDK_KEY          [SPLIT_API_URL: SDK, events and telemetry APIs at this URL]
                           [SPLIT_PREFORKED=1: for a forking server (gunicorn --preload);
                            call factory.resume() in each worker, see the README]
    SEGMENT_WRITE_KEY      [SEGMENT_HOST]
    FORWARD_ENVIRONMENTS   comma-separated Sentry environments to forward (default: all)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

import sentry_sdk

from sentry_flags import FlagsIntegration
from sentry_flags.forwarders import (
    Forwarder,
    LaunchDarklyForwarder,
    SegmentForwarder,
    SplitForwarder,
)


@dataclass
class Vendors:
    launchdarkly: Any = None
    split_factory: Any = None
    segment: Any = None
    forwarders: list[Forwarder] = field(default_factory=list)

    def close(self) -> None:
        """Shut the clients down (the app owns them; sentry-flags never closes them)."""
        if self.launchdarkly is not None:
            self.launchdarkly.close()
        if self.split_factory is not None:
            self.split_factory.destroy()
        if self.segment is not None:
            self.segment.shutdown()


def launchdarkly_client() -> Any:
    key = os.environ.get("LAUNCHDARKLY_SDK_KEY")
    if not key:
        return None
    from ldclient import LDClient
    from ldclient.config import Config

    base = os.environ.get("LAUNCHDARKLY_BASE_URI")
    urls: dict[str, Any] = {}
    if base:
        urls = {"base_uri": base, "events_uri": base, "stream": False, "diagnostic_opt_out": True}
    return LDClient(Config(key, private_attributes=["email"], flush_interval=1, **urls))


def split_factory() -> Any:
    key = os.environ.get("SPLIT_SDK_KEY")
    if not key:
        return None
    from splitio import get_factory

    api = os.environ.get("SPLIT_API_URL")
    urls = {}
    if api:
        urls = {
            name: api
            for name in (
                "sdk_api_base_url",
                "events_api_base_url",
                "auth_api_base_url",
                "telemetry_api_base_url",
            )
        }
    config: dict[str, Any] = {"streamingEnabled": not api, "eventsPushRate": 1}
    if api:  # a loopback stand-in: skip Split's probe for the outward-facing interface
        config.update(machineIp="127.0.0.1", machineName="sentry-flags-example")
    preforked = os.environ.get("SPLIT_PREFORKED") == "1"
    if preforked:  # synced now, started by factory.resume() in each forked worker
        config["preforkedInitialization"] = True
    factory = get_factory(key, config=config, **urls)
    if not preforked:  # a pre-forked factory becomes ready only after resume()
        factory.block_until_ready(10)
    return factory


def segment_client() -> Any:
    key = os.environ.get("SEGMENT_WRITE_KEY")
    if not key:
        return None
    try:
        from segment.analytics import Client
    except ImportError:  # the legacy analytics-python package
        from analytics import Client
    host: Optional[str] = os.environ.get("SEGMENT_HOST")
    return Client(key, host=host, upload_interval=0.2) if host else Client(key)


def vendors_from_env() -> Vendors:
    environments = {e for e in os.environ.get("FORWARD_ENVIRONMENTS", "").split(",") if e} or None
    vendors = Vendors(launchdarkly_client(), split_factory(), segment_client())
    if vendors.split_factory is not None:
        vendors.forwarders.append(
            SplitForwarder(
                vendors.split_factory.client(),
                identities={"user": "user.id", "org": "tags.org"},
                environments=environments,
                capture_culprit=True,
            )
        )
    if vendors.launchdarkly is not None:
        vendors.forwarders.append(LaunchDarklyForwarder(vendors.launchdarkly, environments=environments))
    if vendors.segment is not None:
        vendors.forwarders.append(SegmentForwarder(vendors.segment, environments=environments))
    return vendors


def flags_integration(vendors: Vendors) -> FlagsIntegration:
    """The settings most apps start from; see the README for every option."""
    return FlagsIntegration(
        launchdarkly_client=vendors.launchdarkly,
        ignore_errors=["ResizeObserver loop", "ClientDisconnected"],
        deny_urls=["/healthz"],
        release_from="env:APP_VERSION",
        forwarders=vendors.forwarders,
    )


def no_personal_data() -> dict[str, Any]:
    """``sentry_sdk.init`` options that keep users' personal data out of Sentry, and so out
    of every vendor sentry-flags forwards to.

    sentry-sdk 3 collects user info unless ``data_collection`` says otherwise (it has no
    ``send_default_pii``); 2.x collects none unless ``send_default_pii=True``.
    """
    if int(sentry_sdk.VERSION.split(".")[0]) >= 3:
        return {"data_collection": {"user_info": False}}
    return {"send_default_pii": False}
