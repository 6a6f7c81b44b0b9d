"""`BearerAuth` for requests: `session.auth = BearerAuth(client)` or
`requests.get(url, auth=BearerAuth(client))`.

Adds `Authorization: Bearer <token>`. On a 401 it invalidates that token and sends the request
once more with a fresh one, when the body can be sent again (none, bytes, str, or a seekable
file); a streamed body (generator, iterator) gets the 401 back as is. It never retries twice.

Redirects: requests drops `Authorization` when a redirect leaves the host (and on a port or
scheme change other than http to https on the default ports), and this hook never puts it back.
Only the request the hook itself authorised is retried: a 401 from where a redirect led is
returned as is, without a token sent there or our cached one dropped.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.cookies import extract_cookies_to_jar

from ._stream_client import ServerEvent, iter_events
from .errors import StreamError

logger = logging.getLogger("tokenward.requests")

__all__ = ["BearerAuth", "ServerEvent", "StreamError", "iter_events"]


class TokenSource(Protocol):
    def get_token(self) -> str: ...

    def invalidate(self, token: str | None = None) -> bool: ...


# Per-request state, kept on the PreparedRequest: the token it was sent with, where its body
# started (to rewind a file), and whether it is already the retry.
_TOKEN = "_tokenward_token"
_BODY_POS = "_tokenward_body_pos"
_RETRIED = "_tokenward_retried"


def _where(request: requests.PreparedRequest) -> str:
    # Without the query string: it may carry credentials of its own.
    url = urlsplit(request.url or "")
    return f"{request.method} {url.scheme}://{url.netloc}{url.path}"


class BearerAuth(requests.auth.AuthBase):
    """Bearer tokens from a `TokenClient` (anything with `get_token()` and `invalidate(token)`),
    with one retry after a 401."""

    def __init__(self, client: TokenSource) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"BearerAuth({self.client!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.client.get_token()
        request.headers["Authorization"] = f"Bearer {token}"
        setattr(request, _TOKEN, token)
        body = request.body
        if body is not None and hasattr(body, "tell"):
            try:
                setattr(request, _BODY_POS, body.tell())
            except OSError:
                setattr(request, _BODY_POS, None)
        hooks = request.hooks.setdefault("response", [])
        if self._on_response not in hooks:
            hooks.append(self._on_response)
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        request = response.request
        if response.status_code != 401 or getattr(request, _RETRIED, False):
            return response
        sent = getattr(request, _TOKEN, None)
        if sent is None:
            # requests copies the hooks onto the requests that follow a redirect, but not our
            # token: this 401 answers a redirected request, which may be on another origin
            # (requests stripped our header for it). Adding a token here would send it there.
            return response
        if not _rewind(request):
            logger.info("401 from %s; the body cannot be sent again, not retrying", _where(request))
            return response
        self.client.invalidate(sent)
        if kwargs.get("stream"):
            response.close()
        else:
            # Read so the connection goes back to the pool; the 401 stays in `history`.
            _ = response.content
            response.close()
        retry = request.copy()
        setattr(retry, _RETRIED, True)
        # Cookies the 401 set go along, as requests' own digest auth does.
        jar = getattr(retry, "_cookies", None)
        if jar is not None and response.raw is not None:
            # types-requests leaves this helper unannotated.
            extract_cookies_to_jar(jar, request, response.raw)  # type: ignore[no-untyped-call]
            retry.prepare_cookies(jar)
        token = self.client.get_token()
        retry.headers["Authorization"] = f"Bearer {token}"
        setattr(retry, _TOKEN, token)
        logger.info("401 from %s; retrying once with a fresh token", _where(request))
        if response.connection is None:
            return response
        new = response.connection.send(retry, **kwargs)
        new.history.append(response)
        new.request = retry
        return new


def _rewind(request: requests.PreparedRequest) -> bool:
    """Whether the body can be sent again, rewinding a file body to where it started."""
    body = request.body
    if body is None or isinstance(body, (bytes, str, bytearray)):
        return True
    pos = getattr(request, _BODY_POS, None)
    seekable = getattr(body, "seekable", None)
    if pos is None or not callable(seekable) or not seekable():
        return False
    try:
        body.seek(pos)
    except OSError:
        return False
    return True
