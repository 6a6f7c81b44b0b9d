"""App-wide bearer-token protection as a pure ASGI middleware.

    from fastapi import Depends, FastAPI
    from tokenward.fastapi import Authenticator, User
    from tokenward.middleware import BearerAuthMiddleware

    auth = Authenticator(exempt_paths={"/health"})
    app = FastAPI()
    app.add_middleware(BearerAuthMiddleware, authenticator=auth)

    @app.get("/me")
    async def me(user: User = Depends(auth.user)) -> dict[str, str]:
        return {"uid": user.uid}          # verified by the middleware, not again here

Why a middleware and not `FastAPI(dependencies=[Depends(auth.app_dependency)])`: resolving a
FastAPI dependency costs about 7 µs a request before the dependency does anything; the
middleware reads the header straight from the ASGI scope and awaits `Verifier.verify_async`,
about 4 µs in all with a cached token (docs/benchmarks.md).

Same policy and answers as the `Authenticator` it is given (the default one, from the
environment, when none is): exempt paths, the allowlist, 401 with the RFC 6750 challenge, 403,
503 with `Retry-After`, 500 when not configured, each as FastAPI's `{"detail": ...}` JSON. It
answers before the app, so the app's own exception handlers never see these. WebSocket
handshakes are checked too and refused with close code 1008 (policy violation). The verified
identity is kept in the request's state, where the `Authenticator`'s dependencies (`claims`,
`user`, `forwarded`, and the module-level ones for the default authenticator) find it.

Exempt paths are matched on the path the app routes, below any `root_path` (`--root-path`,
`FastAPI(root_path=...)`, a `Mount`): see `tokenward._bearer.is_exempt`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._bearer import (
    REFUSED,
    WS_POLICY_VIOLATION,
    Refusal,
    authorization_header,
    is_exempt,
    remember_identity,
)
from .fastapi import Authenticator, default_authenticator

__all__ = ["WS_POLICY_VIOLATION", "BearerAuthMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BearerAuthMiddleware:
    """Refuses every HTTP request and WebSocket handshake without a valid bearer token, except
    on the authenticator's exempt paths. Lifespan and other scopes pass through."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator | None = None) -> None:
        self.app = app
        self._authenticator = authenticator

    @property
    def authenticator(self) -> Authenticator:
        # The default one is looked up per request, so `configure(...)` after start-up counts.
        return self._authenticator or default_authenticator()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            return await self.app(scope, receive, send)
        # The `authenticator` property, without a call per request.
        authenticator = self._authenticator or default_authenticator()
        if is_exempt(scope, authenticator.exempt_paths):
            return await self.app(scope, receive, send)
        try:
            identity = await authenticator.identify(authorization_header(scope))
        except REFUSED as exc:
            refusal = authenticator.refusal(exc)  # logs it, for a WebSocket too
            if kind == "websocket":
                return await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION})
            return await _send_refusal(refusal, send)
        remember_identity(scope, authenticator, identity)
        return await self.app(scope, receive, send)


async def _send_refusal(refusal: Refusal, send: Send) -> None:
    # FastAPI's shape of an error body, so a client sees one format whichever layer refused.
    body = json.dumps({"detail": refusal.detail}).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    for name, value in (refusal.headers or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
