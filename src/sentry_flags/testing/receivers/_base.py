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
LOOPBACK = "127.0.0.1"


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

    Raises AssertionError (so pytest shows it as a failed assertion) when the
    deadline passes.
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
    NORMAL = "normal"
    ERROR = "error"  # HTTP 500 (or ``error_status``)
    RATE_LIMIT = "rate_limit"  # HTTP 429 with Retry-After
    GARBAGE = "garbage"  # bytes that are not an HTTP response, then close
    BAD_BODY = "bad_body"  # HTTP 200 whose body is not JSON
    HANG = "hang"  # no answer until released, stopped or hang_timeout
    REFUSE = "refuse"  # listening socket closed: connect() is refused


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    raw_body: bytes  # exactly as received (possibly compressed)
    body: bytes  # after undoing Content-Encoding
    json: Any  # decoded body, or None when it is not JSON
    mode: Mode  # how the receiver treated it
    status: Optional[int]  # HTTP status answered; None when no HTTP answer was given
    received_at: float = field(default_factory=time.time)
    # The request target exactly as on the request line (path and raw query string) and
    # every header line as sent (original case, duplicates kept): with ``raw_body`` that is
    # every byte the client sent, for tests that scan it all.
    target: str = ""
    raw_headers: tuple[tuple[str, str], ...] = ()

    @property
    def delivered(self) -> bool:
        """True when the SDK got a normal 2xx answer for this request."""
        return self.mode is Mode.NORMAL and self.status is not None and self.status < 300

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())

    def query_value(self, name: str) -> Optional[str]:
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
    status: int = 200
    body: Any = b""  # bytes/str are sent as-is, anything else is JSON-encoded
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, dict[str, str]]:
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
    """Undo Content-Encoding (gzip, deflate, br).  Raises ValueError when it can't."""
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
    """Threaded HTTP server on 127.0.0.1 that records requests.

    Subclasses override ``respond`` to answer like the real API.  The base
    class answers every request with ``200 {}``.
    """

    hang_timeout = 30.0  # upper bound for Mode.HANG, even if nobody releases it

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
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
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

        ``path_prefix`` limits the misbehaviour to matching paths (others are
        answered normally); it does not apply to REFUSE, which works at the
        socket level.  Leaving HANG releases the requests that are hanging.
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
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_prefix: str = "", method: Optional[str] = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.path.startswith(path_prefix) and (method is None or r.method == method)
        ]

    def delivered(self, path_prefix: str = "", method: Optional[str] = None) -> list[RecordedRequest]:
        return [r for r in self.requests_to(path_prefix, method) if r.delivered]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for_requests(
        self,
        count: int = 1,
        path_prefix: str = "",
        method: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[RecordedRequest]:
        """Wait until at least ``count`` matching requests arrived (in any mode)."""
        return wait_for(
            lambda: (found := self.requests_to(path_prefix, method)) and len(found) >= count and found,
            timeout=timeout,
            message=f"{count} request(s) to {path_prefix or '/'} on {type(self).__name__}",
        )

    # -- request handling ----------------------------------------------------

    def respond(self, request: RecordedRequest) -> Response:
        """Answer a request in NORMAL mode.  Subclasses emulate the real API."""
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
