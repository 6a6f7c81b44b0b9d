"""Reading an event stream that outlives a token (re-exported by `tokenward.requests` and
`tokenward.httpx`): `iter_events` for requests, `iter_events_httpx` and `aiter_events` for
httpx.

Each opens the stream with the `BearerAuth` hook (which already retries a 401 once with a fresh
token) and then, when the server ends the stream with `event: token-expired`
(`tokenward.fastapi.ExpiringEventStream`), drops that token from the `TokenClient`, takes a
fresh one and reopens with `Last-Event-ID`, so the caller sees one stream of events. A failed
open (a 401 that outlived the hook's retry, a 5xx, 408, 429, no connection) or a connection
that broke is retried with backoff, up to `attempts` in a row without an event delivered; then
`StreamError`. A refusal no retry can mend (another 4xx, a body that is not an event stream)
raises at once. A stream the server ends on purpose (no `token-expired`) ends the iteration.

The three drivers differ only in their I/O; what to do at each step is `_Reopening`'s.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

from ._sse import EventParser, ServerEvent
from .errors import StreamError

if TYPE_CHECKING:
    import httpx
    import requests

__all__ = ["DEFAULT_ATTEMPTS", "ServerEvent", "aiter_events", "iter_events", "iter_events_httpx"]

logger = logging.getLogger("tokenward.streams")

#: Opens in a row, without an event delivered, before `StreamError`.
DEFAULT_ATTEMPTS = 5

#: The server's last event of a stream whose token no longer holds (`tokenward._streams`).
_TOKEN_EXPIRED = "token-expired"

#: Statuses at open worth another try: the token may be refreshed (401) or the server may recover.
_RETRYABLE = frozenset({401, 408, 425, 429, 500, 502, 503, 504})


class _TokenSource(Protocol):
    def invalidate(self, token: str | None = None) -> bool: ...


class _Hook(Protocol):
    """A `BearerAuth` (requests' or httpx's): its `client` is the `TokenClient`."""

    @property
    def client(self) -> _TokenSource: ...


def _where(url: str) -> str:
    # Without the query string: it may carry credentials of its own.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _sent_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class _Reopening:
    """One stream's state across its opens: the last event ID, the failures in a row, and what
    to do after each open, the same for every driver."""

    def __init__(
        self,
        url: str,
        auth: object,
        last_event_id: str,
        attempts: int,
        backoff: float,
        max_backoff: float,
        headers: Mapping[str, str] | None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if backoff < 0 or max_backoff < 0:
            raise ValueError("backoff and max_backoff must not be negative")
        if not hasattr(getattr(auth, "client", None), "invalidate"):
            # The reopening must drop the token the server ended the stream for.
            raise TypeError("auth must be tokenward's BearerAuth over a TokenClient")
        self.where = _where(url)
        self.auth = cast(_Hook, auth)
        self.last_event_id = last_event_id
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.extra = dict(headers or {})
        self.failures = 0
        self.status: int | None = None
        self.parser = EventParser(last_event_id)
        self.delivered = False

    def headers(self) -> dict[str, str]:
        sent = {**self.extra, "Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last_event_id:
            sent["Last-Event-ID"] = self.last_event_id
        return sent

    def opened(self, status: int, content_type: str | None, sent: str | None) -> bool:
        """Whether the open succeeded; False for a failure worth another try (the caller then
        waits `failed()`); raises `StreamError` for one that is not."""
        self.status = status
        if status in _RETRYABLE:
            if status == 401:
                # The hook's own retry got a 401 as well: that token is no good either.
                self.auth.client.invalidate(sent)
            return False
        if not 200 <= status < 300:
            raise self._error(f"the event stream at {self.where} was refused with {status}")
        if (content_type or "").partition(";")[0].strip().lower() != "text/event-stream":
            raise self._error(f"{self.where} did not answer with an event stream")
        # The reconnection time the server set holds for the stream, not one open.
        reconnection_time = self.parser.reconnection_time
        self.parser = EventParser(self.last_event_id)
        self.parser.reconnection_time = reconnection_time
        self.delivered = False
        return True

    def take(self, event: ServerEvent, sent: str | None) -> bool:
        """Whether `event` goes to the caller; False for `token-expired`, which ends this open
        (the token it was opened with is dropped from the client's cache first)."""
        if event.event == _TOKEN_EXPIRED:
            self.auth.client.invalidate(sent)
            logger.info(
                "event stream %s ended by the server (%s); reopening", self.where, event.data
            )
            return False
        self.last_event_id = event.id
        self.delivered = True
        self.failures = 0
        return True

    def expired(self) -> float:
        """The wait before reopening a stream the server ended for its token: none after a
        stream that delivered events, else that of a failed open (a server that ends every
        stream at once must not be reopened in a tight loop)."""
        return 0.0 if self.delivered else self.failed("ended for its token before any event")

    def failed(self, what: str) -> float:
        """Counts a failed open or a broken stream; the seconds to wait before the next open,
        or `StreamError` once `attempts` failed in a row."""
        self.failures += 1
        if self.failures >= self.attempts:
            raise self._error(
                f"the event stream at {self.where} failed {self.failures} times in a row "
                f"(last: {what})"
            )
        base = self.backoff
        if self.parser.reconnection_time is not None:
            base = max(base, self.parser.reconnection_time / 1000)
        delay = min(self.max_backoff, base * 2.0 ** (self.failures - 1))
        # Half fixed, half random: streams broken together do not come back together.
        delay = delay / 2 + random.uniform(0, delay / 2)
        logger.info("event stream %s: %s; reopening in %.2f s", self.where, what, delay)
        return delay

    def _error(self, message: str) -> StreamError:
        return StreamError(
            message,
            attempts=max(self.failures, 1),
            status=self.status,
            last_event_id=self.last_event_id,
        )


def iter_events(
    session: requests.Session,
    url: str,
    *,
    auth: Any = None,
    last_event_id: str = "",
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    headers: Mapping[str, str] | None = None,
    timeout: float | tuple[float, float] | None = (10.0, 60.0),
    **kwargs: Any,
) -> Iterator[ServerEvent]:
    """The events of the stream at `url`, across token refreshes (see the module).

    `auth`: tokenward.requests.BearerAuth (default: the session's). `last_event_id` resumes a
    stream. `timeout` is requests' (connect, read): a read that waits longer than the server's
    longest quiet spell counts as a broken stream. Other keywords go to `session.get`."""
    import requests

    hook = auth if auth is not None else session.auth
    plan = _Reopening(url, hook, last_event_id, attempts, backoff, max_backoff, headers)

    def open_stream(sent: dict[str, str]) -> Any:
        return session.get(url, headers=sent, auth=hook, stream=True, timeout=timeout, **kwargs)

    return _drive(
        plan, open_stream, lambda r: r.iter_content(chunk_size=None), requests.RequestException
    )


def iter_events_httpx(
    client: httpx.Client,
    url: str,
    *,
    auth: Any = None,
    last_event_id: str = "",
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Iterator[ServerEvent]:
    """`iter_events` for an `httpx.Client` (`tokenward.httpx.iter_events`). `auth`:
    tokenward.httpx.BearerAuth (default: the client's). The client's read timeout should be
    longer than the server's longest quiet spell. Other keywords go to `client.stream`."""
    import httpx

    hook = auth if auth is not None else client.auth
    plan = _Reopening(url, hook, last_event_id, attempts, backoff, max_backoff, headers)

    def open_stream(sent: dict[str, str]) -> Any:
        return client.stream("GET", url, headers=sent, auth=hook, **kwargs)

    return _drive(plan, open_stream, lambda r: r.iter_bytes(), httpx.TransportError)


def _opening(plan: _Reopening, response: Any) -> tuple[str | None, float | None]:
    """The token an opened stream was sent with, and the wait before the next open when the
    open failed (None: it succeeded). requests' and httpx's responses both fit."""
    sent = _sent_token(response.request.headers)
    if plan.opened(response.status_code, response.headers.get("Content-Type"), sent):
        return sent, None
    return sent, plan.failed(f"status {response.status_code}")


def _drive(
    plan: _Reopening,
    open_stream: Callable[[dict[str, str]], Any],
    chunks: Callable[[Any], Iterable[bytes]],
    transport_error: type[Exception],
) -> Iterator[ServerEvent]:
    """The blocking drivers' loop: open (a context manager giving a response), read events
    until the server ends the stream, and reopen after `plan`'s wait."""
    while True:
        try:
            with open_stream(plan.headers()) as response:
                sent, delay = _opening(plan, response)
                if delay is None:
                    delay = yield from _read(plan, chunks(response), sent)
                    if delay is None:
                        return
        except transport_error as exc:
            delay = plan.failed(type(exc).__name__)
        time.sleep(delay)


def _read(
    plan: _Reopening, chunks: Iterable[bytes], sent: str | None
) -> Generator[ServerEvent, None, float | None]:
    """The events of one open; the wait before reopening when the server ended it for its
    token, None when it ended the stream for good."""
    for chunk in chunks:
        for event in plan.parser.feed(chunk):
            if not plan.take(event, sent):
                return plan.expired()
            yield event
    return None


async def aiter_events(
    client: httpx.AsyncClient,
    url: str,
    *,
    auth: Any = None,
    last_event_id: str = "",
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> AsyncIterator[ServerEvent]:
    """`iter_events_httpx` for an `httpx.AsyncClient`; waits without blocking the loop."""
    import httpx

    hook = auth if auth is not None else client.auth
    plan = _Reopening(url, hook, last_event_id, attempts, backoff, max_backoff, headers)
    while True:
        try:
            async with client.stream(
                "GET", url, headers=plan.headers(), auth=hook, **kwargs
            ) as response:
                sent, delay = _opening(plan, response)
                if delay is None:
                    async for chunk in response.aiter_bytes():
                        for event in plan.parser.feed(chunk):
                            if not plan.take(event, sent):
                                delay = plan.expired()
                                break
                            yield event
                        if delay is not None:
                            break
                    if delay is None:
                        return
        except httpx.TransportError as exc:
            delay = plan.failed(type(exc).__name__)
        await asyncio.sleep(delay)
