"""``release_from``: read the release from the environment, a distribution or an attribute."""

from __future__ import annotations

import importlib
import logging
import os
import re
from dataclasses import dataclass
from importlib import metadata
from typing import Optional

logger = logging.getLogger("sentry_flags")

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
SCHEMES = ("env:NAME", "package:NAME", "module.attr")


@dataclass(frozen=True)
class ReleaseSource:
    """A parsed ``release_from`` value; resolved when a Sentry client starts."""

    scheme: str  # "env", "package" or "attr"
    name: str

    @classmethod
    def parse(cls, value: object) -> ReleaseSource:
        if not isinstance(value, str):
            raise TypeError(f"release_from must be a str ({', '.join(SCHEMES)}), got {type(value).__name__}")
        for scheme in ("env", "package"):
            prefix = scheme + ":"
            if value.startswith(prefix):
                name = value[len(prefix) :].strip()
                if not name:
                    raise ValueError(f"release_from {value!r} names no {scheme} to read")
                return cls(scheme, name)
        if _DOTTED.match(value):
            return cls("attr", value)
        raise ValueError(
            f"release_from {value!r} has an unknown scheme: expected one of {', '.join(SCHEMES)}"
        )

    @property
    def text(self) -> str:
        """The ``release_from`` value as written."""
        return self.name if self.scheme == "attr" else f"{self.scheme}:{self.name}"

    def resolve(self, fallback: Optional[str] = None) -> Optional[str]:
        """The release, or None when it cannot be read: a warning then says why, and that
        ``fallback`` (the ``release`` option), or else sentry-sdk's own, is the release."""
        try:
            found: object
            if self.scheme == "env":
                found = os.environ.get(self.name)
            elif self.scheme == "package":
                found = metadata.version(self.name)
            else:
                module_name, _, attr = self.name.rpartition(".")
                found = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:
            self._unread(f"{type(exc).__name__}: {exc}", fallback)
            return None
        if found is None or str(found).strip() == "":
            self._unread("not set" if found is None else "empty", fallback)
            return None
        return str(found).strip()

    def _unread(self, why: str, fallback: Optional[str]) -> None:
        instead = f"release={fallback!r}" if fallback is not None else "sentry-sdk's own release"
        logger.warning(
            "release_from %r could not be read when the Sentry client started (%s); using %s",
            self.text, why, instead,
        )  # fmt: skip
