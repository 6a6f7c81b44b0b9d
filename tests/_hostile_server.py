"""A scriptable HTTP server on 127.0.0.1 for hostile-IdP tests: each path answers what the test
says (a status, headers and a body, a redirect, or an endless stream), and every request is
recorded with its headers and body, so a test can prove what reached which origin.

Only the standard library; one thread per connection, and every answer closes its connection.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str  # with the query string
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes | str | Any = b""  # bytes/str as given; anything else is sent as JSON
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Stream:
    """A 200 whose chunked body never ends: `piece` again and again, up to `limit` bytes, until
    the client hangs up. `HostileServer.streamed` counts what was written."""

    piece: bytes = b"[" + b"0," * 8191
    limit: int = 512 << 20
    content_length: int | None = None  # announced instead of chunked framing, when given


Handler = Callable[[Seen], Answer | Stream]


class HostileServer:
    def __init__(self) -> None:
        self.routes: dict[str, Answer | Stream | Handler] = {}
        self.seen: list[Seen] = []
        self.streamed = 0
        self._lock = threading.Lock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._dispatch()

            def do_POST(self) -> None:
                self._dispatch()

            def _dispatch(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                with server._lock:
                    server.seen.append(seen)
                route = server.routes.get(urlsplit(self.path).path, Answer(404, {"error": "nope"}))
                answer = route(seen) if callable(route) else route
                self.close_connection = True
                if isinstance(answer, Stream):
                    self._stream(answer)
                    return
                body = answer.encoded()
                self.send_response(answer.status)
                headers = {"Content-Type": "application/json"} | answer.headers
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, stream: Stream) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if stream.content_length is not None:
                    self.send_header("Content-Length", str(stream.content_length))
                else:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                frame = (
                    stream.piece
                    if stream.content_length is not None
                    else b"%x\r\n%s\r\n" % (len(stream.piece), stream.piece)
                )
                written = 0
                try:
                    while written < stream.limit:
                        self.wfile.write(frame)
                        written += len(frame)
                        with server._lock:
                            server.streamed += len(frame)
                except OSError:
                    pass  # the client hung up: what the test wants

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def requests_to(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if urlsplit(s.path).path == path]

    def start(self) -> HostileServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def hostile_server() -> Iterator[HostileServer]:
    server = HostileServer().start()
    try:
        yield server
    finally:
        server.close()


def redirect(location: str, status: int = 302) -> Answer:
    return Answer(status, b"", {"Location": location})
