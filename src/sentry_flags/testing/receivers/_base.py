"""What every loopback receiver shares: the HTTP server, fault modes, recording, waiting.

Everything binds to 127.0.0.1 on an ephemeral port; nothing here talks to the internet.
"""

from __future__ import annotations

import enum
import gzip
import json
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Literal, Optional, TypeVar, Union
from urllib.parse import parse_qs, urlsplit

try:  # sentry-sdk prefers brotli when the module is installed
    import brotli  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None

__all__ = [
    "DEFAULT_TIMEOUT",
    "LOOPBACK",
    "BaseReceiver",
    "Mode",
    "RecordedRequest",
    "Response",
    "assert_never",
    "closed_port_url",
    "decode_body",
    "join_threads",
    "wait_for",
]

T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0
"""Seconds the ``wait_for*`` helpers wait unless told otherwise."""
LOOPBACK = "127.0.0.1"
"""The only address the receivers listen on."""


# --------------------------------------------------------------------------
# Waiting helpers: every wait is bounded so a broken SDK fails a test instead
# of hanging the suite.


def wait_for(
    predicate: Callable[[], Union[T, Literal[False], None]],
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.01,
    message: str = "",
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Use it instead of sleeping: ``wait_for(lambda: len(receiver.events) >= 2)``.

    Args:
        predicate: Called every ``interval`` seconds, on this thread.
        timeout: Seconds before giving up. Default `DEFAULT_TIMEOUT` (5).
        interval: Seconds between calls. Default ``0.01``.
        message: What was waited for, for the assertion message. Default: the predicate's
            repr.

    Returns:
        The first truthy value ``predicate`` returned.

    Raises:
        AssertionError: The deadline passed (pytest shows it as a failed assertion).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"not satisfied within {timeout}s: {message or predicate!r}")
        time.sleep(interval)


def assert_never(
    predicate: Callable[[], Any],
    duration: float = 0.3,
    interval: float = 0.01,
    message: str = "",
) -> None:
    """Fail if ``predicate`` becomes truthy at any point during ``duration`` seconds.

    Negative assertions ("nothing was sent") can only ever be checked for a
    while; keep ``duration`` comfortably above the SDK's flush interval.

    Args:
        predicate: Called every ``interval`` seconds, on this thread.
        duration: Seconds to keep checking. Default ``0.3``.
        interval: Seconds between calls. Default ``0.01``.
        message: For the assertion message. Default: what the predicate returned.

    Raises:
        AssertionError: ``predicate`` returned something truthy.
    """
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            raise AssertionError(f"unexpectedly satisfied: {message or result!r}")
        time.sleep(interval)


def join_threads(name_prefix: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Join every live thread whose name starts with ``name_prefix``, bounded overall.

    Returns False if some are still running.  For SDK threads that expose no
    handle of their own (e.g. Split's ``SDKInitializer`` and ``pool_worker_N``).
    """
    deadline = time.monotonic() + timeout

    def matching() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith(name_prefix)]

    for thread in matching():
        thread.join(max(0.0, deadline - time.monotonic()))
    return not matching()


def closed_port_url() -> str:
    """Base URL of a loopback port with nothing listening (connections are refused).

    The port is free when this returns; another process could grab it later,
    which is unlikely enough for tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    return f"http://{LOOPBACK}:{port}"


# --------------------------------------------------------------------------
# Generic receiver


class Mode(str, enum.Enum):
    """How a receiver answers, set with `BaseReceiver.set_mode` (a member or its value)."""

    NORMAL = "normal"
    """Answer like the real API."""
    ERROR = "error"
    """HTTP 500 (or the ``error_status`` given to `BaseReceiver.set_mode`)."""
    RATE_LIMIT = "rate_limit"
    """HTTP 429 with ``Retry-After``."""
    GARBAGE = "garbage"
    """Bytes that are not an HTTP response, then close."""
    BAD_BODY = "bad_body"
    """HTTP 200 whose body is not JSON."""
    HANG = "hang"
    """No answer until `BaseReceiver.release`, `BaseReceiver.stop` or ``hang_timeout``."""
    REFUSE = "refuse"
    """The listening socket is closed: connections are refused."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request a receiver saw, in any mode.

    Attributes:
        method: The HTTP method.
        path: The path, without the query string.
        query: The query string, parsed (blank values kept).
        headers: The headers, names lower-cased (the last of duplicates).
        raw_body: The body exactly as received (possibly compressed).
        body: The body after undoing ``Content-Encoding``.
        json: The body decoded as JSON, or `None` when it is not JSON.
        mode: How the receiver treated it.
        status: The HTTP status answered; `None` when no HTTP answer was given.
        received_at: When it arrived (``time.time()``).
        target: The request target exactly as on the request line (path and raw query).
        raw_headers: Every header line as sent (original case, duplicates kept): with
            ``target`` and ``raw_body``, every byte the client sent.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw_body: bytes
    body: bytes
    json: Any
    mode: Mode
    status: Optional[int]
    received_at: float = field(default_factory=time.time)
    target: str = ""
    raw_headers: tuple[tuple[str, str], ...] = ()

    @property
    def delivered(self) -> bool:
        """True when the SDK got a normal 2xx answer for this request."""
        return self.mode is Mode.NORMAL and self.status is not None and self.status < 300

    def header(self, name: str) -> Optional[str]:
        """The value of header ``name`` (any case), or `None`."""
        return self.headers.get(name.lower())

    def query_value(self, name: str) -> Optional[str]:
        """The first value of query parameter ``name``, or `None`."""
        values = self.query.get(name)
        return values[0] if values else None

    def wire_bytes(self) -> bytes:
        """Everything the client sent: method, target, header lines, raw and decoded body."""
        head = "\r\n".join(
            [f"{self.method} {self.target or self.path}", *(f"{k}: {v}" for k, v in self.raw_headers)]
        )
        return b"\r\n".join([head.encode("utf-8", "surrogateescape"), self.raw_body, self.body])


@dataclass
class Response:
    """What `BaseReceiver.respond` answers.

    Attributes:
        status: The HTTP status. Default ``200``.
        body: `bytes` and `str` are sent as they are; anything else as JSON (with
            ``Content-Type: application/json``). Default: empty.
        headers: Extra response headers. Default: none.
    """

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, dict[str, str]]:
        """The body as bytes and the headers to send with it."""
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            data = self.body
        elif isinstance(self.body, str):
            data = self.body.encode()
        else:
            data = json.dumps(self.body).encode()
            headers.setdefault("Content-Type", "application/json")
        return data, headers


def decode_body(raw: bytes, content_encoding: Optional[str]) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate, br; none or ``identity``: as is).

    Raises:
        ValueError: An unsupported encoding, or a body that does not decode.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    try:
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(raw)
        if encoding == "deflate":
            return zlib.decompress(raw)
        if encoding == "br":
            if brotli is None:
                raise ValueError("brotli body received but the brotli module is not installed")
            return bytes(brotli.decompress(raw))
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"cannot decode {encoding} body: {exc}") from exc
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def parse_json(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


class _Server(ThreadingHTTPServer):
    # Handler threads must never keep the interpreter alive, and server_close()
    # must not wait on a handler that is deliberately hanging.
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True  # lets refuse/accept re-bind the same port at once


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0 closes the connection after each answer, so no handler thread
    # lingers on an idle keep-alive connection after the test is over.
    protocol_version = "HTTP/1.0"
    timeout = 10  # a client that connects and sends nothing cannot pin a thread
    receiver: BaseReceiver  # set on the per-receiver subclass

    def _handle(self) -> None:
        self.receiver._dispatch(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output readable


class BaseReceiver:
    """A threaded HTTP server on 127.0.0.1 that records every request.

    It listens on an ephemeral port from construction until `stop`; use it as a context
    manager to stop it. Subclasses override `respond` to answer like the real API; the
    base class answers every request with ``200 {}``. Conventions shared by every receiver:
    addresses (`url`, ``dsn``, ``host``, ``config_kwargs``...) and what arrived
    (`requests`, ``events``, ``messages``...) are properties, each read a fresh snapshot;
    methods are for what takes arguments or changes state (``wait_for_*``, `set_mode`,
    `clear`, `stop`).
    """

    hang_timeout = 30.0
    """Seconds a request waits in `Mode.HANG` when nobody releases it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._mode = Mode.NORMAL
        self._mode_path_prefix: Optional[str] = None
        self._retry_after = "1"
        self._error_status = 500
        self._release = threading.Event()
        self._stopped = False
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self.port = 0
        self._listen()

    # -- lifecycle ---------------------------------------------------------

    def _listen(self) -> None:
        handler = type(f"{type(self).__name__}Handler", (_Handler,), {"receiver": self})
        server = _Server((LOOPBACK, self.port), handler)
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # short, so stop() returns quickly
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def _close_listener(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=2)

    def stop(self) -> None:
        """Release hung requests and close the listening socket.  Idempotent."""
        self._stopped = True
        self._release.set()
        self._close_listener()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return f"http://{LOOPBACK}:{self.port}"

    # -- behaviour switches ------------------------------------------------

    def set_mode(
        self,
        mode: Mode | str,
        *,
        path_prefix: Optional[str] = None,
        retry_after: float | str = 1,
        error_status: int = 500,
    ) -> None:
        """Change how requests are answered from now on.

        Leaving `Mode.HANG` releases the requests that are hanging.

        Args:
            mode: A `Mode` or its value (``"error"``, ``"hang"``...).
            path_prefix: Misbehave only for paths starting with this (others are answered
                normally). Default `None`: every path. Not for `Mode.REFUSE`, which works at
                the socket level.
            retry_after: The ``Retry-After`` header of `Mode.RATE_LIMIT`. Default ``1``.
            error_status: The status of `Mode.ERROR`. Default ``500``.

        Raises:
            RuntimeError: The receiver is stopped.
        """
        mode = Mode(mode)
        if self._stopped:
            raise RuntimeError("receiver is stopped")
        with self._lock:
            self._mode = mode
            self._mode_path_prefix = path_prefix
            self._retry_after = str(retry_after)
            self._error_status = error_status
        if mode is Mode.HANG:
            self._release.clear()
        else:
            self._release.set()
        if mode is Mode.REFUSE and self._server is not None:
            self._close_listener()
        elif mode is not Mode.REFUSE and self._server is None:
            self._listen()

    def release(self) -> None:
        """Let hanging requests go (they are closed without an answer)."""
        self._release.set()

    def _mode_for(self, path: str) -> Mode:
        with self._lock:
            if self._mode_path_prefix is None or path.startswith(self._mode_path_prefix):
                return self._mode
            return Mode.NORMAL

    # -- recording ---------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request seen so far, in any mode, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_prefix: str = "", method: Optional[str] = None) -> list[RecordedRequest]:
        """The requests whose path starts with ``path_prefix`` (and of ``method``, if given)."""
        return [
            r
            for r in self.requests
            if r.path.startswith(path_prefix) and (method is None or r.method == method)
        ]

    def delivered(self, path_prefix: str = "", method: Optional[str] = None) -> list[RecordedRequest]:
        """Like `requests_to`, only the requests answered normally with a 2xx."""
        return [r for r in self.requests_to(path_prefix, method) if r.delivered]

    def clear(self) -> None:
        """Forget every request recorded so far (the parsed views start empty again)."""
        with self._lock:
            self._requests.clear()

    def wait_for_requests(
        self,
        count: int = 1,
        path_prefix: str = "",
        method: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[RecordedRequest]:
        """Wait until at least ``count`` matching requests arrived (in any mode).

        Returns:
            Every matching request so far (at least ``count``).

        Raises:
            AssertionError: Fewer arrived within ``timeout`` seconds.
        """
        return wait_for(
            lambda: (found := self.requests_to(path_prefix, method)) and len(found) >= count and found,
            timeout=timeout,
            message=f"{count} request(s) to {path_prefix or '/'} on {type(self).__name__}",
        )

    # -- request handling ----------------------------------------------------

    def respond(self, request: RecordedRequest) -> Response:
        """Answer a request in `Mode.NORMAL`. Subclasses emulate the real API."""
        return Response(200, {})

    def _dispatch(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        path = split.path
        raw = _read_body(handler)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        mode = self._mode_for(path)
        try:
            body = decode_body(raw, headers.get("content-encoding"))
            decode_error = False
        except ValueError:
            body, decode_error = raw, True

        draft = RecordedRequest(
            method=handler.command,
            path=path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            raw_body=raw,
            body=body,
            json=None if decode_error else parse_json(body),
            mode=mode,
            status=None,
            target=handler.path,
            raw_headers=tuple(handler.headers.items()),
        )

        response: Optional[Response] = None
        if mode is Mode.NORMAL:
            response = Response(400, {"error": "undecodable body"}) if decode_error else self.respond(draft)
        elif mode is Mode.ERROR:
            response = Response(self._error_status, {"error": "injected failure"})
        elif mode is Mode.RATE_LIMIT:
            response = Response(429, {"error": "rate limited"}, {"Retry-After": self._retry_after})
        elif mode is Mode.BAD_BODY:
            response = Response(200, b"\x00this is {not json", {"Content-Type": "application/json"})

        recorded = replace(draft, status=response.status if response else None)
        with self._lock:
            self._requests.append(recorded)

        try:
            if response is not None:
                data, extra_headers = response.encode()
                handler.send_response(response.status)
                for name, value in extra_headers.items():
                    handler.send_header(name, value)
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                if handler.command != "HEAD":
                    handler.wfile.write(data)
            elif mode is Mode.GARBAGE:
                handler.wfile.write(b"\x16\x03\x01 definitely not HTTP \xff\xfe\r\n\r\n")
            elif mode is Mode.HANG:
                self._release.wait(self.hang_timeout)
            handler.wfile.flush()
        except OSError:
            pass  # the client gave up (timeout) or went away; that's its business
        handler.close_connection = True


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # Trailers, if any, end with an empty line.
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()  # CRLF after each chunk
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def flatten(batches: Iterable[Any]) -> list[Any]:
    return [item for batch in batches if isinstance(batch, list) for item in batch]
