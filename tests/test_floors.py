"""The floors pyproject.toml declares are the versions tox's deps-oldest env installs.

deps-oldest runs the whole suite on every lower bound together; this keeps the two lists from
drifting apart (a floor raised without the env following, or a pin nobody declared).
"""

from __future__ import annotations

from packaging.version import Version

from floors import NOT_IN_OLDEST, declared_floors, oldest_pins


def test_deps_oldest_pins_every_declared_floor_and_nothing_else() -> None:
    floors = declared_floors()
    pins = oldest_pins()

    assert sorted(pins) == sorted(floors), "tox.ini deps-oldest and pyproject.toml name other packages"
    differ = {
        name: (floors[name], pins[name]) for name in floors if Version(floors[name]) != Version(pins[name])
    }
    assert not differ, f"(pyproject.toml floor, deps-oldest pin) differ: {differ}"


def test_the_floors_include_the_ones_the_issue_names() -> None:
    # A guard against a parser that quietly finds nothing: the core and each vendor SDK.
    floors = declared_floors()
    for name in ("sentry-sdk", "launchdarkly-server-sdk", "splitio-client", "segment-analytics-python"):
        assert name in floors, name
    assert floors["openfeature-sdk"] == "0.9"  # the 3.10+ floor; 0.8.4 applies on 3.9
    assert declared_floors("3.9")["openfeature-sdk"] == "0.8.4"


def test_what_deps_oldest_leaves_out_is_said_where_it_is_tested() -> None:
    assert set(NOT_IN_OLDEST) == {"dev", "docs", "segment-legacy"}
