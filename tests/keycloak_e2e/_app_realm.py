"""The realm `app` of the Keycloak suite, set up as Fred's Keycloak guide says (issue 13, item
4): its clients, secrets and users, and password-grant tokens from it. tests/keycloak/README.md
describes it; tests/keycloak/app-realm.json is imported in the same Keycloak start as `dls`."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from ._kc import HTTP_TIMEOUT, Keycloak

REALM = "app"
#: The UI's client: public, PKCE, audience mapper `knowledge-flow`, groups scope (full paths).
UI_CLIENT_ID = "app"
#: Test only: like `app`, without the audience mapper.
NO_AUDIENCE_CLIENT_ID = "app-no-audience"
#: Test only: like `app`, with the audience `agentic` instead of `knowledge-flow`: the token a
#: user hands Agentic, which Agentic exchanges for one meant for Knowledge Flow.
EXCHANGE_CLIENT_ID = "app-exchange"
#: Confidential; standard token exchange on; an audience mapper makes `knowledge-flow` available.
AGENTIC_ID, AGENTIC_SECRET = "agentic", "dev-agentic-secret"
KNOWLEDGE_FLOW_ID, KNOWLEDGE_FLOW_SECRET = "knowledge-flow", "dev-knowledge-flow-secret"
#: user -> (group, the `app` client role the group maps to); dave is in no group.
MEMBERS = {"alice": ("admins", "admin"), "bob": ("editors", "editor"), "carol": ("viewers", "viewer")}
USERS = (*MEMBERS, "dave")


def app_realm(keycloak: Keycloak) -> Keycloak:
    """The same server, addressed at the realm `app`."""
    return dataclasses.replace(keycloak, realm=REALM)


def password_grant(realm: Keycloak, username: str, client_id: str = UI_CLIENT_ID) -> str:
    """An access token for `username` (password `<username>-pw`) through `client_id`."""
    response = httpx.post(
        realm.token_url,
        data={
            "grant_type": "password",
            "client_id": client_id,
            "username": username,
            "password": f"{username}-pw",
        },
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    token: Any = response.json()["access_token"]
    return str(token)


def service_token(realm: Keycloak, client_id: str, secret: str) -> str:
    response = httpx.post(
        realm.token_url,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])
