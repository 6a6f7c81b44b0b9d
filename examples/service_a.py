"""Example service A: a FastAPI backend with role permissions that calls service B on the
caller's behalf, forwarding the caller's own bearer token.

Routes: `GET /health` (open), `GET /whoami`, `GET /relay` (asks service B who the caller is),
`GET /documents` (needs `read` on `documents`), `POST /documents` (needs `create`).

Configuration (environment): KEYCLOAK_URL, KEYCLOAK_REALM and the other variables of
`tokenward.Verifier.from_env()`; SERVICE_B_URL (default http://127.0.0.1:8001);
TOKENWARD_ROLE_CLIENTS and TOKENWARD_ALLOWLIST_FILE.

Run: `SERVICE_B_URL=http://127.0.0.1:8001 KEYCLOAK_URL=http://127.0.0.1:8080 \\
      uvicorn --app-dir examples service_a:app --port 8000`
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel
from tokenward.fastapi import Authenticator, User
from tokenward.forwarding import ForwardedBearer
from tokenward.rbac import Policy

#: Who may do what: realm roles (and client roles of TOKENWARD_ROLE_CLIENTS) -> permissions.
POLICY = Policy(
    {
        "admin": {"*": ["*"]},
        "editor": {"documents": ["read", "create"]},
        "viewer": {"documents": ["read"]},
    }
)


class Document(BaseModel):
    title: str


def describe(user: User) -> dict[str, Any]:
    return {
        "service": "a",
        "uid": user.uid,
        "username": user.username,
        "email": user.email,
        "roles": list(user.roles),
        "azp": user.azp,
    }


def create_app(
    auth: Authenticator | None = None,
    service_b_url: str | None = None,
    policy: Policy = POLICY,
) -> FastAPI:
    """Service A, calling service B at `service_b_url` (default: $SERVICE_B_URL)."""
    auth = auth or Authenticator(exempt_paths={"/health"})
    b_url = (service_b_url or os.environ.get("SERVICE_B_URL", "http://127.0.0.1:8001")).rstrip("/")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=b_url, timeout=10.0) as client:
            app.state.service_b = client
            yield

    app = FastAPI(
        title="tokenward example: service A",
        dependencies=[Depends(auth.app_dependency)],
        lifespan=lifespan,
    )
    current_user = Annotated[User, Depends(auth.user)]
    forwarded = Annotated[ForwardedBearer, Depends(auth.forwarded)]
    documents: list[dict[str, str]] = []

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/whoami")
    async def whoami(user: current_user) -> dict[str, Any]:
        return describe(user)

    @app.get("/relay")
    async def relay(user: current_user, bearer: forwarded, request: Request) -> dict[str, Any]:
        client: httpx.AsyncClient = request.app.state.service_b
        try:
            response = await client.get("/whoami", auth=bearer)
        except httpx.HTTPError as exc:
            raise HTTPException(502, detail=f"service B unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise HTTPException(502, detail=f"service B answered {response.status_code}")
        return {"service_a": describe(user), "service_b": response.json()}

    @app.get("/documents")
    async def list_documents(
        user: Annotated[
            User, Depends(policy.authorize("read", "documents", user_dependency=auth.user))
        ],
    ) -> list[dict[str, str]]:
        return documents

    @app.post("/documents", status_code=201)
    async def create_document(
        document: Document,
        user: Annotated[
            User, Depends(policy.authorize("create", "documents", user_dependency=auth.user))
        ],
    ) -> dict[str, str]:
        entry = {"title": document.title, "owner": user.uid}
        documents.append(entry)
        return entry

    return app


app = create_app()
