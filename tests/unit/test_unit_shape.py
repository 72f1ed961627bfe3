"""The tolerant event readers the filters use, on well-formed and malformed events."""

from __future__ import annotations

from typing import Any

import pytest

from sentry_flags._shape import (
    all_frames,
    error_texts,
    event_urls,
    exceptions,
    is_error_event,
    messages,
    raising_frame,
    request_url,
)


def frame(**fields: Any) -> dict[str, Any]:
    return dict(fields)


def event_with_frames(*frames: Any, **extra: Any) -> dict[str, Any]:
    return {
        "exception": {"values": [{"type": "E", "value": "v", "stacktrace": {"frames": list(frames)}}]},
        **extra,
    }


def test_error_texts_type_colon_value_value_and_messages() -> None:
    event = {
        "message": "plain message",
        "logentry": {"message": "template %s", "formatted": "template x"},
        "exception": {
            "values": [{"type": "KeyError", "value": "'k'"}, {"type": "ValueError", "value": "bad"}]
        },
    }
    assert error_texts(event) == [
        "plain message",
        "template x",
        "template %s",
        "KeyError: 'k'",
        "'k'",
        "ValueError: bad",
        "bad",
    ]


def test_error_texts_type_without_value() -> None:
    assert error_texts({"exception": {"values": [{"type": "StopIteration"}]}}) == ["StopIteration"]


def test_messages_deduplicates_formatted_and_message() -> None:
    assert messages({"logentry": {"message": "same", "formatted": "same"}}) == ["same"]
    assert messages({"message": {"formatted": "dict message"}}) == ["dict message"]


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"exception": None},
        {"exception": "x"},
        {"exception": {"values": "x"}},
        {"exception": {"values": [None, 3]}},
        {"message": 5, "logentry": ["x"]},
    ],
)
def test_readers_tolerate_malformed_events(event: dict[str, Any]) -> None:
    assert error_texts(event) == []
    assert event_urls(event) == []
    assert list(all_frames(event)) == []
    assert raising_frame(event) is None


def test_exceptions_accepts_a_bare_list() -> None:
    assert exceptions({"exception": [{"type": "A"}, "junk"]}) == [{"type": "A"}]


def test_request_url_only_non_empty_strings() -> None:
    assert request_url({"request": {"url": "https://x.test/"}}) == "https://x.test/"
    for bad in (None, 3, "", ["u"]):
        assert request_url({"request": {"url": bad}}) is None
    assert request_url({"request": "https://x.test/"}) is None


def test_raising_frame_is_the_last_real_frame_of_the_last_exception() -> None:
    first = frame(abs_path="/app/first.py", filename="first.py", module="app.first")
    last = frame(abs_path="/app/last.py", filename="last.py", module="app.last")
    event = event_with_frames(first, last, None, "junk", {})
    assert raising_frame(event) is last


def test_raising_frame_skips_pseudo_paths() -> None:
    real = frame(abs_path="/app/real.py", filename="real.py", module="app.real")
    pseudo = frame(abs_path="<string>", filename="<string>", module="app.real")
    frozen = frame(abs_path="<frozen importlib._bootstrap>", filename="<frozen importlib._bootstrap>")
    assert raising_frame(event_with_frames(real, pseudo, frozen)) is real


def test_raising_frame_skips_pseudo_paths_as_sentry_sdk_serialises_them() -> None:
    real = frame(abs_path="/app/real.py", filename="real.py", module="app.real")
    pseudo = frame(abs_path="/app/<string>", filename="<string>", module="exec_module")
    frozen = frame(
        abs_path="/app/<frozen importlib._bootstrap>",
        filename="<frozen importlib._bootstrap>",
        module="importlib._bootstrap",
    )
    event = event_with_frames(real, pseudo, frozen)
    assert raising_frame(event) is real
    assert event_urls(event) == ["/app/real.py", "real.py", "app.real"]


def test_raising_frame_with_only_a_module() -> None:
    only_module = frame(module="native.ext")
    assert raising_frame(event_with_frames(frame(), only_module, frame(function="f"))) is only_module


def test_event_urls_request_then_raising_frame_without_duplicates() -> None:
    event = event_with_frames(
        frame(abs_path="/srv/app.py", filename="/srv/app.py", module="app"),
        request={"url": "https://x.test/a"},
    )
    assert event_urls(event) == ["https://x.test/a", "/srv/app.py", "app"]


def test_all_frames_covers_exceptions_and_threads_and_only_dict_frames() -> None:
    a, b, c = frame(module="a"), frame(module="b"), frame(module="c")
    event = {
        "exception": {"values": [{"stacktrace": {"frames": [a, None]}}, {"stacktrace": {"frames": [b]}}]},
        "threads": {"values": [{"stacktrace": {"frames": ["x", c]}}, None]},
    }
    assert list(all_frames(event)) == [a, b, c]


def test_is_error_event() -> None:
    assert is_error_event({})
    assert is_error_event({"type": "default"})
    assert not is_error_event({"type": "transaction"})
    assert not is_error_event({"type": "check_in"})
    assert is_error_event({"type": "error"})
    # Positively: a type nobody knows yet is not an error.
    assert not is_error_event({"type": "feedback"})
    assert not is_error_event({"type": ["error"]})
