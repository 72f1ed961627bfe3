"""compile_patterns / Matcher: what matches, and what is rejected, without any Sentry client."""

from __future__ import annotations

import random
import re

import pytest

from sentry_flags._patterns import EMPTY, compile_patterns, slashed_regexes


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
        ("/abc/g", "xabcx", True),  # JavaScript's "g" and "u" change nothing for a search
        ("/ABC/giu", "abc", True),
        ("/static/js", "/static/js/app.js", True),  # not flags: a URL path, a substring
        ("/static/js", "static", False),
        ("abc/", "abc/", True),
    ],
)
def test_slashed_strings_in_config_mode(text: str, pattern: str, matches: bool) -> None:
    assert compile_patterns("x", slashed_regexes("x", [text])).search(pattern) is matches


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


@pytest.mark.parametrize("written", ["/^Timeout/q", "/Time(out)?/I", r"/\d+ errors/y"])
def test_a_slashed_regex_with_a_flag_that_is_not_one_is_rejected(written: str) -> None:
    with pytest.raises(ValueError, match=r"ignore_errors\[1\] .* is written as a regex, but .* not"):
        compile_patterns("ignore_errors", slashed_regexes("ignore_errors", ["ok", written]))
    # Outside config mode a slashed string is text, whatever follows its last slash.
    assert compile_patterns("ignore_errors", [written]).search(f"x {written} y")


def test_invalid_slashed_regex_names_the_option() -> None:
    with pytest.raises(ValueError, match=r"deny_urls\[1\] is not a valid regex"):
        compile_patterns("deny_urls", slashed_regexes("deny_urls", ["ok", "/[/"]))


def test_a_mapping_is_not_a_list_of_patterns() -> None:
    with pytest.raises(TypeError, match="ignore_errors must be a list"):
        compile_patterns("ignore_errors", {"ResizeObserver": True})


# -- merged regexes: one alternation per flag set, same answers as one by one -----------------

SEMANTIC_PATTERNS = [
    re.compile(r"^Timeout"),
    re.compile(r"timeout$", re.IGNORECASE),
    re.compile(r"^b$", re.MULTILINE),
    re.compile(r"a.c", re.DOTALL),
    re.compile(r"a c  # trailing comment, in verbose mode", re.VERBOSE),
    re.compile(r"x y", re.VERBOSE | re.IGNORECASE),
    re.compile(r"\bword\b", re.ASCII),
    re.compile(r"(\w)\1"),  # a backreference: must stay alone
    re.compile(r"(?P<q>['\"]).*(?P=q)"),  # named group and reference
    re.compile(r"(?i)Shout"),  # a global inline flag: must not spread to the others
    re.compile(r"(?i:scoped)Tail"),
    re.compile(r"foo|bar"),  # an alternation inside one pattern
    re.compile(r"(?<=\$)\d+"),
    re.compile(r"^$"),
    re.compile(r"end\Z"),
    re.compile(r"[]|]x"),
    re.compile(r"é+", re.IGNORECASE),
]

SEMANTIC_TEXTS = [
    "", "Timeout reached", "a Timeout", "read TIMEOUT", "timeout", "a\nb\nc", "b", "a\nc", "abc",
    "ac", "a c", "XY", "xy", "x y", "a word here", "awordb", "hello", "helo", "say 'hi'",
    "say 'hi\"", "SHOUT", "shout", "scopedTail", "SCOPEDTail", "scopedtail", "foo", "xbarx",
    "costs $42", "42", "the end", "the end\n", "|x", "]x", "É", "ÉÉé", "Shout\nTail",
    "TIMEOUT\n", "b\n", "\n",
]  # fmt: skip


def one_by_one(patterns: list[re.Pattern[str]], text: str) -> bool:
    return any(p.search(text) is not None for p in patterns)


def test_merged_regexes_answer_like_each_pattern_searched_alone() -> None:
    matcher = compile_patterns("x", SEMANTIC_PATTERNS)
    assert len(matcher.scanners) < len(SEMANTIC_PATTERNS)  # something was merged
    for text in SEMANTIC_TEXTS:
        assert matcher.search(text) is one_by_one(SEMANTIC_PATTERNS, text), text


def test_every_subset_of_patterns_answers_like_one_by_one() -> None:
    rng = random.Random(5)
    for _ in range(300):
        subset = rng.sample(SEMANTIC_PATTERNS, rng.randint(1, len(SEMANTIC_PATTERNS)))
        matcher = compile_patterns("x", subset)
        for text in SEMANTIC_TEXTS:
            assert matcher.search(text) is one_by_one(subset, text), (text, [p.pattern for p in subset])


def test_regexes_with_the_same_flags_become_one_scanner_and_substrings_another() -> None:
    patterns: list[object] = [re.compile(rf"^Unrelated{i}Error\b") for i in range(10)]
    patterns += [f"NoSuchError{i}" for i in range(10)]
    patterns += [re.compile(rf"cdn{i}\.example", re.I) for i in range(3)]
    matcher = compile_patterns("x", patterns)
    assert len(matcher.scanners) == 3  # substrings, flags 0, IGNORECASE
    assert matcher.search("Unrelated7Error: x")
    assert not matcher.search("x Unrelated7Error")
    assert matcher.search("a NoSuchError3 b")
    assert matcher.search("https://CDN2.EXAMPLE.com")
    assert not matcher.search("nothing")


def test_patterns_that_change_meaning_in_an_alternation_stay_alone() -> None:
    backref, named, global_flag = re.compile(r"(a)\1"), re.compile(r"(?P<n>b)(?P=n)"), re.compile("(?i)c")
    matcher = compile_patterns("x", [backref, named, global_flag, re.compile("X"), re.compile("Y")])
    assert backref in matcher.scanners
    assert named in matcher.scanners
    assert global_flag in matcher.scanners
    assert matcher.search("aa")
    assert not matcher.search("ab")
    assert matcher.search("bb")
    assert not matcher.search("ba")
    assert matcher.search("C")
    assert not matcher.search("x")
    assert not matcher.search("y")


def test_a_verbose_comment_does_not_swallow_the_next_pattern() -> None:
    matcher = compile_patterns("x", [re.compile("abc # comment", re.X), re.compile("x y z", re.X)])
    assert len(matcher.scanners) == 1
    assert matcher.search("xyz")
    assert matcher.search("abc")
    assert not matcher.search("x y z")  # whitespace is not significant in verbose mode


def test_slashed_regexes_with_flags_merge_per_flag_set() -> None:
    matcher = compile_patterns("x", slashed_regexes("x", ["/^a/i", "/^b/i", "/c$/", "/d$/m", "literal"]))
    assert len(matcher.scanners) == 4  # literal, (^a|^b)/i, c$, d$/m
    assert matcher.search("A..")
    assert matcher.search("b")
    assert matcher.search("xc")
    assert not matcher.search("c\n.")
    assert matcher.search("d\nx")
    assert matcher.search("a literal")
    assert not matcher.search("C")


def test_match_any_answers_as_search_any_and_remembers_short_plain_texts() -> None:
    from sentry_flags._patterns import REMEMBER_TEXT, SEEN_SIZE

    class Text(str):
        pass

    matcher = compile_patterns("x", ["needle", re.compile(r"^\d+$")])
    texts = ["hay", "a needle", "123", "", "x" * (REMEMBER_TEXT + 1) + "needle", Text("needle")]
    for _ in range(2):  # the second time from memory
        for text in texts:
            assert matcher.match_any([text]) is matcher.search_any([text])
        assert matcher.match_any(texts) is matcher.search_any(texts)
    assert set(matcher.seen) == {"hay", "a needle", "123", ""}  # not the long one, nor a subclass
    assert all(type(text) is str for text in matcher.seen)
    for i in range(SEEN_SIZE * 2):
        matcher.match_any([f"text {i}"])
    assert len(matcher.seen) == SEEN_SIZE
