"""compile_patterns / Matcher: what matches, and what is rejected, without any Sentry client."""

from __future__ import annotations

import re

import pytest

from sentry_flags._patterns import EMPTY, compile_patterns


def test_none_and_empty_match_nothing() -> None:
    assert compile_patterns("x", None) is EMPTY
    assert not compile_patterns("x", [])
    assert not compile_patterns("x", []).search("anything")
    assert not EMPTY.search_any(["a", "b"])


def test_substrings_are_literal_and_case_sensitive() -> None:
    matcher = compile_patterns("x", ["a.b", "(", "Card"])
    assert matcher.search("xx a.b yy")
    assert not matcher.search("axb")  # the dot is not a wildcard
    assert matcher.search("unbalanced ( paren")
    assert not matcher.search("card")


def test_regexes_use_search_and_keep_their_flags() -> None:
    matcher = compile_patterns("x", [re.compile(r"\d{3}"), re.compile("^abc$", re.I)])
    assert matcher.search("code 404!")
    assert matcher.search("ABC")
    assert not matcher.search("abcd")


def test_search_any() -> None:
    matcher = compile_patterns("x", ["needle"])
    assert matcher.search_any(["hay", "a needle"])
    assert not matcher.search_any([])
    assert not matcher.search_any(["hay"])


@pytest.mark.parametrize(
    ("text", "pattern", "matches"),
    [
        ("/abc/", "xabcx", True),
        ("/^abc$/", "xabcx", False),
        ("/ABC/i", "abc", True),
        ("/ABC/", "abc", False),
        ("/a.c/s", "a\nc", True),
        ("/a.c/", "a\nc", False),
        ("/^b$/m", "a\nb\nc", True),
        ("/a b/x", "ab", True),
        ("/a/b/", "a/b", True),  # the body runs to the last slash
        ("/abc/g", "/abc/g", True),  # unknown flag: a plain substring
        ("/abc/g", "abc", False),
        ("abc/", "abc/", True),
    ],
)
def test_slashed_strings_in_config_mode(text: str, pattern: str, matches: bool) -> None:
    assert compile_patterns("x", [text], slashed_regex=True).search(pattern) is matches


def test_slashed_strings_are_substrings_by_default() -> None:
    matcher = compile_patterns("x", ["/abc/"])
    assert matcher.search("path /abc/ here")
    assert not matcher.search("abc")


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        ("abc", TypeError, "x must be a list"),
        (b"abc", TypeError, "x must be a list"),
        (re.compile("a"), TypeError, "x must be a list"),
        (3, TypeError, "x must be a list"),
        ([3], TypeError, r"x\[0\]"),
        (["", "a"], ValueError, r"x\[0\]"),
        (["a", b"b"], TypeError, r"x\[1\]"),
        ([re.compile(b"a")], TypeError, r"x\[0\] must be a str pattern"),
    ],
)
def test_rejected_values_name_the_option_and_index(value: object, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        compile_patterns("x", value)


def test_invalid_slashed_regex_names_the_option() -> None:
    with pytest.raises(ValueError, match=r"deny_urls\[1\] is not a valid regex"):
        compile_patterns("deny_urls", ["ok", "/[/"], slashed_regex=True)


def test_a_mapping_is_not_a_list_of_patterns() -> None:
    with pytest.raises(TypeError, match="ignore_errors must be a list"):
        compile_patterns("ignore_errors", {"ResizeObserver": True})
