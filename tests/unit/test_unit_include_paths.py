"""IncludePaths remembers its in-app decisions per (abs_path, module), in a bounded dict."""

from __future__ import annotations

import threading
from typing import Any, Optional

from sentry_flags._filters import INCLUDE_PATHS_CACHE_SIZE, IncludePaths
from sentry_flags._patterns import compile_patterns, slashed_regexes

MATCHER = compile_patterns("include_paths", slashed_regexes("include_paths", ["myapp", "/^lib\\.core/"]))


def frame(abs_path: Optional[str], module: Optional[str]) -> dict[str, Any]:
    return {"abs_path": abs_path, "module": module, "function": "f"}


def event(*frames: dict[str, Any]) -> dict[str, Any]:
    return {"exception": {"values": [{"type": "E", "stacktrace": {"frames": list(frames)}}]}}


def expected(f: dict[str, Any]) -> bool:
    texts = [v for v in (f["abs_path"], f["module"]) if isinstance(v, str) and v]
    return MATCHER.search_any(texts)


def test_decisions_match_the_matcher_on_first_sight_and_from_the_cache() -> None:
    include = IncludePaths(MATCHER)
    frames = [
        frame("/srv/myapp/views.py", "myapp.views"),
        frame("/usr/lib/python3/json/decoder.py", "json.decoder"),
        frame("/srv/lib/core.py", "lib.core"),
        frame("/srv/vendored/lib/core.py", "vendored.lib.core"),
        frame(None, "myapp.tasks"),
        frame("/srv/other.py", None),
        frame(None, None),
        frame("", ""),
    ]
    for _ in range(3):  # the second and third pass are answered from the cache
        ev = event(*[dict(f) for f in frames])
        assert include(ev) is ev
        marked = ev["exception"]["values"][0]["stacktrace"]["frames"]
        assert [f["in_app"] for f in marked] == [expected(f) for f in frames]
    assert [f["in_app"] for f in marked] == [True, False, True, False, True, False, False, False]
    assert len(include._cache) == len(frames)


def test_non_string_paths_are_treated_as_missing() -> None:
    include = IncludePaths(MATCHER)
    ev = event({"abs_path": 3, "module": "myapp.x"}, {"abs_path": ["myapp"], "module": None})
    include(ev)
    assert [f["in_app"] for f in ev["exception"]["values"][0]["stacktrace"]["frames"]] == [True, False]


def test_the_cache_never_grows_past_its_size() -> None:
    include = IncludePaths(MATCHER, cache_size=16)
    for i in range(1000):
        f = frame(f"/srv/{'myapp' if i % 3 == 0 else 'x'}/m{i}.py", f"m{i}")
        ev = event(f)
        include(ev)
        assert f["in_app"] is (i % 3 == 0)
        assert len(include._cache) <= 16
    # The oldest were forgotten first: the newest are remembered.
    assert ("/srv/x/m998.py", "m998") in include._cache
    assert ("/srv/myapp/m0.py", "m0") not in include._cache


def test_the_default_size_is_bounded() -> None:
    include = IncludePaths(MATCHER)
    for i in range(INCLUDE_PATHS_CACHE_SIZE * 3):
        include(event(frame(f"/srv/m{i}.py", None)))
    assert len(include._cache) == INCLUDE_PATHS_CACHE_SIZE


def test_the_cache_stays_bounded_and_right_under_concurrent_events() -> None:
    include = IncludePaths(MATCHER, cache_size=32)
    start = threading.Barrier(4, timeout=5)
    wrong: list[str] = []

    def work(thread: int) -> None:
        start.wait()
        for i in range(2000):
            path = f"/srv/{'myapp' if i % 2 else 'lib'}/t{thread}_{i % 200}.py"
            f = frame(path, None)
            include(event(f))
            if f["in_app"] is not (i % 2 == 1):
                wrong.append(path)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not wrong
    # Racing inserts may overshoot by one entry per thread at most, never more.
    assert len(include._cache) <= 32 + 4


def test_integrations_do_not_share_a_cache() -> None:
    first, second = IncludePaths(MATCHER), IncludePaths(compile_patterns("include_paths", ["other"]))
    f1, f2 = frame("/srv/myapp/a.py", None), frame("/srv/myapp/a.py", None)
    first(event(f1))
    second(event(f2))
    assert f1["in_app"] is True
    assert f2["in_app"] is False
