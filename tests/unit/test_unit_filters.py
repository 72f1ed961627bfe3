"""Filters decides as the four options did one by one, whatever the event's shape.

``Filters`` reads the exception values once for all four options, with readers that take
short cuts for the shape sentry-sdk builds, and remembers the answers of its matchers; the
reference below is the four processors it replaced and the readers they used, as they were
(each option reading the event on its own, searching every pattern, no memory). Both run on
copies of the same generated events, twice (the second time from what was remembered), and
must drop the same events for the same reason and mark the same frames in-app.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentry_flags._filters import Filters, IncludePaths
from sentry_flags._patterns import EMPTY, Matcher, compile_patterns, slashed_regexes

# -- the reference: the readers and processors before Filters (8431372), unchanged ------------


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if type(value) is dict or isinstance(value, Mapping) else {}


def _values(container: Any) -> list[Mapping[str, Any]]:
    values = container.get("values") if isinstance(container, (dict, Mapping)) else container
    if not isinstance(values, list):
        return []
    return [v for v in values if type(v) is dict or isinstance(v, Mapping)]


def _frames(exception: Mapping[str, Any]) -> list[Any]:
    stacktrace = exception.get("stacktrace")
    if type(stacktrace) is dict or isinstance(stacktrace, Mapping):
        found = stacktrace.get("frames")
        if isinstance(found, list):
            return found
    return []


def _all_frames(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    holders = _values(event.get("exception"))
    if "threads" in event:
        holders += _values(event.get("threads"))
    return [frame for holder in holders for frame in _frames(holder) if isinstance(frame, dict)]


def _messages(event: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for key in ("message", "logentry"):
        value = event.get(key)
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            for sub in ("formatted", "message"):
                item = value.get(sub)
                if isinstance(item, str) and item not in found:
                    found.append(item)
    return found


def _error_texts(event: Mapping[str, Any]) -> list[str]:
    found = _messages(event)
    for exc in _values(event.get("exception")):
        etype, value = _text(exc.get("type")), _text(exc.get("value"))
        if etype and value is not None:
            found.append(f"{etype}: {value}")
        elif etype:
            found.append(etype)
        if value:
            found.append(value)
    return found


def _is_pseudo_path(path: Optional[str]) -> bool:
    if not path or path[-1] != ">":
        return False
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name.startswith("<") and name.endswith(">")


def _raising_frame(event: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    values = _values(event.get("exception"))
    if not values:
        return None
    for frame in reversed(_frames(values[-1])):
        if not isinstance(frame, Mapping):
            continue
        path = _text(frame.get("abs_path")) or _text(frame.get("filename"))
        if path is None and not _text(frame.get("module")):
            continue
        if _is_pseudo_path(path):
            continue
        return frame
    return None


def _event_urls(event: Mapping[str, Any]) -> list[str]:
    urls: list[str] = []
    url = _mapping(event.get("request")).get("url")
    if isinstance(url, str) and url:
        urls.append(url)
    frame = _raising_frame(event)
    if frame is not None:
        for key in ("abs_path", "filename", "module"):
            value = _text(frame.get(key))
            if value and not _is_pseudo_path(value) and value not in urls:
                urls.append(value)
    return urls


def reference(
    event: dict[str, Any], ignore: Matcher, deny: Matcher, allow: Matcher, include: Matcher
) -> Optional[str]:
    if ignore and ignore.search_any(_error_texts(event)):
        return "ignore_errors"
    if deny and deny.search_any(_event_urls(event)):
        return "deny_urls"
    if allow:
        urls = _event_urls(event)
        if urls and not allow.search_any(urls):
            return "allow_urls"
    if include:
        for frame in _all_frames(event):
            key = (_text(frame.get("abs_path")), _text(frame.get("module")))
            frame["in_app"] = include.search_any([v for v in key if v])
    return None


# -- generated events: sentry-sdk's shape, and everything around it ---------------------------


class Text(str):
    """A str subclass, as an app's own event may carry."""


class Frozen(Mapping[str, Any]):
    """A Mapping that is not a dict."""

    def __init__(self, items: dict[str, Any]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Any:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


WORDS = [
    "", "boom", "Boom", "checkout failed", "ValueError", "Type1", "x", "/srv/app/views.py",
    "/srv/lib/core.py", "/deny/thing.py", "https://cdn1.example.com/a.js", "<string>",
    "/cwd/<stdin>", "C:\\app\\<frozen x>", "app.views", "lib.core", "other.mod", "denied.mod",
]  # fmt: skip

texts = st.sampled_from(WORDS)
scalars = st.one_of(texts, texts.map(Text), st.none(), st.integers(-2, 2), st.just(["a"]))
maybe_text = st.one_of(texts, texts, texts, st.none(), scalars)


def containers(inner: Any) -> Any:
    return st.one_of(inner, inner, inner, inner.map(Frozen), st.none(), texts)


frames = st.one_of(
    st.fixed_dictionaries(
        {"abs_path": maybe_text, "module": maybe_text},
        optional={"filename": maybe_text, "function": texts, "in_app": st.booleans()},
    ),
    st.fixed_dictionaries(
        {}, optional={"abs_path": maybe_text, "module": maybe_text, "filename": maybe_text}
    ),
    st.none(),
    texts,
)
stacktraces = containers(
    st.fixed_dictionaries({}, optional={"frames": st.one_of(st.lists(frames, max_size=5), st.none(), texts)})
)
exception_values = st.one_of(
    st.fixed_dictionaries(
        {}, optional={"type": maybe_text, "value": maybe_text, "stacktrace": stacktraces, "module": texts}
    ),
    st.fixed_dictionaries({"type": maybe_text, "value": maybe_text}).map(Frozen),
    st.none(),
    texts,
)
holders = containers(
    st.fixed_dictionaries({"values": st.one_of(st.lists(exception_values, max_size=3), st.none(), texts)})
)
events = st.fixed_dictionaries(
    {"exception": holders},
    optional={
        "threads": holders,
        "message": st.one_of(maybe_text, containers(st.fixed_dictionaries({"formatted": maybe_text}))),
        "logentry": containers(
            st.fixed_dictionaries({}, optional={"formatted": maybe_text, "message": maybe_text})
        ),
        "request": st.one_of(containers(st.fixed_dictionaries({}, optional={"url": maybe_text})), texts),
        "event_id": texts,
    },
)

# sentry-sdk's own shape (plain dicts and lists, str or None where text goes): the shape the
# readers' short cuts are for, so most examples are of it.
plain_text = st.one_of(texts, texts, st.none())
# Where a frame's paths decide: empty or missing ones, pseudo paths, what the patterns match.
paths = st.sampled_from(["", "/srv/app/a.py", "/deny/thing.py", "<string>", "/cwd/<stdin>", "lib.core", "x"])
path_or_none = st.one_of(paths, st.none())
plain_frames = st.fixed_dictionaries(
    {"abs_path": path_or_none, "module": path_or_none},
    optional={"filename": path_or_none, "function": texts, "in_app": st.booleans()},
)
plain_values = st.fixed_dictionaries(
    {"type": plain_text, "value": plain_text},
    optional={
        "stacktrace": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"frames": st.one_of(st.lists(plain_frames, max_size=5), st.none())}
            ),
            st.none(),
        ),
        "mechanism": st.just({"type": "generic", "handled": True}),
    },
)
plain_events = st.fixed_dictionaries(
    {"exception": st.fixed_dictionaries({"values": st.lists(plain_values, min_size=1, max_size=3)})},
    optional={
        "request": st.one_of(st.fixed_dictionaries({}, optional={"url": plain_text}), st.none()),
        "event_id": texts,
    },
)
# ...and one step away from it, anywhere: where a short cut must not be taken.
nearly_plain = st.one_of(
    plain_events.map(lambda e: {**e, "threads": {"values": []}}),
    plain_events.map(lambda e: {**e, "message": "boom"}),
    plain_events.map(lambda e: {**e, "request": "https://cdn1.example.com/x"}),
    st.tuples(plain_events, st.integers(0, 2), scalars).map(lambda t: _spoil(t[0], t[1], t[2])),
)


def _spoil(event: dict[str, Any], where: int, value: Any) -> dict[str, Any]:
    last = event["exception"]["values"][-1]
    if where == 0:
        last["type"] = value
    elif where == 1:
        last["stacktrace"] = {"frames": [{"abs_path": value, "module": "app.x"}, "not a frame"]}
    else:
        last["stacktrace"] = {"frames": [{"abs_path": "/srv/app/a.py", "filename": value, "module": None}]}
    return event


all_events = st.one_of(plain_events, plain_events, nearly_plain, events)

MATCHERS = {
    "ignore": compile_patterns(
        "ignore_errors", slashed_regexes("ignore_errors", ["boom", re.compile(r"^Type1\b"), "/^checkout/i"])
    ),
    "deny": compile_patterns("deny_urls", ["/deny/", re.compile(r"^https?://cdn1\.")]),
    "allow": compile_patterns("allow_urls", ["/srv/", "app.", "lib"]),
    "include": compile_patterns("include_paths", ["/srv/app", re.compile(r"^lib\.")]),
}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=all_events, options=st.sets(st.sampled_from(sorted(MATCHERS)), min_size=1))
def test_filters_decide_as_the_options_did_one_by_one(event: dict[str, Any], options: set[str]) -> None:
    chosen = {name: MATCHERS[name] if name in options else EMPTY for name in MATCHERS}
    filters = Filters(
        ignore=chosen["ignore"],
        deny=chosen["deny"],
        allow=chosen["allow"],
        include=IncludePaths(chosen["include"]) if chosen["include"] else None,
    )
    expected_event = copy.deepcopy(event)
    expected = reference(expected_event, **chosen)
    for _ in range(2):  # the second time, from what the matchers and the in-app cache remember
        found_event = copy.deepcopy(event)
        assert filters.drop(found_event) == expected
        assert found_event == expected_event
        assert (filters(copy.deepcopy(event)) is None) is (expected is not None)


# One Filters for each set of options, kept across examples: what it remembers from one
# event must never decide another wrongly.
SHARED: dict[frozenset[str], Filters] = {}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=all_events, options=st.sets(st.sampled_from(sorted(MATCHERS)), min_size=1))
def test_what_filters_remember_from_other_events_never_changes_a_decision(
    event: dict[str, Any], options: set[str]
) -> None:
    chosen = {name: MATCHERS[name] if name in options else EMPTY for name in MATCHERS}
    filters = SHARED.setdefault(
        frozenset(options),
        Filters(
            ignore=chosen["ignore"],
            deny=chosen["deny"],
            allow=chosen["allow"],
            include=IncludePaths(chosen["include"]) if chosen["include"] else None,
        ),
    )
    expected_event = copy.deepcopy(event)
    expected = reference(expected_event, **chosen)
    found_event = copy.deepcopy(event)
    assert filters.drop(found_event) == expected
    assert found_event == expected_event


def test_a_plain_event_and_its_reading_one_by_one_agree() -> None:
    # sentry-sdk's own shape (what the property test covers among others), spelled out.
    event = {
        "request": {"url": "https://shop.test/cart"},
        "exception": {
            "values": [
                {"type": "KeyError", "value": "'sku'", "stacktrace": {"frames": [
                    {"abs_path": "/srv/app/views.py", "module": "app.views", "filename": "app/views.py"},
                ]}},
                {"type": "ValueError", "value": "checkout failed", "stacktrace": {"frames": [
                    {"abs_path": "/usr/lib/python3/json/decoder.py", "module": "json.decoder"},
                    {"abs_path": "/srv/app/cart.py", "module": "app.cart", "filename": "app/cart.py"},
                    {"abs_path": "/cwd/<string>", "module": None, "filename": "<string>"},
                ]}},
            ]
        },
    }  # fmt: skip
    filters = Filters(include=IncludePaths(MATCHERS["include"]), allow=MATCHERS["allow"])
    expected_event = copy.deepcopy(event)
    assert reference(expected_event, EMPTY, EMPTY, MATCHERS["allow"], MATCHERS["include"]) is None
    assert filters.drop(event) is None
    assert event == expected_event
    values: list[dict[str, Any]] = event["exception"]["values"]  # type: ignore[index]
    marks = [frame["in_app"] for value in values for frame in value["stacktrace"]["frames"]]
    assert marks == [True, False, True, False]
    assert Filters(ignore=MATCHERS["ignore"]).drop(copy.deepcopy(event)) == "ignore_errors"


def _numbered(i: int, value: str = "v") -> dict[str, Any]:
    frame = {"abs_path": f"/srv/app/m{i}.py", "module": f"app.m{i}", "filename": f"m{i}.py"}
    exception = {"type": f"E{i}", "value": value, "stacktrace": {"frames": [frame]}}
    return {"exception": {"values": [exception]}, "request": {"url": f"https://shop.test/item/{i}"}}


def _every_option() -> Filters:
    return Filters(
        ignore=MATCHERS["ignore"],
        deny=MATCHERS["deny"],
        allow=MATCHERS["allow"],
        include=IncludePaths(MATCHERS["include"]),
    )


def test_every_memory_keeps_a_fixed_number_of_entries() -> None:
    from sentry_flags._filters import DECISIONS
    from sentry_flags._patterns import SEEN_SIZE

    filters = _every_option()
    for i in range(DECISIONS * 3):
        filters.drop(_numbered(i))
    assert len(filters._ignored) == DECISIONS
    assert len(filters._frames) == DECISIONS
    for matcher in (filters.ignore, filters.deny, filters.allow, filters.include.matcher):  # type: ignore[union-attr]
        assert 0 < len(matcher.seen) <= SEEN_SIZE
    # The newest are remembered, the oldest forgotten.
    assert (f"E{DECISIONS * 3 - 1}", "v") in filters._ignored
    assert ("E0", "v") not in filters._ignored


def test_long_texts_are_decided_each_time_and_not_remembered() -> None:
    from sentry_flags._patterns import REMEMBER_TEXT

    filters = _every_option()
    long = "x" * (REMEMBER_TEXT + 1)
    event = _numbered(1, value=long)
    event["exception"]["values"][0]["stacktrace"]["frames"][0]["abs_path"] = "/srv/" + long
    expected_event = copy.deepcopy(event)
    expected = reference(expected_event, **{name: MATCHERS[name] for name in MATCHERS})
    for _ in range(2):
        found_event = copy.deepcopy(event)
        assert filters.drop(found_event) == expected
        assert found_event == expected_event
    assert filters._ignored == {}
    assert filters._frames == {}
    assert all(len(text) <= REMEMBER_TEXT for text in filters.ignore.seen)


def test_decisions_stay_right_and_bounded_under_threads() -> None:
    import threading

    from sentry_flags._filters import DECISIONS

    filters = _every_option()
    events = [_numbered(i, value="boom" if i % 5 == 0 else "v") for i in range(3 * DECISIONS // 2)]
    expected = [reference(copy.deepcopy(e), **{name: MATCHERS[name] for name in MATCHERS}) for e in events]
    start = threading.Barrier(4, timeout=5)
    wrong: list[int] = []

    def work(offset: int) -> None:
        start.wait()
        for n in range(len(events)):
            i = (n + offset * 97) % len(events)
            if filters.drop(copy.deepcopy(events[i])) != expected[i]:
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not wrong
    # Racing inserts may overshoot by one entry per thread at most.
    assert len(filters._ignored) <= DECISIONS + 4
    assert len(filters._frames) <= DECISIONS + 4


def test_texts_that_cannot_be_hashed_are_decided_the_long_way() -> None:
    # One exception of sentry-sdk's shape but for a list where a text goes: its memories
    # cannot be asked, and the option still decides (found by the property test above).
    ignored = {"exception": {"values": [{"type": "Type1", "value": ["a"], "stacktrace": {"frames": []}}]}}
    assert reference(copy.deepcopy(ignored), MATCHERS["ignore"], EMPTY, EMPTY, EMPTY) == "ignore_errors"
    assert Filters(ignore=MATCHERS["ignore"]).drop(ignored) == "ignore_errors"
    frame = {"abs_path": "/deny/thing.py", "filename": ["x"], "module": "app.x"}
    denied = {"exception": {"values": [{"type": "E", "value": "v", "stacktrace": {"frames": [frame]}}]}}
    assert reference(copy.deepcopy(denied), EMPTY, MATCHERS["deny"], EMPTY, EMPTY) == "deny_urls"
    assert Filters(deny=MATCHERS["deny"]).drop(denied) == "deny_urls"


def test_a_last_frame_without_texts_is_not_taken_for_the_raising_one() -> None:
    # The memory's answer for "no frame can have raised" is keyed (None, None, None), as such
    # a last frame reads; the frame before it raised (found by the property test above).
    filters = Filters(allow=MATCHERS["allow"])
    nothing = {"exception": {"values": [{"type": "E", "value": "v", "stacktrace": {"frames": [{}]}}]}}
    assert filters.drop(nothing) is None  # no URL at all: kept, and remembered
    frames = [{"abs_path": None, "module": None}, {"abs_path": "", "module": "/deny/thing.py"}, {}]
    event = {"exception": {"values": [{"type": None, "value": None, "stacktrace": {"frames": frames}}]}}
    assert reference(copy.deepcopy(event), EMPTY, EMPTY, MATCHERS["allow"], EMPTY) == "allow_urls"
    assert filters.drop(event) == "allow_urls"


def test_a_url_whose_truth_fails_is_read_the_long_way() -> None:
    # The long way reads the URL under its guard, logs, and still marks in_app frames; the
    # short cut, with the raising frame remembered, must not raise instead (found in review).
    frame = {"abs_path": "/srv/app/v.py", "filename": "app/v.py", "module": "app.v"}

    def event(request: Any = None) -> dict[str, Any]:
        single = {"type": "E", "value": "v", "stacktrace": {"frames": [dict(frame)]}}
        out: dict[str, Any] = {"exception": {"values": [single]}}
        if request is not None:
            out["request"] = request
        return out

    def filters() -> Filters:
        return Filters(deny=MATCHERS["deny"], include=IncludePaths(MATCHERS["include"]))

    warm = filters()
    assert warm.drop(event()) is None  # the frame's verdicts are remembered
    faulty = event({"url": Faulty("https://ok.example/")})
    long_way = copy.deepcopy(faulty)
    assert warm.drop(faulty) == filters()._drop_any(long_way)
    assert faulty == long_way
    assert faulty["exception"]["values"][0]["stacktrace"]["frames"][0]["in_app"] is True


# -- the short cut against the long way, on events one step from sentry-sdk's shape ---------


class Shouting(str):
    """A str subclass that prints as another text (``f"{x}"`` calls its ``__str__``)."""

    def __str__(self) -> str:
        return "boom"


class RaisingRequest(Mapping[str, Any]):
    """A request Mapping whose reading fails."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("no")

    def __iter__(self) -> Any:
        raise RuntimeError("no")

    def __len__(self) -> int:
        return 1

    def __deepcopy__(self, memo: dict[int, Any]) -> RaisingRequest:
        return self  # read by neither copy


class Faulty(str):
    """A str subclass whose truth cannot be told."""

    def __len__(self) -> int:
        raise RuntimeError("no")


odd_texts = st.one_of(texts, texts, st.none(), texts.map(Shouting), st.just(["a"]))
odd_paths = st.one_of(paths, paths, st.none(), paths.map(Shouting), st.just(["a"]))
odd_frames = st.fixed_dictionaries(
    {}, optional={"abs_path": odd_paths, "filename": odd_paths, "module": odd_paths, "function": texts}
)
odd_frame_lists = st.lists(odd_frames, max_size=4)
single_events = st.fixed_dictionaries(
    {
        "exception": st.fixed_dictionaries(
            {
                "values": st.lists(
                    st.fixed_dictionaries(
                        {"type": odd_texts, "value": odd_texts},
                        optional={"stacktrace": st.fixed_dictionaries({"frames": odd_frame_lists})},
                    ),
                    min_size=1,
                    max_size=1,
                )
            }
        )
    },
    optional={
        "request": st.one_of(
            st.none(),
            st.fixed_dictionaries({}, optional={"url": st.one_of(odd_texts, texts.map(Faulty))}),
            st.builds(RaisingRequest),
        )
    },
)


def _filters_for(options: set[str]) -> Filters:
    chosen = {name: MATCHERS[name] if name in options else EMPTY for name in MATCHERS}
    return Filters(
        ignore=chosen["ignore"],
        deny=chosen["deny"],
        allow=chosen["allow"],
        include=IncludePaths(chosen["include"]) if chosen["include"] else None,
    )


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(single_events, min_size=1, max_size=4),
    options=st.sets(st.sampled_from(sorted(MATCHERS)), min_size=1),
)
def test_the_short_cut_decides_as_the_long_way(events: list[dict[str, Any]], options: set[str]) -> None:
    # One Filters through a sequence of events (what one remembers must not mislead the next),
    # each decided again the long way by a fresh one: the same option, the same frames marked.
    filters = _filters_for(options)
    for event in events:
        long_event, short_event = copy.deepcopy(event), copy.deepcopy(event)
        assert filters.drop(short_event) == _filters_for(options)._drop_any(long_event)
        assert short_event == long_event
