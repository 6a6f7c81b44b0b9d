"""A FastAPI app with token-bound streams, for tests/test_streams.py.

`/events` numbers its events (1, 2, ...; `total` of them, one every `interval` seconds) and
starts after the request's `Last-Event-ID`, so a client that resumes can be checked for lost or
repeated events. `/ws` echoes text until the token ends it. `/refuse-first` answers 401 to its
first `refusals` opens (with any token), then serves `/events`'s stream. `/failing` always
answers 503. `Recorder` keeps what the server saw: the opens, the tokens, and how streams ended.
"""

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import PlainTextResponse
from tokenward.fastapi import (
    Authenticator,
    ExpiringEventStream,
    Proven,
    ServerEvent,
    User,
    expiring_websocket,
)


@dataclass
class Recorder:
    total: int = 40
    interval: float = 0.25
    refusals: int = 0
    grace: float = 1.0
    recheck_every: float | None = 1.0
    #: (Last-Event-ID or "", token) per open of a stream
    opens: list[tuple[str, str]] = field(default_factory=list)
    #: every token the server authenticated, refused ones included
    seen: list[str] = field(default_factory=list)
    #: tokens the revocation hook refuses (with `revocable`, instead of re-verifying)
    revoked: set[str] = field(default_factory=set)
    revocable: bool = False
    #: set when an event source has been closed (its `finally` ran), with the count
    sources_closed: int = 0
    source_closed: threading.Event = field(default_factory=threading.Event)
    failing_hits: int = 0
    refused: int = 0
    ws_ends: list[tuple[str | None, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def revoked_hook(self, proven: Proven) -> str | None:
        with self.lock:
            return "revoked" if proven.token in self.revoked else None


def make_app(auth: Authenticator, rec: Recorder) -> FastAPI:
    app = FastAPI()

    def stream(request: Request, user: User) -> ExpiringEventStream:
        last = request.headers.get("last-event-id", "")
        with rec.lock:
            rec.opens.append((last, user.token))
            rec.seen.append(user.token)
        start = int(last or 0)
        hook = rec.revoked_hook if rec.revocable else None

        async def numbered() -> AsyncIterator[ServerEvent]:
            try:
                for n in range(start + 1, rec.total + 1):
                    await asyncio.sleep(rec.interval)
                    yield ServerEvent(data=f"event {n}", id=str(n))
            finally:
                with rec.lock:
                    rec.sources_closed += 1
                rec.source_closed.set()

        return ExpiringEventStream(
            numbered(),
            user,
            authenticator=auth,
            grace=rec.grace,
            recheck_every=rec.recheck_every,
            recheck=hook,
        )

    @app.get("/events")
    async def events(
        request: Request, user: Annotated[User, Depends(auth.user)]
    ) -> ExpiringEventStream:
        return stream(request, user)

    @app.get("/refuse-first")
    async def refuse_first(
        request: Request, user: Annotated[User, Depends(auth.user)]
    ) -> ExpiringEventStream:
        with rec.lock:
            rec.seen.append(user.token)
            refuse = rec.refused < rec.refusals
            rec.refused += refuse
        if refuse:
            raise HTTPException(401, "refused", headers={"WWW-Authenticate": "Bearer"})
        return stream(request, user)

    @app.get("/failing")
    async def failing() -> PlainTextResponse:
        with rec.lock:
            rec.failing_hits += 1
        return PlainTextResponse("down", status_code=503)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, user: Annotated[User, Depends(auth.user)]) -> None:
        async def echo(socket: WebSocket) -> None:
            await socket.accept()
            while True:
                await socket.send_text(await socket.receive_text())

        reason = await expiring_websocket(
            websocket,
            user,
            echo,
            authenticator=auth,
            grace=rec.grace,
            recheck_every=rec.recheck_every,
        )
        with rec.lock:
            rec.ws_ends.append((reason, time.time()))

    return app
