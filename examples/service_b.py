"""Example service B: a FastAPI backend that trusts the realm's access tokens.

It answers `GET /whoami` with the caller as it sees them. Service A calls it with the token
of A's own caller (token forwarding), so both services see the same user.

Configuration (environment): KEYCLOAK_URL, KEYCLOAK_REALM (default "dls") and the other
variables of `tokenward.Verifier.from_env()`; TOKENWARD_ROLE_CLIENTS and
TOKENWARD_ALLOWLIST_FILE as `tokenward.fastapi.Authenticator` reads them.

Run: `KEYCLOAK_URL=http://127.0.0.1:8080 uvicorn --app-dir examples service_b:app --port 8001`
"""

from typing import Annotated, Any

from fastapi import Depends, FastAPI
from tokenward.fastapi import Authenticator, User
from tokenward.middleware import BearerAuthMiddleware


def describe(user: User, service: str) -> dict[str, Any]:
    """What a service tells about its caller."""
    return {
        "service": service,
        "uid": user.uid,
        "username": user.username,
        "email": user.email,
        "roles": list(user.roles),
        "azp": user.azp,
    }


def create_app(auth: Authenticator | None = None) -> FastAPI:
    """Service B. Every route needs a valid token except `/health`.

    Protected by the middleware (service A shows the dependency form): it checks every request
    before routing, and `auth.user` below reuses what it verified."""
    auth = auth or Authenticator(exempt_paths={"/health"})
    app = FastAPI(title="tokenward example: service B")
    app.add_middleware(BearerAuthMiddleware, authenticator=auth)
    current_user = Annotated[User, Depends(auth.user)]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/whoami")
    async def whoami(user: current_user) -> dict[str, Any]:
        return describe(user, "b")

    return app


app = create_app()
