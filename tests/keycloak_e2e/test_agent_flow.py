"""The agent's side: client-credentials tokens from Keycloak with each client authentication
method, and Keycloak's real answers to bad credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import tokenward as tw
from _helpers import claims_of
from tokenward.smartem import KeycloakClient, KeycloakConfig, KeycloakTokenError

from ._kc import (
    AGENT_ID,
    AGENT_SECRET,
    JWT_AGENT_ID,
    JWT_AGENT_KID,
    REALM,
    Keycloak,
)

pytestmark = pytest.mark.keycloak

JWT_AGENT_KEY = Path(__file__).resolve().parents[1] / "keycloak" / "jwt-agent-key.pem"


def assert_agent_token(keycloak: Keycloak, token: str, client_id: str) -> None:
    """The token verifies against the realm's JWKS and is a service-account token of `client_id`
    (Keycloak's shape: aud "account", typ Bearer, realm role `agent`)."""
    claims = tw.Verifier(keycloak.issuer).verify(token)
    assert claims["iss"] == keycloak.issuer
    assert claims["azp"] == client_id
    assert claims["aud"] == "account"
    assert claims["typ"] == "Bearer"
    assert claims["preferred_username"] == f"service-account-{client_id.lower()}"
    assert "agent" in claims["realm_access"]["roles"]


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic"])
def test_client_secret(keycloak: Keycloak, method: str) -> None:
    client = tw.TokenClient(
        keycloak.token_url, client_id=AGENT_ID, client_secret=AGENT_SECRET, auth_method=method
    )
    assert client.auth_method == method
    token = client.get_token()
    assert_agent_token(keycloak, token, AGENT_ID)
    assert client.get_token() == token  # cached, not fetched again
    stats = client.stats()
    assert (stats["token_requests"], stats["token_errors"], stats["cache_hits"]) == (1, 0, 1)


def test_private_key_jwt_from_the_issuer(keycloak: Keycloak) -> None:
    """private_key_jwt with the PEM and its kid, the token endpoint found by discovery. Keycloak
    refuses a reused assertion ("Token reuse detected"), so the second token shows each
    request signs a fresh one."""
    client = tw.TokenClient(
        issuer=keycloak.issuer,
        client_id=JWT_AGENT_ID,
        private_key=JWT_AGENT_KEY.read_text(),
        key_id=JWT_AGENT_KID,
        auth_method="private_key_jwt",
    )
    first = client.get_token()
    assert client.token_url == keycloak.token_url
    assert_agent_token(keycloak, first, JWT_AGENT_ID)
    assert client.invalidate(first)
    second = client.get_token()
    assert second != first
    assert claims_of(second)["jti"] != claims_of(first)["jti"]
    assert_agent_token(keycloak, second, JWT_AGENT_ID)
    assert client.stats()["token_requests"] == 2


def test_private_key_jwt_with_an_unregistered_kid_is_refused(keycloak: Keycloak) -> None:
    client = tw.TokenClient(
        keycloak.token_url,
        client_id=JWT_AGENT_ID,
        private_key=JWT_AGENT_KEY.read_text(),
        key_id="not-registered",
    )
    assert client.auth_method == "private_key_jwt"
    with pytest.raises(tw.TokenRequestError) as info:
        client.get_token()
    assert info.value.status == 400
    assert info.value.error == "invalid_client"
    assert client.stats()["token_requests"] == 1


def test_wrong_secret(keycloak: Keycloak) -> None:
    """Keycloak 26.7 answers a wrong secret for an existing client with HTTP 401
    `unauthorized_client` (not `invalid_client`, which it keeps for an unknown client id). It
    is final: one request, no retry."""
    client = tw.TokenClient(keycloak.token_url, client_id=AGENT_ID, client_secret="wrong")
    with pytest.raises(tw.TokenRequestError) as info:
        client.get_token()
    assert (info.value.status, info.value.error) == (401, "unauthorized_client")
    assert info.value.retryable is False
    assert "wrong" not in str(info.value)
    stats = client.stats()
    assert (stats["token_requests"], stats["token_errors"]) == (1, 1)


def test_unknown_client(keycloak: Keycloak) -> None:
    client = tw.TokenClient(keycloak.token_url, client_id="no-such-client", client_secret="x")
    with pytest.raises(tw.TokenRequestError) as info:
        client.get_token()
    assert (info.value.status, info.value.error) == (401, "invalid_client")
    assert client.stats()["token_requests"] == 1


def test_from_env(keycloak: Keycloak, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYCLOAK_URL", keycloak.url)
    monkeypatch.setenv("KEYCLOAK_REALM", REALM)
    monkeypatch.setenv("AGENT_CLIENT_ID", AGENT_ID)
    monkeypatch.setenv("AGENT_CLIENT_SECRET", AGENT_SECRET)
    for name in ("KEYCLOAK_CLIENT_ID", "KEYCLOAK_CLIENT_SECRET", "AGENT_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert_agent_token(keycloak, tw.TokenClient.from_env().get_token(), AGENT_ID)


def test_smartem_keycloak_client(keycloak: Keycloak) -> None:
    """SmartEM's agent-side drop-in, good and bad secret (a requests.RequestException)."""
    with KeycloakClient(KeycloakConfig(keycloak.url, REALM, AGENT_ID, AGENT_SECRET)) as client:
        assert_agent_token(keycloak, client.get_token(), AGENT_ID)
    bad = KeycloakClient(KeycloakConfig(keycloak.url, REALM, AGENT_ID, "wrong"))
    with pytest.raises(requests.RequestException) as info:
        bad.get_token()
    assert isinstance(info.value, KeycloakTokenError)
    assert (info.value.status, info.value.error) == (401, "unauthorized_client")
