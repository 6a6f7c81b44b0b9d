"""Streams that end with the token that opened them (re-exported by `tokenward.fastapi`).

An SSE response or a WebSocket is authenticated once, at open, by the `Authenticator`'s own
dependencies; after that nothing looks at the token again, so a stream opened a second before
the token expired (or was revoked) would otherwise live for as long as the connection does.
`TokenWatch` is the one clock for that: it knows the deadline from the verified `exp` (plus a
grace) and re-verifies the token every `recheck_every` seconds through the same
`Authenticator`, so a token the verifier would now refuse (a user taken off the allowlist, and a
`revoked` check once the verifier has one) ends the stream too.

- `ExpiringEventStream`: a Starlette `StreamingResponse` of `text/event-stream` that, when the
  watch fires, sends one `event: token-expired` (data: the reason, e.g. "expired") and ends.
- `expiring_websocket`: runs a WebSocket handler and, when the watch fires, cancels it and
  closes the socket with code 4401 (`WS_TOKEN_EXPIRED`), the reason as the close reason.

Both name the reason with the `InvalidToken.code` vocabulary ("expired", "revoked", ...) plus
"not_allowlisted", so a client can tell "refresh and reopen" from anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from starlette.responses import StreamingResponse
from starlette.websockets import WebSocket, WebSocketState

from ._bearer import NotAllowlisted
from ._native import _LogThrottle
from ._sse import ServerEvent
from .errors import InvalidToken

if TYPE_CHECKING:
    from .fastapi import Authenticator

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_RECHECK_EVERY",
    "TOKEN_EXPIRED_EVENT",
    "WS_TOKEN_EXPIRED",
    "ExpiringEventStream",
    "Proven",
    "Recheck",
    "TokenWatch",
    "expiring_websocket",
]

logger = logging.getLogger("tokenward.streams")

#: The SSE event type sent as a stream's last event when its token no longer holds.
TOKEN_EXPIRED_EVENT: Final = "token-expired"

#: The WebSocket close code for the same: in the application range (4000-4999), 4401 reading as
#: HTTP 401. Not 1008 (policy violation): that is what a refused handshake gets, and a client
#: cannot tell "refresh your token and reconnect" from "you are not allowed here" by it.
WS_TOKEN_EXPIRED: Final = 4401

#: Seconds past `exp` before a stream is ended: enough for an event in flight to go out and for
#: a client whose clock runs a little behind, small enough that an expired token buys little.
DEFAULT_GRACE: Final = 2.0

#: Seconds between re-verifications of the token of an open stream (a cached verify costs about a
#: microsecond); None turns them off, leaving the deadline alone.
DEFAULT_RECHECK_EVERY: Final = 30.0


_RECHECK_FAILED_LOG = _LogThrottle()


class Proven(Protocol):
    """What opened the stream: a `User` or an `Identity` (its verified claims and raw token)."""

    @property
    def claims(self) -> Mapping[str, Any]: ...

    @property
    def token(self) -> str: ...


#: A re-verification hook: the reason the stream must end now, or None while the token holds.
Recheck = Callable[[Proven], Awaitable[str | None]]


class TokenWatch:
    """When a stream opened with `proven` must end: at its `exp` plus `grace` seconds, or
    earlier when a re-verification (every `recheck_every` seconds) refuses the token.

    `recheck` replaces the default re-verification, which runs `authenticator.identify` (the
    verifier and the allowlist, as at open) and ends the stream on `InvalidToken` (its code)
    or a user no longer allowlisted. An IdP outage (`KeySetUnavailable`) does not end a stream:
    the token is not at fault, and the deadline still holds."""

    def __init__(
        self,
        proven: Proven,
        *,
        authenticator: Authenticator | None = None,
        grace: float = DEFAULT_GRACE,
        recheck_every: float | None = DEFAULT_RECHECK_EVERY,
        recheck: Recheck | None = None,
    ) -> None:
        if not math.isfinite(grace) or grace < 0:
            raise ValueError("grace must be a finite number of seconds, not negative")
        if recheck_every is not None and not (math.isfinite(recheck_every) and recheck_every > 0):
            raise ValueError("recheck_every must be a positive number of seconds, or None")
        if recheck is None and recheck_every is not None and authenticator is None:
            raise TypeError("re-verification needs the authenticator (or a recheck hook)")
        self.proven = proven
        self.grace = float(grace)
        self.recheck_every = recheck_every
        self._authenticator = authenticator
        self._recheck = recheck or self._reverify
        exp = proven.claims.get("exp")
        # The verifier has already refused a token without a numeric exp where policy asks for
        # one; where it does not, there is no deadline, only the rechecks.
        self.ends_at: float | None = None
        if isinstance(exp, (int, float)) and not isinstance(exp, bool):
            self.ends_at = float(exp) + self.grace

    async def _reverify(self, proven: Proven) -> str | None:
        assert self._authenticator is not None
        try:
            await self._authenticator.identify(f"Bearer {proven.token}")
        except InvalidToken as exc:
            return exc.code
        except NotAllowlisted:
            return "not_allowlisted"
        except Exception as exc:  # noqa: BLE001 - an outage is not the token's fault
            # Every open stream rechecks: one line per interval, not one per stream.
            suppressed = _RECHECK_FAILED_LOG.admit()
            if suppressed is not None:
                logger.warning(
                    "stream token re-verification failed (%s); keeping the stream%s",
                    type(exc).__name__,
                    _LogThrottle.suffix(suppressed),
                )
        return None

    async def ended(self) -> str:
        """Wait until the stream must end; the reason ("expired", or the recheck's)."""
        while True:
            # Wall time: `exp` is a wall-clock instant. Re-read after every sleep, so a sleep
            # that wakes early (or a clock step) never ends a stream before its deadline.
            now = time.time()
            left = math.inf if self.ends_at is None else self.ends_at - now
            if left <= 0:
                return "expired"
            step = left if self.recheck_every is None else min(left, self.recheck_every)
            await asyncio.sleep(step)
            if self.recheck_every is not None and (
                self.ends_at is None or time.time() < self.ends_at
            ):
                reason = await self._recheck(self.proven)
                if reason is not None:
                    return reason


def _log_end(kind: str, reason: str) -> None:
    # The reason only: the subject may be personal data and the token is a secret.
    logger.info("%s ended: token no longer valid (%s)", kind, reason)


def _consume(task: asyncio.Future[Any]) -> None:
    # Marks an outcome nobody will use as seen (asyncio logs an exception never retrieved).
    if not task.cancelled():
        task.exception()


async def _stop(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


class ExpiringEventStream(StreamingResponse):
    """An SSE response (`text/event-stream`) from `events` that ends when the token of
    `proven` (the route's `User` or `Identity`) expires or is refused on a re-verification:
    it then sends `event: token-expired` with the reason as data, and closes.

    `events` yields `ServerEvent`s or strings (a string is one `message` event's data). Give
    events an `id` and honour the request's `Last-Event-ID`, and tokenward's client helpers
    resume the stream after a refresh without losing an event. `grace`, `recheck_every` and
    `recheck` are `TokenWatch`'s. The response is not cached by proxies (`Cache-Control:
    no-store`) nor buffered by nginx (`X-Accel-Buffering: no`)."""

    def __init__(
        self,
        events: AsyncIterable[ServerEvent | str],
        proven: Proven,
        *,
        authenticator: Authenticator | None = None,
        grace: float = DEFAULT_GRACE,
        recheck_every: float | None = DEFAULT_RECHECK_EVERY,
        recheck: Recheck | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.watch = TokenWatch(
            proven,
            authenticator=authenticator,
            grace=grace,
            recheck_every=recheck_every,
            recheck=recheck,
        )
        self._events = events
        sent = {"Cache-Control": "no-store", "X-Accel-Buffering": "no", **(headers or {})}
        super().__init__(
            self._body(), status_code=status_code, headers=sent, media_type="text/event-stream"
        )

    async def _body(self) -> AsyncIterator[bytes]:
        source = aiter(self._events)
        watch = asyncio.ensure_future(self.watch.ended())
        pending: asyncio.Future[ServerEvent | str] | None = None
        try:
            while True:
                # The next event is awaited as a task, so the watch can fire while the source
                # is idle, without cancelling the source on every wake-up.
                pending = asyncio.ensure_future(anext(source))
                await asyncio.wait({pending, watch}, return_when=asyncio.FIRST_COMPLETED)
                if watch.done():
                    reason = watch.result()
                    _log_end("event stream", reason)
                    yield ServerEvent(data=reason, event=TOKEN_EXPIRED_EVENT).encode()
                    return
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    return
                finally:
                    pending = None
                yield (ServerEvent(data=item) if isinstance(item, str) else item).encode()
        finally:
            # No await before the source is dealt with: on a client's disconnect Starlette
            # cancels this body through an anyio scope, which cancels every await here again.
            watch.cancel()
            if pending is not None and not pending.done():
                # The source is waiting inside the step: cancelling the step raises there and
                # ends it, as closing it would (which cannot be done while it runs).
                pending.add_done_callback(_consume)
                pending.cancel()
            else:
                if pending is not None:
                    _consume(pending)
                close = getattr(source, "aclose", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        await close()


async def expiring_websocket(
    websocket: WebSocket,
    proven: Proven,
    handler: Callable[[WebSocket], Awaitable[None]],
    *,
    authenticator: Authenticator | None = None,
    grace: float = DEFAULT_GRACE,
    recheck_every: float | None = DEFAULT_RECHECK_EVERY,
    recheck: Recheck | None = None,
) -> str | None:
    """Run `handler(websocket)` until it returns or the token of `proven` (from the handshake's
    `Authorization` header, through the `Authenticator`'s dependencies) expires or is refused
    on a re-verification. Then the handler is cancelled and the socket closed with
    `WS_TOKEN_EXPIRED` (4401) and the reason ("expired", ...) as the close reason.

    Returns that reason, or None when the handler finished first (its exceptions propagate).
    `grace`, `recheck_every` and `recheck` are `TokenWatch`'s."""
    watch = TokenWatch(
        proven,
        authenticator=authenticator,
        grace=grace,
        recheck_every=recheck_every,
        recheck=recheck,
    )
    work = asyncio.ensure_future(handler(websocket))
    ending = asyncio.ensure_future(watch.ended())
    try:
        await asyncio.wait({work, ending}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            await _stop(ending)
            work.result()
            return None
        reason = ending.result()
        await _stop(work)
        _log_end("websocket", reason)
        if (
            websocket.application_state != WebSocketState.DISCONNECTED
            and websocket.client_state != WebSocketState.DISCONNECTED
        ):
            # Before `accept()`, this refuses the handshake (HTTP 403) instead.
            with contextlib.suppress(RuntimeError):
                await websocket.close(code=WS_TOKEN_EXPIRED, reason=reason)
        return reason
    finally:
        if not work.done():
            await _stop(work)
        if not ending.done():
            await _stop(ending)
