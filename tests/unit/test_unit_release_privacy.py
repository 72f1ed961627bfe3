"""ReleaseSource parsing/resolution and Privacy resolution from client options."""

from __future__ import annotations

import logging

import pytest

from sentry_flags._privacy import Privacy
from sentry_flags._release import ReleaseSource


@pytest.mark.parametrize(
    ("value", "scheme", "name"),
    [
        ("env:APP_RELEASE", "env", "APP_RELEASE"),
        ("env: APP_RELEASE ", "env", "APP_RELEASE"),
        ("package:sentry-flags", "package", "sentry-flags"),
        ("myapp.__version__", "attr", "myapp.__version__"),
        ("a.b.c", "attr", "a.b.c"),
    ],
)
def test_parse(value: str, scheme: str, name: str) -> None:
    assert ReleaseSource.parse(value) == ReleaseSource(scheme, name)


@pytest.mark.parametrize(
    ("value", "error"),
    [("", ValueError), ("ftp:x", ValueError), ("env:", ValueError), ("nodots", ValueError),
     ("a..b", ValueError), ("1a.b", ValueError), (3, TypeError), (None, TypeError)],
)  # fmt: skip
def test_parse_rejects(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="release_from"):
        ReleaseSource.parse(value)


def test_resolve(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sentry_flags")
    monkeypatch.setenv("CORE_UNIT_RELEASE", " 1.2.3 ")
    monkeypatch.setenv("CORE_UNIT_EMPTY", "  ")
    assert ReleaseSource("env", "CORE_UNIT_RELEASE").resolve() == "1.2.3"
    assert ReleaseSource("attr", "logging.BASIC_FORMAT").resolve() == logging.BASIC_FORMAT
    assert ReleaseSource("env", "CORE_UNIT_EMPTY").resolve() is None
    assert ReleaseSource("package", "no-such-dist-core-unit").resolve() is None
    assert ReleaseSource("attr", "no_such_mod_core_unit.x").resolve() is None
    messages = [r.getMessage() for r in caplog.records if r.name == "sentry_flags"]
    assert len(messages) == 3
    assert all("release_from" in m for m in messages)


def test_privacy_from_send_default_pii() -> None:
    assert Privacy.from_options({}) == Privacy(False, False, False)
    assert Privacy.from_options({"send_default_pii": True}) == Privacy(True, True, True)


def test_privacy_from_data_collection_only_when_provided_by_user() -> None:
    resolved_from_pii = {"provided_by_user": False, "user_info": True}
    assert (
        Privacy.from_options({"data_collection": resolved_from_pii, "send_default_pii": False}) == Privacy()
    )
    explicit = {
        "provided_by_user": True,
        "user_info": False,
        "url_query_params": {"mode": "off"},
        "cookies": {},
    }
    assert Privacy.from_options({"data_collection": explicit, "send_default_pii": True}) == Privacy(
        user_info=False, query_values=False, cookies=True
    )
