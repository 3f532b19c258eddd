"""
The harness every channel emulator is built on.

An emulator is a function ``httpx.Request -> httpx.Response`` (its `Emulator.handle`). The
harness runs it two ways, with the same behaviour:

* in-process, as ``httpx.Client(transport=httpx.MockTransport(emulator))`` (`Emulator.client`);
* on a real loopback HTTP port, in a thread (`Emulator.serve`), for tests where sockets matter.

It also injects faults from a seeded `Faults` plan: latency, error statuses, timeouts, connection
resets, truncated or non-JSON bodies, wrong content types. In-process, a timeout or reset raises
the httpx exception a real socket would cause; on the port, the server really stalls or drops the
connection.
"""

from __future__ import annotations

import contextlib
import enum
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from attrs import define, field


__all__ = ["Emulator", "Fault", "FaultKind", "Faults"]


class FaultKind(enum.Enum):
    """
    The faults an emulator can inject.

    .. versionadded:: 0.1.0
    """

    LATENCY = "latency"  #: answer normally after `Fault.delay` seconds
    STATUS = "status"  #: answer `Fault.status` with a small JSON error body
    TIMEOUT = "timeout"  #: never answer (in-process: ``httpx.ReadTimeout``)
    RESET = "reset"  #: drop the connection (in-process: ``httpx.RemoteProtocolError``)
    TRUNCATE = "truncate"  #: answer normally but cut the body in half
    NON_JSON = "non_json"  #: answer 200 with an HTML page
    WRONG_CONTENT_TYPE = "wrong_content_type"  #: the real body labelled ``text/plain``


@define
class Fault:
    """
    One fault rule: applies to requests whose path contains *match* (all when empty), with
    probability *rate*, at most *count* times (unlimited when ``None``).

    .. versionadded:: 0.1.0
    """

    kind: FaultKind
    rate: float = 1.0
    count: int | None = None
    match: str = ""
    status: int = 503
    delay: float = 0.0
    fired: int = 0


@define
class Faults:
    """
    A seeded, thread-safe fault plan.

    Example:
        >>> faults = Faults(seed=1)
        >>> faults.add(FaultKind.STATUS, status=503, count=2)
        >>> faults.add(FaultKind.RESET, rate=0.1, match="/graphql")

    .. versionadded:: 0.1.0
    """

    seed: int = 0
    rules: list[Fault] = field(factory=list)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(init=False, factory=threading.Lock)

    def __attrs_post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - deterministic test faults

    def add(self, kind: FaultKind, **kwargs: Any) -> Fault:
        """Add a rule (see `Fault` for the keyword arguments) and return it."""
        rule = Fault(kind, **kwargs)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self.rules.clear()

    def pick(self, path: str) -> Fault | None:
        """Return the first rule that fires for *path*, counting it."""
        with self._lock:
            for rule in self.rules:
                if rule.match and rule.match not in path:
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                rule.fired += 1
                return rule
        return None

    @property
    def fired(self) -> int:
        """How many faults fired in total."""
        with self._lock:
            return sum(r.fired for r in self.rules)


class _DroppedError(Exception):
    """Internal: the server side should drop the connection without answering."""


class _Server(ThreadingHTTPServer):
    """The loopback server: one thread per connection; quiet when a client goes away."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client died mid-request (a killed worker): nothing to report
        super().handle_error(request, client_address)


class Emulator:
    """
    Base class of the channel emulators: fault injection, request log, both front-ends.

    Subclasses implement `handle`. Everything else is shared.

    Args:
        faults: The fault plan (none by default).
        latency: Seconds added to every answer (real time: it is the network's).
        sleep: How latency and stalls are spent (``time.sleep`` by default).

    .. versionadded:: 0.1.0
    """

    base_url: str = "https://emulator.invalid"

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        latency: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.faults = faults or Faults()
        self.latency = latency
        self._sleep = sleep
        self._log_lock = threading.Lock()
        #: ``(method, path)`` of every request received, in order.
        self.requests: list[tuple[str, str]] = []

    # -- to implement ---------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as the channel would."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Apply latency and faults, log, then `handle` (the in-process front-end)."""
        return self._dispatch(request, in_process=True)

    def _dispatch(self, request: httpx.Request, *, in_process: bool) -> httpx.Response:
        request.read()
        with self._log_lock:
            self.requests.append((request.method, request.url.path))
        if self.latency > 0:
            self._sleep(self.latency)
        fault = self.faults.pick(request.url.path)
        if fault is None:
            return self.handle(request)
        kind = fault.kind
        if kind is FaultKind.LATENCY:
            self._sleep(fault.delay)
            return self.handle(request)
        if kind is FaultKind.STATUS:
            return httpx.Response(
                fault.status,
                json={"errors": [{"message": f"injected {fault.status}"}]},
                request=request,
            )
        if kind is FaultKind.TIMEOUT:
            if in_process:
                raise httpx.ReadTimeout("injected timeout", request=request)
            self._sleep(fault.delay or 5.0)
            raise _DroppedError
        if kind is FaultKind.RESET:
            if in_process:
                raise httpx.RemoteProtocolError("injected connection reset", request=request)
            raise _DroppedError
        if kind is FaultKind.NON_JSON:
            return httpx.Response(
                200,
                content=b"<html><body>502 Bad Gateway</body></html>",
                headers={"content-type": "text/html"},
                request=request,
            )
        response = self.handle(request)
        body = response.read()
        headers = dict(response.headers)
        headers.pop("content-length", None)
        if kind is FaultKind.TRUNCATE:
            body = body[: max(1, len(body) // 2)]
        else:  # WRONG_CONTENT_TYPE
            headers["content-type"] = "text/plain"
        return httpx.Response(response.status_code, content=body, headers=headers, request=request)

    def count(self, method: str | None = None, path_contains: str = "") -> int:
        """How many requests matched *method* and *path_contains*."""
        with self._log_lock:
            return sum(
                1
                for m, p in self.requests
                if (method is None or m == method) and path_contains in p
            )

    def client(self, **kwargs: Any) -> httpx.Client:
        """An `httpx.Client` wired to this emulator in-process."""
        kwargs.setdefault("base_url", self.base_url)
        return httpx.Client(transport=httpx.MockTransport(self), **kwargs)

    @contextlib.contextmanager
    def serve(self, host: str = "127.0.0.1") -> Iterator[str]:
        """
        Serve the emulator on a real loopback port for the duration of the block.

        Yields the base URL (``http://127.0.0.1:<port>``).
        """
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The headers and the body leave in two writes: without TCP_NODELAY the body waits
            # for the client's delayed ACK of the headers, about 40 ms per keep-alive request.
            disable_nagle_algorithm = True

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                url = f"http://{host}:{port}{self.path}"
                headers = [(k, v) for k, v in self.headers.items() if k.lower() != "host"]
                request = httpx.Request(self.command, url, headers=headers, content=body)
                try:
                    response = emulator._dispatch(request, in_process=False)
                except _DroppedError:
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                content = response.read()
                self.send_response(response.status_code)
                for k, v in response.headers.items():
                    if k.lower() not in {"content-length", "transfer-encoding", "connection"}:
                        self.send_header(k, v)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any  # noqa: N815

            def log_message(self, *_args: Any) -> None:
                return

        server = _Server((host, 0), Handler)
        port = int(server.server_address[1])
        thread = threading.Thread(target=server.serve_forever, name="emulator", daemon=True)
        thread.start()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
