"""Knowledge Flow, Fred's document service, reduced to its security: written with
`tokenward.fred` as a Fred developer would (`Depends(get_current_user)`, `@authorize`).

    uvicorn --factory 'knowledge_flow:create_app' ...   (or call create_app yourself)

Tokens must name `client_id` in their `aud` when `strict_audience` (the realm's audience mapper
adds it); users' roles are the front end's (`app`) client roles, as in Fred's realm."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from tokenward.fred import (
    Action,
    FredSettings,
    KeycloakUser,
    Resource,
    UserSecurity,
    authorize,
    get_current_user,
    initialize_user_security,
    register_exception_handlers,
)

#: The client whose roles users carry (the front end's, in Fred's realm).
ROLES_CLIENT = "app"


class DocumentService:
    """The service layer, authorized by decorator as Fred's is."""

    def __init__(self) -> None:
        self.documents = {"d1": "Quarterly report", "d2": "Design notes"}

    @authorize(Action.READ, Resource.DOCUMENTS)
    def list_documents(self, user: KeycloakUser) -> list[dict[str, str]]:
        return [{"id": key, "title": title} for key, title in self.documents.items()]

    @authorize(Action.DELETE, Resource.DOCUMENTS)
    def delete_document(self, user: KeycloakUser, doc_id: str) -> None:
        self.documents.pop(doc_id, None)


def me(user: KeycloakUser) -> dict[str, Any]:
    return {"uid": user.uid, "username": user.username, "email": user.email, "roles": user.roles}


def create_app(
    *,
    realm_url: str,
    client_id: str = "knowledge-flow",
    strict_audience: bool = True,
    allowlist_path: str | None = None,
) -> FastAPI:
    app = FastAPI(title="knowledge-flow")
    settings = dataclasses.replace(FredSettings.from_env(), strict_audience=strict_audience)
    initialize_user_security(
        UserSecurity(realm_url=realm_url, client_id=client_id),
        app=app,
        settings=settings,
        allowlist=allowlist_path if allowlist_path is not None else False,
        roles_client=ROLES_CLIENT,
    )
    register_exception_handlers(app)
    service = DocumentService()

    @app.get("/knowledge-flow/v1/me")
    async def get_me(user: Annotated[KeycloakUser, Depends(get_current_user)]) -> dict[str, Any]:
        return me(user)

    @app.get("/knowledge-flow/v1/documents")
    async def list_documents(
        user: Annotated[KeycloakUser, Depends(get_current_user)],
    ) -> list[dict[str, str]]:
        return service.list_documents(user)

    @app.delete("/knowledge-flow/v1/documents/{doc_id}", status_code=204)
    async def delete_document(
        doc_id: str, user: Annotated[KeycloakUser, Depends(get_current_user)]
    ) -> None:
        service.delete_document(user, doc_id)

    return app
