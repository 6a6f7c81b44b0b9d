"""The FastAPI service the request-level comparison drives, one mode per process:

    python app.py MODE PORT        (KEYCLOAK_URL, KEYCLOAK_REALM, KEYCLOAK_ALLOWED_AZP set)

Modes:
- `none`: no authentication;
- `pyjwt`: SmartEM's backend dependency as it was (PyJWKClient + jwt.decode, synchronous inside
  the `async def` dependency), app-wide;
- `tokenward`: the drop-in `tokenward.smartem.verify_token`, app-wide;
- `tokenward-fastapi`: `tokenward.fastapi.Authenticator.app_dependency`, app-wide;
- `noop-dependency`: an app-wide `async def` dependency taking the `Request` and doing nothing
  (what FastAPI's dependency machinery costs by itself);
- `tokenward-minimal`: an app-wide dependency reading the header and awaiting
  `Verifier.verify_async` (tokenward's own cost, without the drop-in's checks and errors);
- `tokenward-middleware`: `tokenward.middleware.BearerAuthMiddleware` with an `Authenticator`,
  app-wide (no FastAPI dependency: what protection costs without FastAPI's dependency
  machinery).

GET /items answers a small JSON document; GET /health is exempt everywhere (readiness probe).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request

EXEMPT_PATHS = frozenset({"/health", "/status", "/openapi.json", "/docs", "/redoc"})


def pyjwt_dependency() -> Any:
    """SmartEM's `verify_token` before tokenward: same library calls, same checks."""
    import jwt
    from micro import SmartEmPyJwt

    issuer = f"{os.environ['KEYCLOAK_URL']}/realms/{os.environ['KEYCLOAK_REALM']}"
    allowed = frozenset(a for a in os.environ.get("KEYCLOAK_ALLOWED_AZP", "").split(",") if a)
    verify = SmartEmPyJwt(f"{issuer}/protocol/openid-connect/certs", issuer, allowed)

    def unauthorized(detail: str) -> HTTPException:
        return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})

    async def verify_token(request: Request) -> dict[str, Any] | None:
        if request.url.path in EXEMPT_PATHS:
            return None
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            raise unauthorized("Missing or malformed Authorization header")
        token = auth.split(" ", 1)[1].strip()
        if not token:
            raise unauthorized("Empty bearer token")
        try:
            return verify(token)
        except jwt.PyJWTError as exc:
            raise unauthorized("Invalid token") from exc
        except PermissionError as exc:
            raise unauthorized("Token azp not permitted") from exc

    return verify_token


def make_app(mode: str) -> FastAPI:
    if mode == "none":
        dependencies: list[Any] = []
    elif mode == "pyjwt":
        dependencies = [Depends(pyjwt_dependency())]
    elif mode == "tokenward":
        from tokenward.smartem import verify_token

        dependencies = [Depends(verify_token)]
    elif mode == "tokenward-fastapi":
        from tokenward.fastapi import Authenticator

        auth = Authenticator(exempt_paths=EXEMPT_PATHS, allowlist=False)
        dependencies = [Depends(auth.app_dependency)]
    elif mode == "noop-dependency":

        async def noop(request: Request) -> None:
            return None

        dependencies = [Depends(noop)]
    elif mode == "tokenward-minimal":
        import tokenward

        verifier = tokenward.Verifier.from_env()

        async def minimal(request: Request) -> dict[str, Any] | None:
            if request.scope["path"] in EXEMPT_PATHS:
                return None
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer "):
                raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"})
            try:
                return await verifier.verify_async(auth[7:])
            except tokenward.InvalidToken as exc:
                raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"}) from exc

        dependencies = [Depends(minimal)]
    elif mode == "tokenward-middleware":
        from tokenward.fastapi import Authenticator
        from tokenward.middleware import BearerAuthMiddleware

        dependencies = []
        authenticator = Authenticator(exempt_paths=EXEMPT_PATHS, allowlist=False)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    app = FastAPI(dependencies=dependencies)
    if mode == "tokenward-middleware":
        app.add_middleware(BearerAuthMiddleware, authenticator=authenticator)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items")
    async def items() -> dict[str, Any]:
        return {"items": [{"id": 1, "name": "grid square 1"}, {"id": 2, "name": "grid square 2"}]}

    return app


def _exit_with_parent() -> None:
    """A bench server never outlives the bench that started it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    _exit_with_parent()
    uvicorn.run(make_app(mode), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
