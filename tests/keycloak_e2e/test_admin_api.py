"""The service account `tokenward-admin` (realm-management `view-users`) lists the realm's users
through Keycloak's Admin REST API with the httpx hook."""

from __future__ import annotations

import httpx
import pytest
import tokenward as tw
from tokenward.httpx import BearerAuth

from ._kc import ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET, HTTP_TIMEOUT, Keycloak

pytestmark = pytest.mark.keycloak

HUMANS = {"alice", "bob", "carol", "dave"}


def admin_client(keycloak: Keycloak) -> tw.TokenClient:
    return tw.TokenClient(
        keycloak.token_url, client_id=ADMIN_CLIENT_ID, client_secret=ADMIN_CLIENT_SECRET
    )


def test_list_users(keycloak: Keycloak) -> None:
    client = admin_client(keycloak)
    with httpx.Client(
        base_url=keycloak.admin_url, auth=BearerAuth(client), timeout=HTTP_TIMEOUT
    ) as http:
        users = http.get("/users").raise_for_status().json()
        assert {u["username"] for u in users} == HUMANS
        assert {u["email"] for u in users if u["username"] == "alice"} == {"alice@example.org"}
        found = http.get("/users", params={"username": "bob", "exact": "true"}).json()
        assert [u["username"] for u in found] == ["bob"]
        # view-users does not allow writing: a 403 is an answer, not a reason to refetch.
        created = http.post("/users", json={"username": "mallory", "enabled": True})
        assert created.status_code == 403
    assert client.stats()["token_requests"] == 1
    # Without the token the Admin API refuses.
    assert httpx.get(f"{keycloak.admin_url}/users", timeout=HTTP_TIMEOUT).status_code == 401


async def test_list_users_async(keycloak: Keycloak) -> None:
    client = admin_client(keycloak)
    async with httpx.AsyncClient(
        base_url=keycloak.admin_url, auth=BearerAuth(client), timeout=HTTP_TIMEOUT
    ) as http:
        answer = await http.get("/users")
    assert answer.status_code == 200, answer.text
    assert {u["username"] for u in answer.json()} == HUMANS
