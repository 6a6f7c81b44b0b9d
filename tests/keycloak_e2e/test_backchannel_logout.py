"""Back-channel logout from a real Keycloak to replicas sharing one Redis (issue 18, item 5).

A client made for this test (Admin API; the realm files stay as they are) has its
"Backchannel logout URL" pointing at one of two replica processes (uvicorn on 127.0.0.1, each
with its own Verifier on the same Redis), and "Backchannel logout session required" on. A user
signs in through that client (password grant: a session), both replicas accept the token, the
user is signed out through the Admin API, and both replicas refuse the token with `revoked`:
Keycloak's signed logout token reached one, Redis told the other. The client is deleted after.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _redis import RedisServer
from _replicas import RECONNECT_SECONDS, Replica, start_replica, wait_until

from ._kc import HTTP_TIMEOUT, PASSWORDS, Keycloak

pytestmark = pytest.mark.keycloak

#: Keycloak sends the logout token while it handles the Admin API call; Redis then carries it.
PROPAGATION_SECONDS = 5.0


@pytest.fixture
def logout_client(keycloak: Keycloak) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(client id, secret, representation) of a confidential client with direct access
    grants; its back-channel logout URL is set once the receiving replica listens."""
    client_id = f"tokenward-bcl-{uuid.uuid4().hex[:8]}"
    secret = uuid.uuid4().hex
    representation: dict[str, Any] = {
        "clientId": client_id,
        "enabled": True,
        "publicClient": False,
        "secret": secret,
        "directAccessGrantsEnabled": True,
        "standardFlowEnabled": False,
        "frontchannelLogout": False,
        "attributes": {"backchannel.logout.session.required": "true"},
    }
    with keycloak.admin() as admin:
        created = admin.post("/clients", json=representation)
        assert created.status_code == 201, created.text
        internal_id = created.headers["Location"].rsplit("/", 1)[1]
        representation["id"] = internal_id
        try:
            yield client_id, secret, representation
        finally:
            admin.delete(f"/clients/{internal_id}")


@pytest.fixture
def replicas(
    keycloak: Keycloak, redis_server: RedisServer, logout_client: tuple[str, str, dict[str, Any]]
) -> Iterator[list[Replica]]:
    client_id, _, representation = logout_client
    started: list[Replica] = []
    try:
        started.append(
            start_replica(keycloak.issuer, redis_server.url, "--logout-client", client_id)
        )
        started.append(start_replica(keycloak.issuer, redis_server.url))
        for replica in started:
            wait_until(lambda r=replica: r.health()["connected"] is True, RECONNECT_SECONDS)
        representation["attributes"]["backchannel.logout.url"] = (
            f"{started[0].url}/backchannel-logout"
        )
        with keycloak.admin() as admin:
            updated = admin.put(f"/clients/{representation['id']}", json=representation)
            assert updated.status_code == 204, updated.text
        yield started
    finally:
        for replica in started:
            replica.stop()


def test_signing_a_user_out_in_keycloak_revokes_their_token_on_every_replica(
    keycloak: Keycloak,
    logout_client: tuple[str, str, dict[str, Any]],
    replicas: list[Replica],
) -> None:
    client_id, secret, _ = logout_client
    grant = httpx.post(
        keycloak.token_url,
        data={
            "grant_type": "password",
            "client_id": client_id,
            "client_secret": secret,
            "username": "alice",
            "password": PASSWORDS["alice"],
            "scope": "openid",
        },
        timeout=HTTP_TIMEOUT,
    )
    assert grant.status_code == 200, grant.text
    token = grant.json()["access_token"]
    bob = keycloak.user_tokens("bob")["access_token"]
    for replica in replicas:
        status, body = replica.verify(token)
        assert status == 200, body
    alice_id = replicas[0].verify(token)[1]["sub"]

    with keycloak.admin() as admin:
        signed_out = admin.post(f"/users/{alice_id}/logout")
        assert signed_out.status_code == 204, signed_out.text

    wait_until(
        lambda: all(r.verify(token) == (401, {"code": "revoked"}) for r in replicas),
        PROPAGATION_SECONDS,
    )
    # Another user's session is untouched.
    for replica in replicas:
        assert replica.verify(bob)[0] == 200
