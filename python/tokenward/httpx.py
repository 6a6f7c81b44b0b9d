"""`BearerAuth` for httpx: `httpx.Client(auth=BearerAuth(client))` or
`httpx.AsyncClient(auth=BearerAuth(client))`.

Adds `Authorization: Bearer <token>`. On a 401 it invalidates that token and sends the request
once more with a fresh one, when the body is in memory; a streamed body (a generator, a file)
gets the 401 back as is. It never retries twice. The async flow awaits the token without
blocking the event loop.

Redirects: httpx drops `Authorization` when a redirect leaves the origin (except an upgrade
from http to https on the same host), and this flow never puts it back. A 401 from another
origin that a redirect led to is returned as is: that server never saw our token, so it is
neither dropped from the cache nor sent there.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Generator
from typing import Protocol

import httpx

from ._stream_client import ServerEvent, aiter_events
from ._stream_client import iter_events_httpx as iter_events
from .errors import StreamError

logger = logging.getLogger("tokenward.httpx")

__all__ = ["BearerAuth", "ServerEvent", "StreamError", "aiter_events", "iter_events"]


class TokenSource(Protocol):
    def get_token(self) -> str: ...

    async def get_token_async(self) -> str: ...

    def invalidate(self, token: str | None = None) -> bool: ...


def _replayable(request: httpx.Request) -> bool:
    try:
        request.content  # noqa: B018 - raises for a body that has not been read into memory
    except httpx.RequestNotRead:
        return False
    return True


def _where(request: httpx.Request) -> str:
    # Without the query string: it may carry credentials of its own.
    url = request.url
    return f"{request.method} {url.scheme}://{url.netloc.decode('ascii')}{url.path}"


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    # httpx's own rule for keeping Authorization on a redirect, from its `_same_origin`.
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


class BearerAuth(httpx.Auth):
    """Bearer tokens from a `TokenClient`, with one retry after a 401."""

    # Reading a streamed upload into memory to make it replayable would defeat streaming; only
    # bodies already in memory are retried.
    requires_request_body = False
    # httpx reads (and closes) a response the flow moves past.
    requires_response_body = False

    def __init__(self, client: TokenSource) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"BearerAuth({self.client!r})"

    def _should_retry(self, request: httpx.Request, response: httpx.Response) -> bool:
        if response.status_code != 401:
            return False
        if not _same_origin(request.url, response.url):
            logger.info(
                "401 from %s, where %s redirected; not retrying",
                _where(response.request),
                _where(request),
            )
            return False
        if not _replayable(request):
            logger.info("401 from %s; the body cannot be sent again, not retrying", _where(request))
            return False
        logger.info("401 from %s; retrying once with a fresh token", _where(request))
        return True

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        token = self.client.get_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if self._should_retry(request, response):
            self.client.invalidate(token)
            request.headers["Authorization"] = f"Bearer {self.client.get_token()}"
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.client.get_token_async()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if self._should_retry(request, response):
            self.client.invalidate(token)
            request.headers["Authorization"] = f"Bearer {await self.client.get_token_async()}"
            yield request
