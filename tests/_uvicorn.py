"""Run an ASGI app with uvicorn on 127.0.0.1 (a free port) in a thread, for real-HTTP tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

#: How long a server may take to start or stop before the test fails.
DEADLINE_SECONDS = 15.0


class _Server(uvicorn.Server):
    """uvicorn's server, with an Event set once startup has finished (or failed)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_done = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.startup_done.set()


@contextmanager
def serve(app: Any, **config: Any) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 and yield its base URL (`http://127.0.0.1:<port>`).

    The socket is bound before the server starts, so the port is known and already accepting
    connections (the kernel queues them) by the time the URL is handed out; the context waits
    for uvicorn's startup (lifespan included) to finish before yielding."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config.setdefault("log_level", "warning")
    config.setdefault("access_log", False)
    config.setdefault("lifespan", "on")
    server = _Server(uvicorn.Config(app, **config))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        # Bounded wait for readiness (an Event, re-checked so a crashed thread fails fast).
        while not server.startup_done.wait(timeout=0.05):
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start in time")
        if not server.started:
            raise RuntimeError("uvicorn failed to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=DEADLINE_SECONDS)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("uvicorn did not stop in time")
