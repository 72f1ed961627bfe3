"""One normalized, immutable view of a captured error, shared by every forwarder.

Built once per event, off the app's thread, after privacy rules are applied: forwarders
never see the raw Sentry event, so none of them can leak what the app did not allow.
The rules (``_privacy.py``) follow what sentry-sdk itself sends Sentry, never more: the
user's personal fields, URL query values, the Referer and User-Agent headers each pass
only where the client's ``data_collection`` (or ``send_default_pii``) lets Sentry have
them. Cookies, other headers and request bodies are never part of the view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sentry_flags._context import CONTEXT_KEY
from sentry_flags._flags import FLAGS_KEY, SENTRY_FLAGS_KEY
from sentry_flags._privacy import KeyValueRule, Privacy
from sentry_flags._shape import as_text, exceptions, frames, mapping, messages, text

if TYPE_CHECKING:
    from ldclient import Context

FILTERED = "[Filtered]"
PII_USER_KEYS = frozenset({"email", "ip_address", "username", "name", "geo"})
OUR_CONTEXTS = (CONTEXT_KEY, FLAGS_KEY, SENTRY_FLAGS_KEY)  # what _stage.attach writes
MAX_COPY_DEPTH = 32


@dataclass(frozen=True)
class ErrorView:
    """What forwarders may know about one Sentry error event.

    One immutable view per error, built once on the delivery thread after the privacy rules
    (`Privacy`) and shared by every forwarder: a forwarder of your own reads it in
    ``Forwarder.calls``. Fields the event does not have are `None` (or empty).

    Attributes:
        event_id: The Sentry event id.
        timestamp: When the error happened (timezone-aware, UTC).
        level: The event level (``"error"``, ``"fatal"``...).
        environment: The Sentry environment.
        release: The release.
        transaction: The transaction name (a route, a task).
        culprit: The event's ``culprit``, else the transaction, else ``module in function``
            of the innermost in-app frame.
        exception_type: The type of the raised exception (the last in a chain).
        exception_value: Its value (the message).
        exception_types: Every exception type of the chain, the innermost cause first.
        message: The message of an error without an exception (``capture_message``, a log
            record).
        logger: The logger name.
        server_name: The server name.
        user: The event's ``user``; ``email``, ``ip_address``, ``username``, ``name`` and
            ``geo`` only when the app allows user info.
        tags: The event's tags.
        contexts: The event's contexts, as attached (``launchdarklyContext``, ``flags``,
            ``flagEvaluations``...), read-only; the three sentry-flags attaches are a copy, so no
            forwarder changes what Sentry or another forwarder gets.
        url: The request URL, without credentials and fragment, and without query values
            unless the app allows them (sensitive keys always ``[Filtered]``).
        method: The request method.
        query: The request's query string, by the same rule as ``url``'s query.
        referer: The ``Referer`` header, as ``url`` is cleaned, when the app's header rule
            lets it pass.
        user_agent: The ``User-Agent`` header, when the app's header rule lets it pass.
        ld_context: The LaunchDarkly ``Context`` object itself, not redacted: for
            LaunchDarkly's own SDK, whose private-attribute rules then apply. Not compared,
            not shown in ``repr``.
    """

    event_id: str
    timestamp: datetime
    level: str
    environment: Optional[str] = None
    release: Optional[str] = None
    transaction: Optional[str] = None
    culprit: Optional[str] = None
    exception_type: Optional[str] = None
    exception_value: Optional[str] = None
    exception_types: tuple[str, ...] = ()
    message: Optional[str] = None
    logger: Optional[str] = None
    server_name: Optional[str] = None
    user: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, Any] = field(default_factory=dict)
    contexts: Mapping[str, Any] = field(default_factory=dict)
    url: Optional[str] = None
    method: Optional[str] = None
    query: Optional[str] = None
    referer: Optional[str] = None
    user_agent: Optional[str] = None
    ld_context: Optional[Context] = field(default=None, compare=False, repr=False)

    @property
    def user_id(self) -> Optional[str]:
        """``user["id"]`` as a `str` (``42`` -> ``"42"``); `None` when missing or empty."""
        uid = self.user.get("id")
        return None if uid is None or uid == "" else as_text(uid)

    @property
    def ld_context_json(self) -> Optional[Mapping[str, Any]]:
        """The redacted ``launchdarklyContext`` as it was attached to the Sentry event."""
        found = self.contexts.get(CONTEXT_KEY)
        return MappingProxyType(found) if isinstance(found, Mapping) else None

    def lookup(self, path: tuple[str, ...]) -> Any:
        """Follow ``path`` (e.g. ``("user", "id")``) through the privacy-filtered event."""
        root: Any = {
            "user": self.user,
            "tags": self.tags,
            "contexts": self.contexts,
            "request": {
                "url": self.url,
                "method": self.method,
                "query_string": self.query,
                "referer": self.referer,
                "user_agent": self.user_agent,
            },
            "event_id": self.event_id,
            "level": self.level,
            "environment": self.environment,
            "release": self.release,
            "transaction": self.transaction,
            "culprit": self.culprit,
            "server_name": self.server_name,
            "logger": self.logger,
        }
        for part in path:
            if type(root) is dict or isinstance(root, Mapping):
                root = root.get(part)
            elif isinstance(root, (list, tuple)) and _is_index(part) and int(part) < len(root):
                root = root[int(part)]
            else:
                return None
        return root

    @classmethod
    def build(
        cls, event: Mapping[str, Any], privacy: Privacy, ld_context: Optional[Context] = None
    ) -> ErrorView:
        """The view of a Sentry ``event``, with ``privacy`` applied.

        Args:
            event: The Sentry event, as ``before_send`` gets it.
            privacy: What the app lets leave (`Privacy.from_options`).
            ld_context: The LaunchDarkly ``Context`` recorded for the event. Default `None`.
        """
        values = exceptions(event)
        last = values[-1] if values else {}
        request = mapping(event.get("request"))
        headers = _headers(request.get("headers"))
        msgs = messages(event)
        transaction = text(event.get("transaction"))
        return cls(
            event_id=text(event.get("event_id")) or "",
            timestamp=_timestamp(event.get("timestamp")),
            level=text(event.get("level")) or "error",
            environment=text(event.get("environment")),
            release=text(event.get("release")),
            transaction=transaction,
            culprit=text(event.get("culprit")) or transaction or _frame_culprit(last),
            exception_type=text(last.get("type")),
            exception_value=text(last.get("value")),
            exception_types=tuple(t for t in (text(v.get("type")) for v in values) if t),
            message=msgs[0] if msgs else None,
            logger=text(event.get("logger")),
            server_name=text(event.get("server_name")),
            user=_user(event.get("user"), privacy),
            tags=_tags(event.get("tags")),
            contexts=_contexts(event.get("contexts")),
            url=clean_url(text(request.get("url")), privacy),
            method=text(request.get("method")),
            query=_query(request.get("query_string"), privacy),
            referer=clean_url(_header(headers, "referer", privacy), privacy),
            user_agent=_header(headers, "user-agent", privacy),
            ld_context=ld_context,
        )


def _contexts(value: Any) -> Mapping[str, Any]:
    """The event's contexts, read-only, with our own forms copied (on the delivery worker):
    the events of a request share them (_stage.attach), and no forwarder may change them for
    the others. A malformed event may hold cycles or one dict many times: each is copied once,
    and nothing past ``MAX_COPY_DEPTH``."""
    contexts = dict(mapping(value))
    memo: dict[int, Any] = {}
    for key in OUR_CONTEXTS:
        if key in contexts:
            contexts[key] = _copied(contexts[key], memo, MAX_COPY_DEPTH)
    return MappingProxyType(contexts)


def _copied(value: Any, memo: dict[int, Any], depth: int) -> Any:
    kind = type(value)
    if (kind is not dict and kind is not list) or depth <= 0:
        return value
    found = memo.get(id(value))
    if found is not None:
        return found
    if kind is dict:
        into: Any = {}
        memo[id(value)] = into
        for k, v in value.items():
            into[k] = _copied(v, memo, depth - 1)
    else:
        into = []
        memo[id(value)] = into
        into.extend(_copied(v, memo, depth - 1) for v in value)
    return into


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            pass
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return datetime.now(timezone.utc)


def _frame_culprit(exception: Mapping[str, Any]) -> Optional[str]:
    """Sentry's culprit: ``module in function`` of the innermost in-app frame."""
    candidates = [f for f in frames(exception) if type(f) is dict or isinstance(f, Mapping)]
    in_app = [f for f in candidates if f.get("in_app") is True] or candidates
    for frame in reversed(in_app):
        where = text(frame.get("module")) or text(frame.get("filename"))
        func = text(frame.get("function"))
        if where and func:
            return f"{where} in {func}"
        if where or func:
            return where or func
    return None


def _user(value: Any, privacy: Privacy) -> dict[str, Any]:
    user = mapping(value)
    return {
        k: v for k, v in user.items() if isinstance(k, str) and (privacy.user_info or k not in PII_USER_KEYS)
    }


def _tags(value: Any) -> dict[str, Any]:
    if type(value) is dict or isinstance(value, Mapping):
        return {k: v for k, v in value.items() if isinstance(k, str)}
    if isinstance(value, list):  # Sentry also accepts [[key, value], ...]
        return {
            p[0]: p[1]
            for p in value
            if isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)
        }
    return {}


def _header(headers: Mapping[str, tuple[str, str]], name: str, privacy: Privacy) -> Optional[str]:
    found = headers.get(name)
    if found is None or not privacy.headers.keeps(found[0]):
        return None
    return found[1]


def _headers(value: Any) -> dict[str, tuple[str, str]]:
    """Header name, lowercased -> (name as sent, value)."""
    if type(value) is dict or isinstance(value, Mapping):
        pairs: Any = value.items()
    else:
        pairs = value if isinstance(value, list) else ()
    out: dict[str, tuple[str, str]] = {}
    for pair in pairs:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            k, v = pair
            if isinstance(k, str) and isinstance(v, str):
                out[k.lower()] = (k, v)
    return out


def _is_index(part: str) -> bool:
    return part.isascii() and part.isdecimal()  # "²" is a digit int() refuses


def _filter_query(query: str, rule: KeyValueRule) -> str:
    """As sentry-sdk filters a query string: every key stays, a value the rule does not keep
    becomes ``[Filtered]``."""
    pairs = parse_qsl(query, keep_blank_values=True)
    # surrogatepass: sentry-sdk keeps lone surrogates, which strict UTF-8 cannot encode.
    filtered = [(k, v if rule.keeps(k) else FILTERED) for k, v in pairs]
    return urlencode(filtered, errors="surrogatepass")


def _query(value: Any, privacy: Privacy) -> Optional[str]:
    if not privacy.query.passes_any:
        return None
    if isinstance(value, str) and value:
        return _filter_query(value, privacy.query)
    return None


def clean_url(url: Optional[str], privacy: Privacy) -> Optional[str]:
    """Drop credentials and fragments always; the query as the app's query rule allows."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        query = _filter_query(parts.query, privacy.query) if privacy.query.passes_any and parts.query else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return None
