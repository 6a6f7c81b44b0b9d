"""Agentic, Fred's agent service, reduced to its security: it authenticates the caller with
`tokenward.fred`, forwards the caller's token to Knowledge Flow, and lists the realm's users
through the Keycloak Admin API with its own service account (client credentials).

The `agentic` client needs the `realm-management` roles `view-users` (or `query-users`).

With `exchange_audience="knowledge-flow"` Agentic exchanges the caller's token (RFC 8693, its
`agentic` client needs Keycloak's standard token exchange enabled) for one meant for Knowledge
Flow, which can then check its audience strictly; without it the caller's own token goes. The
exchanged token keeps only its audiences' client roles, so Knowledge Flow, which reads the roles
of `app`, needs `exchange_audience=["knowledge-flow", "app"]` to see them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, HTTPException
from tokenward.fred import (
    ClientCredentialsProvider,
    KeycloakUser,
    UserSecurity,
    get_current_user,
    initialize_user_security,
    register_exception_handlers,
    split_realm_url,
)
from tokenward.httpx import BearerAuth

#: The client whose roles users carry (the front end's, in Fred's realm).
ROLES_CLIENT = "app"
SECRET_ENV = "AGENTIC_CLIENT_SECRET"


def create_app(
    *,
    realm_url: str,
    knowledge_flow_url: str,
    client_id: str = "agentic",
    client_secret: str | None = None,
    exchange_audience: str | Sequence[str] | None = None,
) -> FastAPI:
    app = FastAPI(title="agentic")
    base, realm = split_realm_url(realm_url)
    secret = client_secret or os.environ.get(SECRET_ENV)
    service_account = (
        ClientCredentialsProvider(
            keycloak_base=base, realm=realm, client_id=client_id, client_secret=secret
        )
        if secret
        else None
    )
    if exchange_audience and service_account is None:
        raise ValueError(f"exchange_audience needs the client secret ({SECRET_ENV})")
    initialize_user_security(
        UserSecurity(realm_url=realm_url, client_id=client_id),
        app=app,
        allowlist=False,
        roles_client=ROLES_CLIENT,
        exchange=(service_account, exchange_audience) if exchange_audience else None,
    )
    register_exception_handlers(app)
    kf_me = knowledge_flow_url.rstrip("/") + "/knowledge-flow/v1/me"

    @app.get("/agentic/v1/me")
    async def me(user: Annotated[KeycloakUser, Depends(get_current_user)]) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10.0) as client:
            # The caller's (verified) token, or the one exchanged for Knowledge Flow: either
            # way Knowledge Flow sees the same user.
            answer = await client.get(kf_me, auth=await user.bearer_async())
        if answer.status_code != 200:
            raise HTTPException(
                status_code=502, detail=f"knowledge-flow answered {answer.status_code}"
            )
        return {
            "uid": user.uid,
            "username": user.username,
            "email": user.email,
            "roles": user.roles,
            "knowledge_flow": answer.json(),
        }

    @app.get("/agentic/v1/users")
    async def users(
        user: Annotated[KeycloakUser, Depends(get_current_user)],
    ) -> list[dict[str, Any]]:
        if service_account is None:
            raise HTTPException(status_code=503, detail=f"{SECRET_ENV} is not set")
        url = f"{base}/admin/realms/{realm}/users"
        async with httpx.AsyncClient(timeout=10.0, auth=BearerAuth(service_account.client)) as c:
            answer = await c.get(url)
        if answer.status_code != 200:
            raise HTTPException(
                status_code=502, detail=f"the Admin API answered {answer.status_code}"
            )
        listed: list[dict[str, Any]] = answer.json()
        return listed

    return app
