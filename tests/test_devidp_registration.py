"""The DevIdP's client registration (Keycloak's `default` and `openid-connect` providers, with
initial access tokens and rotating registration access tokens) and the clients slice of its
Admin API, over real HTTP, with the behaviour measured against Keycloak 26.7."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import tokenward as tw
from tokenward._native import SigningKey
from tokenward.testing import DevIdP


def agent_rep(client_id: str, *keys: SigningKey) -> dict[str, Any]:
    return {
        "clientId": client_id,
        "clientAuthenticatorType": "client-jwt",
        "serviceAccountsEnabled": True,
        "standardFlowEnabled": False,
        "directAccessGrantsEnabled": False,
        "attributes": {
            "use.jwks.string": "true",
            "jwks.string": json.dumps({"keys": [k.public_jwk() for k in keys]}),
        },
    }


def register(idp: DevIdP, rep: dict[str, Any], token: str) -> httpx.Response:
    return httpx.post(
        f"{idp.registration_url}/default", json=rep, headers={"Authorization": f"Bearer {token}"}
    )


def token_for(idp: DevIdP, client_id: str, key: SigningKey) -> tw.TokenClient:
    return tw.TokenClient(
        client_id=client_id, private_key=key.private_pem(), issuer=idp.issuer, timeout=5.0
    )


def oauth_error(exc: pytest.ExceptionInfo[tw.TokenRequestError]) -> str | None:
    return exc.value.error


def test_registration_makes_a_private_key_jwt_client_with_the_chosen_id(dev_idp: DevIdP) -> None:
    key = SigningKey.generate("ES256")
    iat = dev_idp.create_initial_access_token(expiration=600, count=1)
    answer = register(dev_idp, agent_rep("SmartEM_Agent_ws01", key), iat)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["clientId"] == "SmartEM_Agent_ws01"
    assert body["registrationAccessToken"]
    access = token_for(dev_idp, "SmartEM_Agent_ws01", key).get_token()
    verifier = tw.Verifier(dev_idp.issuer, allowed_azp=["SmartEM_Agent_*"])
    assert verifier.verify(access)["azp"] == "SmartEM_Agent_ws01"
    assert dev_idp.registrations == 1


def test_an_initial_access_token_allows_count_registrations_only(dev_idp: DevIdP) -> None:
    iat = dev_idp.create_initial_access_token(count=2)
    keys = [SigningKey.generate("ES256") for _ in range(3)]
    assert register(dev_idp, agent_rep("a1", keys[0]), iat).status_code == 201
    assert register(dev_idp, agent_rep("a2", keys[1]), iat).status_code == 201
    third = register(dev_idp, agent_rep("a3", keys[2]), iat)
    assert third.status_code == 401
    assert third.json() == {
        "error": "invalid_token",
        "error_description": "No remaining count on initial access token",
    }
    assert not dev_idp.has_client("a3")


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic eDp5"])
def test_registration_needs_an_initial_access_token(dev_idp: DevIdP, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    key = SigningKey.generate("ES256")
    answer = httpx.post(
        f"{dev_idp.registration_url}/default", json=agent_rep("x", key), headers=headers
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"
    assert not dev_idp.has_client("x")


def test_a_taken_client_id_is_refused_and_spends_no_count(dev_idp: DevIdP) -> None:
    dev_idp.add_client("SmartEM_Agent_ws01", secret="s")
    iat = dev_idp.create_initial_access_token(count=1)
    key = SigningKey.generate("ES256")
    taken = register(dev_idp, agent_rep("SmartEM_Agent_ws01", key), iat)
    assert taken.status_code == 400
    assert taken.json()["error_description"] == "Client Identifier in use"
    assert register(dev_idp, agent_rep("SmartEM_Agent_ws02", key), iat).status_code == 201


def test_the_openid_connect_provider_refuses_a_client_id_and_makes_one(dev_idp: DevIdP) -> None:
    key = SigningKey.generate("ES256")
    iat = dev_idp.create_initial_access_token(count=2)
    metadata = {
        "client_name": "SmartEM_Agent_ws01",
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.public_jwk()]},
        "grant_types": ["client_credentials"],
    }
    url = f"{dev_idp.registration_url}/openid-connect"
    auth = {"Authorization": f"Bearer {iat}"}
    named = httpx.post(url, json={**metadata, "client_id": "mine"}, headers=auth)
    assert named.status_code == 400
    assert named.json()["error_description"] == "Client Identifier included"
    answer = httpx.post(url, json=metadata, headers=auth)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    client_id = body["client_id"]
    assert body["registration_client_uri"] == f"{url}/{client_id}"
    assert token_for(dev_idp, client_id, key).get_token()
    read = httpx.get(
        body["registration_client_uri"],
        headers={"Authorization": f"Bearer {body['registration_access_token']}"},
    )
    assert read.status_code == 200
    assert read.json()["client_name"] == "SmartEM_Agent_ws01"


def test_an_update_rotates_the_registration_access_token_and_the_keys(dev_idp: DevIdP) -> None:
    old, new = SigningKey.generate("ES256"), SigningKey.generate("ES256")
    iat = dev_idp.create_initial_access_token()
    first = register(dev_idp, agent_rep("SmartEM_Agent_ws01", old), iat).json()
    uri = f"{dev_idp.registration_url}/default/SmartEM_Agent_ws01"

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    read = httpx.get(uri, headers=bearer(first["registrationAccessToken"]))
    assert read.status_code == 200
    # A read answers the token in force; an update answers a new one and retires the old.
    assert read.json()["registrationAccessToken"] == first["registrationAccessToken"]
    both = httpx.put(
        uri,
        json=agent_rep("SmartEM_Agent_ws01", old, new),
        headers=bearer(first["registrationAccessToken"]),
    )
    assert both.status_code == 200
    second = both.json()["registrationAccessToken"]
    assert second != first["registrationAccessToken"]
    assert httpx.get(uri, headers=bearer(first["registrationAccessToken"])).status_code == 401
    # Both keys work while both are registered; the assertion's kid picks one.
    assert token_for(dev_idp, "SmartEM_Agent_ws01", old).get_token()
    assert token_for(dev_idp, "SmartEM_Agent_ws01", new).get_token()
    only_new = httpx.put(uri, json=agent_rep("SmartEM_Agent_ws01", new), headers=bearer(second))
    assert only_new.status_code == 200
    with pytest.raises(tw.TokenRequestError) as refused:
        token_for(dev_idp, "SmartEM_Agent_ws01", old).get_token()
    assert oauth_error(refused) == "invalid_client"
    assert token_for(dev_idp, "SmartEM_Agent_ws01", new).get_token()


def test_registration_tokens_stay_out_of_logs_and_reprs(
    dev_idp: DevIdP, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    iat = dev_idp.create_initial_access_token()
    answer = register(dev_idp, agent_rep("a", SigningKey.generate("ES256")), iat).json()
    rat = answer["registrationAccessToken"]
    for secret in (iat, rat):
        assert secret not in caplog.text
        assert secret not in repr(dev_idp)
        assert secret not in repr(dev_idp._registration.__dict__)


# ---- the Admin API's clients ---------------------------------------------------------------


@pytest.fixture
def admin(dev_idp: DevIdP) -> Any:
    def client(*roles: str) -> httpx.Client:
        name = "ops-" + "-".join(roles or ("none",))
        dev_idp.add_client(name, secret="ops-secret", client_roles={"realm-management": roles})
        token = tw.TokenClient(
            client_id=name, client_secret="ops-secret", issuer=dev_idp.issuer
        ).get_token()
        return httpx.Client(
            base_url=dev_idp.admin_url, headers={"Authorization": f"Bearer {token}"}
        )

    return client


def test_admin_api_lists_clients_by_substring_with_the_rights_of_the_role(
    dev_idp: DevIdP, admin: Any
) -> None:
    key = SigningKey.generate("ES256")
    dev_idp.add_client("SmartEM_Agent_ws01", jwks=key)
    dev_idp.add_client("SmartEM_Agent_ws02", jwks=key)
    dev_idp.add_client("SmartEM_User")
    query = {"clientId": "SmartEM_Agent_", "search": "true"}
    full = admin("view-clients").get("/clients", params=query)
    assert full.status_code == 200
    assert [c["clientId"] for c in full.json()] == ["SmartEM_Agent_ws01", "SmartEM_Agent_ws02"]
    first = full.json()[0]
    assert first["clientAuthenticatorType"] == "client-jwt"
    assert json.loads(first["attributes"]["jwks.string"])["keys"][0]["kid"] == key.kid
    # Keycloak 26.7: query-clients alone may list, and sees nothing.
    assert admin("query-clients").get("/clients", params=query).json() == []
    assert admin().get("/clients").status_code == 403
    exact = admin("view-clients").get("/clients", params={"clientId": "SmartEM_User"}).json()
    assert [c["clientId"] for c in exact] == ["SmartEM_User"]


def test_admin_api_disables_and_deletes_with_manage_clients_only(
    dev_idp: DevIdP, admin: Any
) -> None:
    key = SigningKey.generate("ES256")
    dev_idp.add_client("SmartEM_Agent_ws01", jwks=key)
    agent = token_for(dev_idp, "SmartEM_Agent_ws01", key)
    assert agent.get_token()
    viewer, manager = admin("view-clients"), admin("manage-clients")
    internal = viewer.get("/clients", params={"clientId": "SmartEM_Agent_ws01"}).json()[0]["id"]
    assert viewer.put(f"/clients/{internal}", json={"enabled": False}).status_code == 403
    assert manager.put(f"/clients/{internal}", json={"enabled": False}).status_code == 204
    agent.invalidate()
    before = dev_idp.hits["token"]
    with pytest.raises(tw.TokenRequestError) as refused:
        agent.get_token()
    assert oauth_error(refused) == "invalid_client"
    assert refused.value.status == 401
    assert dev_idp.hits["token"] == before + 1  # refused at once: no retry
    assert viewer.delete(f"/clients/{internal}").status_code == 403
    assert manager.delete(f"/clients/{internal}").status_code == 204
    assert not dev_idp.has_client("SmartEM_Agent_ws01")
    assert manager.get(f"/clients/{internal}").status_code == 404


def test_admin_api_creates_a_client_with_uploaded_keys(dev_idp: DevIdP, admin: Any) -> None:
    key = SigningKey.generate("EdDSA")
    manager = admin("manage-clients")
    created = manager.post("/clients", json=agent_rep("SmartEM_Agent_ws03", key))
    assert created.status_code == 201
    assert created.headers["Location"].startswith(f"{dev_idp.admin_url}/clients/")
    assert token_for(dev_idp, "SmartEM_Agent_ws03", key).get_token()
    again = manager.post("/clients", json=agent_rep("SmartEM_Agent_ws03", key))
    assert again.status_code == 409
    assert admin("view-clients").post("/clients", json=agent_rep("z", key)).status_code == 403
    # create-client is for the registration service; Keycloak's Admin API refuses it.
    assert admin("create-client").post("/clients", json=agent_rep("z", key)).status_code == 403
