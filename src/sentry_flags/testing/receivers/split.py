"""A stand-in for Split's SDK, events, auth and telemetry APIs, and the flag JSON it serves.

Point a real splitio factory at it with
``get_factory("sdk-key", config={"streamingEnabled": False}, **receiver.factory_kwargs)``:
it serves the feature flags given to `SplitReceiver`, and the events ``track`` sends (what
`SplitForwarder` sends) arrive in `SplitReceiver.events`.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from sentry_flags.testing.receivers._base import (
    DEFAULT_TIMEOUT,
    BaseReceiver,
    RecordedRequest,
    Response,
    flatten,
    wait_for,
)

__all__ = ["DEFAULT_SPLITS", "SplitReceiver", "split_definition"]


def split_definition(
    name: str,
    *,
    treatment: str = "on",
    default_treatment: str = "off",
    traffic_type: str = "user",
    killed: bool = False,
    change_number: int = 1,
    configurations: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    """A feature flag that serves ``treatment`` to every key (a 100% rollout).

    Args:
        name: The feature flag's name.
        treatment: What every key gets. Default ``"on"``.
        default_treatment: What a killed flag serves. Default ``"off"``.
        traffic_type: The flag's traffic type. Default ``"user"``.
        killed: Serve ``default_treatment`` to everyone. Default `False`.
        change_number: Split's version of the flag (`SplitReceiver.set_splits` renumbers
            the flags it serves). Default ``1``.
        configurations: Per-treatment configuration strings (``get_treatment_with_config``).
            Default `None`: none.

    Returns:
        The flag as JSON-ready data, for `SplitReceiver`.
    """
    return {
        "name": name,
        "trafficTypeName": traffic_type,
        "seed": 1234,
        "trafficAllocation": 100,
        "trafficAllocationSeed": 1234,
        "status": "ACTIVE",
        "killed": killed,
        "defaultTreatment": default_treatment,
        "changeNumber": change_number,
        "algo": 2,
        "configurations": configurations or {},
        "sets": [],
        "impressionsDisabled": False,
        "conditions": [
            {
                "conditionType": "ROLLOUT",
                "matcherGroup": {
                    "combiner": "AND",
                    "matchers": [
                        {
                            "keySelector": {"trafficType": traffic_type, "attribute": None},
                            "matcherType": "ALL_KEYS",
                            "negate": False,
                        }
                    ],
                },
                "partitions": [{"treatment": treatment, "size": 100}],
                "label": "default rule",
            }
        ],
    }


DEFAULT_SPLITS = (
    split_definition("sentry_flags_user_flag", treatment="on", traffic_type="user"),
    split_definition("sentry_flags_org_flag", treatment="v2", traffic_type="org"),
)


class SplitReceiver(BaseReceiver):
    """Split's SDK, events, auth and telemetry APIs, all under ``/api``.

    Listens on 127.0.0.1 from construction until `stop` (or the end of a ``with`` block):

        with SplitReceiver() as split:
            factory = get_factory(
                "sdk-key",
                config={"streamingEnabled": False, "eventsPushRate": 1},
                **split.factory_kwargs,
            )
            factory.block_until_ready(5)
            factory.client().track("user-42", "user", "sentry_exception")
            [event] = split.wait_for_events(1)

    ``/api/splitChanges`` implements the ``since``/``till`` handshake: the SDK keeps fetching
    until ``since == till`` and only then becomes ready. Streaming is not served.

    Args:
        splits: The feature flags to serve (see `split_definition`). Default
            `DEFAULT_SPLITS`: ``sentry_flags_user_flag`` (``on`` for every ``user``) and
            ``sentry_flags_org_flag`` (``v2`` for every ``org``).
    """

    def __init__(self, splits: Iterable[dict[str, Any]] = DEFAULT_SPLITS) -> None:
        self._splits: list[dict[str, Any]] = []
        self._segments: dict[str, list[str]] = {}
        self._change_number = 0
        self._segment_change_numbers: dict[str, int] = {}
        super().__init__()
        self.set_splits(*splits)

    @property
    def api_url(self) -> str:
        """The base of every API, e.g. ``http://127.0.0.1:54321/api``."""
        # No trailing slash: splitio joins paths as urljoin(base + "/", path).
        return f"{self.url}/api"

    @property
    def factory_kwargs(self) -> dict[str, str]:
        """Keywords for ``splitio.get_factory`` that point every API URL here.

        ``get_factory("sdk-key", config={"streamingEnabled": False}, **receiver.factory_kwargs)``.
        A new dict each time.
        """
        return {
            "sdk_api_base_url": self.api_url,
            "events_api_base_url": self.api_url,
            "auth_api_base_url": self.api_url,
            "telemetry_api_base_url": self.api_url,
            "streaming_api_base_url": f"{self.url}/sse",
        }

    def set_splits(self, *splits: dict[str, Any]) -> None:
        """Replace the served flags (see `split_definition`).

        Each call bumps the change number; polling SDKs pick the flags up on their next
        fetch.
        """
        with self._lock:
            self._change_number += 1
            self._splits = [dict(s, changeNumber=self._change_number) for s in splits]

    def set_segment(self, name: str, keys: Iterable[str]) -> None:
        """Serve the segment ``name`` holding ``keys`` (replacing what it held)."""
        with self._lock:
            self._segments[name] = list(keys)
            self._segment_change_numbers[name] = self._segment_change_numbers.get(name, 0) + 1

    @property
    def change_number(self) -> int:
        """The change number of the flags served now."""
        return self._change_number

    def respond(self, request: RecordedRequest) -> Response:
        """Answer like Split: flags, segments, auth (push disabled); accept posts with 200."""
        path = request.path
        if request.method == "GET" and path == "/api/splitChanges":
            return Response(200, self._split_changes(request))
        if request.method == "GET" and path.startswith("/api/segmentChanges/"):
            return Response(200, self._segment_changes(path.rsplit("/", 1)[1], request))
        if request.method == "GET" and path == "/api/v2/auth":
            return Response(200, {"pushEnabled": False, "token": ""})
        if request.method == "POST" and path in (
            "/api/events/bulk",
            "/api/testImpressions/bulk",
            "/api/testImpressions/count",
            "/api/v1/metrics/config",
            "/api/v1/metrics/usage",
            "/api/v1/keys/ss",
        ):
            return Response(200, b"")
        return Response(404, {"message": "not found"})

    def _split_changes(self, request: RecordedRequest) -> dict[str, Any]:
        since = int(request.query_value("since") or -1)
        with self._lock:
            current, splits = self._change_number, list(self._splits)
        if since < current:
            flags, till = splits, current
        else:
            flags, till = [], since
        if request.query_value("s") == "1.1":  # legacy shape, used after a proxy fallback
            return {"splits": flags, "since": since, "till": till}
        rb_since = int(request.query_value("rbSince") or -1)
        return {
            "ff": {"d": flags, "s": since, "t": till},
            "rbs": {"d": [], "s": rb_since, "t": rb_since},
        }

    def _segment_changes(self, name: str, request: RecordedRequest) -> dict[str, Any]:
        since = int(request.query_value("since") or -1)
        with self._lock:
            current = self._segment_change_numbers.get(name, -1)
            keys = list(self._segments.get(name, []))
        if since < current:
            return {"name": name, "added": keys, "removed": [], "since": since, "till": current}
        return {"name": name, "added": [], "removed": [], "since": since, "till": since}

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every tracked event delivered, as posted, in arrival order.

        Keys: ``eventTypeId``, ``trafficTypeName``, ``key``, ``value``, ``properties``,
        ``timestamp``.
        """
        return flatten(r.json for r in self.delivered("/api/events/bulk", "POST"))

    @property
    def impressions(self) -> list[dict[str, Any]]:
        """Impressions flattened to one dict each, with the flag name under ``f``.

        Keys as posted: k (key), t (treatment), m (time), c (change number),
        r (label), b (bucketing key), pt (previous time).
        """
        return [
            {"f": group["f"], **impression}
            for group in flatten(r.json for r in self.delivered("/api/testImpressions/bulk", "POST"))
            for impression in group.get("i", [])
        ]

    @property
    def impression_counts(self) -> list[dict[str, Any]]:
        """Impression counts (``optimized`` mode), one dict per flag and time frame."""
        return [
            count
            for r in self.delivered("/api/testImpressions/count", "POST")
            for count in (r.json or {}).get("pf", [])
        ]

    @property
    def telemetry(self) -> list[RecordedRequest]:
        """Every telemetry request delivered (``/api/v1/...``)."""
        return self.delivered("/api/v1/")

    def wait_for_events(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
        """Wait until at least ``count`` tracked events arrived; return every one so far.

        Raises:
            AssertionError: Fewer arrived within ``timeout`` seconds.
        """
        return wait_for(
            lambda: (events := self.events) and len(events) >= count and events,
            timeout=timeout,
            message=f"{count} Split event(s)",
        )

    def wait_for_impressions(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
        """Wait until at least ``count`` impressions arrived; return every one so far.

        Raises:
            AssertionError: Fewer arrived within ``timeout`` seconds.
        """
        return wait_for(
            lambda: (found := self.impressions) and len(found) >= count and found,
            timeout=timeout,
            message=f"{count} Split impression(s)",
        )
