"""HTTP plumbing of the DevIdP: a threaded HTTP/1.1 server with keep-alive, that hands each
request to an application object and writes back its `Response` (or drops the connection)."""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

logger = logging.getLogger("tokenward.testing")

#: How long an idle keep-alive connection is kept open.
IDLE_TIMEOUT_SECONDS = 60.0
#: Request bodies larger than this are refused (413).
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # header names lower-cased; a repeated header keeps the first value
    body: bytes = field(repr=False)
    peer: str


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = field(repr=False)
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, document: Any, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(document, separators=(",", ":")).encode()
        return cls(status, body, "application/json", dict(headers or {}))


class App(Protocol):
    def handle(self, request: Request) -> Response | None:
        """The response to send, or None to close the connection without answering."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_SECONDS
    disable_nagle_algorithm = True  # small answers must not wait for the peer's delayed ACK
    server: DevServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes | None:
        """The request body, or None after an error answer (the connection then closes)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(411, "Length Required")  # send_error closes the connection
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, "Bad Content-Length")
            return None
        if length > MAX_BODY_BYTES:
            self.send_error(413, "Request Entity Too Large")
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            return
        url = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), value)
        request = Request(
            method=self.command,
            path=url.path,
            query=url.query,
            headers=headers,
            body=body,
            peer=str(self.client_address[0]),
        )
        try:
            response = self.server.app.handle(request)
        except Exception:
            logger.exception("DevIdP: error handling %s %s", self.command, url.path)
            response = Response.json(500, {"error": "server_error"})
        if response is None:
            logger.debug("DevIdP: %s %s -> connection dropped", self.command, url.path)
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("DevIdP %s: " + format, self.address_string(), *args)


class DevServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its open connections, so `close()` can cut idle keep-alive
    connections (their handler threads would otherwise keep serving a closed IdP)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's default backlog of 5 drops bursts of connects

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._closing = False
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; a client that hung up is routine here.
        logger.debug(
            "DevIdP: connection from %s ended with an error",
            client_address,
            exc_info=sys.exc_info(),  # called from socketserver's except block
        )

    def track(self, conn: socket.socket) -> None:
        with self._conns_lock:
            if self._closing:
                _cut(conn)
                return
            self._conns.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def cut_connections(self) -> None:
        """Shut down every open connection (wakes handler threads blocked on a read)."""
        with self._conns_lock:
            self._closing = True
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:
            _cut(conn)


def _cut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
