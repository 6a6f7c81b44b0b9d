"""A small protected HTTP resource on 127.0.0.1 for the requests/httpx hook tests.

It verifies bearer tokens with `tokenward.Verifier` against a DevIdP and answers 200 with what it
saw, or 401. Tokens in `revoked` get a 401 even when valid; with `hold_401s=n`, the first n such
answers wait for each other at a barrier, so n requests are provably in flight with the same
token before any 401 comes back. `always_401` answers 401 to everything.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import tokenward as tw

#: How long a held 401 waits for the others before the test fails.
BARRIER_TIMEOUT = 10.0


@dataclass
class Seen:
    method: str
    path: str
    token: str | None
    body: bytes
    status: int


@dataclass
class Resource:
    verifier: tw.Verifier
    url: str = ""
    revoked: set[str] = field(default_factory=set)
    always_401: bool = False
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    barrier: threading.Barrier | None = None

    def hold_401s(self, count: int) -> None:
        self.barrier = threading.Barrier(count, timeout=BARRIER_TIMEOUT)

    def statuses(self) -> list[int]:
        with self.lock:
            return [s.status for s in self.seen]

    def answer(self, token: str | None) -> tuple[int, dict[str, Any]]:
        if self.always_401 or token is None:
            return 401, {"error": "invalid_token"}
        if token in self.revoked:
            if self.barrier is not None:
                try:
                    self.barrier.wait()
                except threading.BrokenBarrierError:
                    pass
            return 401, {"error": "invalid_token", "error_description": "revoked"}
        try:
            claims = self.verifier.verify(token)
        except tw.InvalidToken as exc:
            return 401, {"error": "invalid_token", "error_description": exc.code}
        return 200, {"sub": claims["sub"], "azp": claims["azp"]}


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        out = b""
        while True:
            size = int(handler.rfile.readline().strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                return out
            out += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _handler(resource: Resource) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            body = _read_body(self)
            header = self.headers.get("Authorization", "")
            token = header[7:] if header.startswith("Bearer ") else None
            status, document = resource.answer(token)
            if status == 200:
                document["body"] = body.decode("utf-8", "replace")
            with resource.lock:
                resource.seen.append(Seen(self.command, self.path, token, body, status))
            payload = json.dumps(document).encode()
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections of a 20-request burst (1 s SYN retries).
    request_queue_size = 128


@contextmanager
def protected_resource(verifier: tw.Verifier) -> Iterator[Resource]:
    resource = Resource(verifier)
    server = _Server(("127.0.0.1", 0), _handler(resource))
    resource.url = f"http://127.0.0.1:{server.server_address[1]}/data"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield resource
    finally:
        if resource.barrier is not None:
            resource.barrier.abort()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
