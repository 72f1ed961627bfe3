"""What the app allows us to pass on, read from the Sentry client's own resolved options.

sentry-sdk 2.7x replaced ``send_default_pii`` with ``data_collection``; older releases only
have the boolean. We follow whichever the running client resolved, so we never send more
than Sentry itself would collect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Query keys whose values are secrets whatever the app allows (tokens in URLs).
SENSITIVE_KEY_PARTS = (
    "auth", "token", "secret", "password", "passwd", "pwd", "key", "jwt", "bearer",
    "session", "sid", "csrf", "xsrf", "credential", "signature", "sig", "code",
)  # fmt: skip


@dataclass(frozen=True)
class Privacy:
    """Which kinds of personal data may leave the app through us."""

    user_info: bool = False  # email, username, IP address, names
    query_values: bool = False  # values in URL query strings
    cookies: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Privacy:
        collection = options.get("data_collection")
        if isinstance(collection, Mapping) and collection.get("provided_by_user"):
            return cls(
                user_info=bool(collection.get("user_info")),
                query_values=_mode(collection.get("url_query_params")) != "off",
                cookies=_mode(collection.get("cookies")) != "off",
            )
        pii = bool(options.get("send_default_pii"))
        return cls(user_info=pii, query_values=pii, cookies=pii)


STRICT = Privacy()


def _mode(behaviour: Any) -> str:
    # data_collection defaults a key-value category to "denylist" when omitted.
    if isinstance(behaviour, Mapping):
        mode = behaviour.get("mode")
        return mode if isinstance(mode, str) else "denylist"
    return "denylist"


def is_sensitive_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in SENSITIVE_KEY_PARTS)
