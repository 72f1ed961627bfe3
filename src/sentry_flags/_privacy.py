"""What the app allows us to pass on: never more than sentry-sdk itself sends Sentry.

One decision per Sentry client, read from its resolved options:

- where ``data_collection`` governs what sentry-sdk collects, it governs us too: on 3.x
  always (it is the only setting there, and ``user_info`` defaults to True), on 2.7x when
  the app set it (the resolved dict says ``provided_by_user``). Its ``user_info``,
  ``url_query_params`` and ``http_headers["request"]`` are followed, with their
  off / denylist / allowlist modes and terms;
- otherwise ``send_default_pii`` (2.x; False when unset).

What a forwarder may then see of an error (`sentry_flags.ErrorView`):

- the user's ``id`` always; ``email``, ``ip_address``, ``username``, ``name`` and ``geo``
  only with ``user_info``;
- URL query values (of the request URL, its query string, the Referer) as
  ``url_query_params`` allows, the values of sensitive keys always ``[Filtered]``;
- the ``Referer`` and ``User-Agent`` request headers only where the header rule keeps them;
- cookies never, whatever the setting: no forwarder has a use for them.

Where this is stricter than sentry-sdk, on purpose: sentry-sdk 2.x without
``data_collection`` sends the raw query string whatever ``send_default_pii`` says, we send
query values only with ``send_default_pii`` and filter sensitive keys even then; our
sensitive terms add ``code``, ``signature``, ``sig`` and ``credential`` to sentry-sdk's own,
in every mode; a Referer's query follows the query rule and loses credentials and fragment
(sentry-sdk sends the header as it came); and the user fields other than ``id`` need
``user_info`` even when the app set them itself (sentry-sdk sends what ``set_user`` got).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from sentry_flags import _sentry
from sentry_flags._fork import ForkSafeLock

OFF = "off"
DENYLIST = "denylist"
ALLOWLIST = "allowlist"
MODES = (OFF, DENYLIST, ALLOWLIST)

# Key terms whose values are secrets whatever the app allows (tokens in URLs); joined with
# sentry-sdk's own list (data_collection._SENSITIVE_DENYLIST, read through _sentry.py).
OUR_SENSITIVE_TERMS = (
    "auth", "token", "secret", "password", "passwd", "pwd", "key", "jwt", "bearer",
    "session", "sid", "csrf", "xsrf", "credential", "signature", "sig", "code",
)  # fmt: skip

_terms: Optional[tuple[str, ...]] = None
_terms_lock = ForkSafeLock()


def sensitive_terms() -> tuple[str, ...]:
    """sentry-sdk's sensitive-key terms and ours, lowercased; read once, when first needed."""
    global _terms
    found = _terms
    if found is None:
        with _terms_lock:
            if _terms is None:
                _terms = tuple(dict.fromkeys((*_sentry.sensitive_terms(), *OUR_SENSITIVE_TERMS)))
            found = _terms
    return found


def is_sensitive_key(key: str) -> bool:
    """Whether the value of ``key`` is never passed on, whatever the app allows."""
    lowered = key.lower()
    return any(term in lowered for term in sensitive_terms())


@dataclass(frozen=True)
class KeyValueRule:
    """Which values of one kind of key-value data (query parameters, request headers) may leave.

    The ``query`` and ``headers`` of a `Privacy`, e.g. ``KeyValueRule("allowlist", ("page",))``.

    Modes as sentry-sdk's ``data_collection``: ``off`` passes nothing; ``denylist`` passes
    every value but those of sensitive keys and of keys containing one of ``terms``;
    ``allowlist`` passes only the values of keys containing one of ``terms`` that are not
    sensitive. Terms match case-insensitively, anywhere in the key.

    Attributes:
        mode: ``"off"``, ``"denylist"`` or ``"allowlist"``. Default ``"off"``.
        terms: The key terms the mode lists (a tuple or list of `str`, kept lowercased).
            Default: none.

    Raises:
        ValueError: ``mode`` is not one of the three.
        TypeError: ``terms`` is not a tuple or list of `str`.
    """

    mode: str = OFF
    terms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        terms: Any = self.terms
        if not isinstance(terms, (tuple, list)) or not all(isinstance(t, str) for t in terms):
            raise TypeError(f"terms must be a tuple of str, got {terms!r}")
        cleaned = tuple(t.lower() for t in terms if t)
        if cleaned != terms:
            object.__setattr__(self, "terms", cleaned)

    @classmethod
    def from_behaviour(cls, behaviour: Any) -> KeyValueRule:
        """From sentry-sdk's resolved ``{"mode": ..., "terms": [...]}``; its defaults when
        left out (``denylist``, no terms), ``off`` when it is not understood."""
        if behaviour is None:
            return cls(DENYLIST)
        if not isinstance(behaviour, Mapping):
            return cls(OFF)
        mode = behaviour.get("mode", DENYLIST)
        terms = behaviour.get("terms") or ()
        if mode not in MODES or isinstance(terms, (str, bytes)) or not isinstance(terms, (list, tuple)):
            return cls(OFF)
        return cls(mode, tuple(t for t in terms if isinstance(t, str)))

    @property
    def passes_any(self) -> bool:
        """Whether any value may leave: the mode is not ``off``."""
        return self.mode != OFF

    def keeps(self, key: str) -> bool:
        """Whether the value of ``key`` may be passed on."""
        if self.mode == OFF or is_sensitive_key(key):
            return False
        lowered = key.lower()
        listed = any(term in lowered for term in self.terms)
        return listed if self.mode == ALLOWLIST else not listed


RULE_OFF = KeyValueRule(OFF)
RULE_DENYLIST = KeyValueRule(DENYLIST)


@dataclass(frozen=True)
class Privacy:
    """What personal data may leave the app through the forwarders; see the module doc.

    Read once per Sentry client from its resolved options (`from_options`), and applied to
    every `ErrorView`: a vendor never gets more than sentry-sdk sends Sentry. Cookies are
    never part of it. ``Privacy()`` is what an app that set nothing gets on sentry-sdk 2.x:
    no user info and no query values; the ``Referer`` and ``User-Agent`` headers pass
    (sentry-sdk sends them too).

    Attributes:
        user_info: Whether email, username, IP address, names and geo may leave. Default
            `False`.
        query: Which URL query values may leave (a `KeyValueRule`: ``off``,
            ``denylist`` or ``allowlist``, as ``data_collection``'s ``url_query_params``).
            Default: none.
        headers: Which request headers (``Referer``, ``User-Agent``) may leave, as
            ``data_collection``'s ``http_headers``. Default: all but sensitive ones.
    """

    user_info: bool = False
    query: KeyValueRule = RULE_OFF
    headers: KeyValueRule = RULE_DENYLIST

    @property
    def query_values(self) -> bool:
        """Whether any URL query value may leave."""
        return self.query.passes_any

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Privacy:
        """The decision for a client with these resolved options.

        ``data_collection`` where it governs (sentry-sdk 3.x always; 2.7x when the app set
        it), ``send_default_pii`` otherwise.

        Args:
            options: A Sentry client's resolved options (``client.options``).
        """
        collection = governing_data_collection(options)
        if collection is None:
            pii = bool(options.get("send_default_pii"))
            return cls(user_info=pii, query=RULE_DENYLIST if pii else RULE_OFF, headers=RULE_DENYLIST)
        http_headers = collection.get("http_headers")
        if http_headers is None:
            headers = RULE_DENYLIST  # sentry-sdk's default
        elif isinstance(http_headers, Mapping):
            headers = KeyValueRule.from_behaviour(http_headers.get("request"))
        else:
            headers = RULE_OFF
        return cls(
            user_info=_user_info(collection),
            query=KeyValueRule.from_behaviour(collection.get("url_query_params")),
            headers=headers,
        )


def governing_data_collection(options: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    """The resolved ``data_collection`` when it is what sentry-sdk follows, else None.

    2.7x resolves one from ``send_default_pii`` too and marks it ``provided_by_user: False``;
    its integrations then follow ``send_default_pii``, and so do we. 3.x has no such key:
    its ``data_collection`` always governs.
    """
    collection = options.get("data_collection")
    if isinstance(collection, Mapping) and collection.get("provided_by_user", True):
        return collection
    return None


def _user_info(collection: Mapping[str, Any]) -> bool:
    return bool(collection.get("user_info", True))  # the spec's default, as sentry-sdk resolves it


def allows_user_info(options: Mapping[str, Any]) -> bool:
    """``Privacy.from_options(options).user_info``, without building the rest (per request)."""
    collection = governing_data_collection(options)
    if collection is None:
        return bool(options.get("send_default_pii"))
    return _user_info(collection)
