"""The realm `app` set up as Fred's Keycloak guide says, with real Keycloak tokens (issue 13,
item 4): the guide's verification steps (a user's password grant; roles from groups; `roles=[]`
for a user in no group; strict audience), the `agentic` service account listing users through
the Admin API, and the services flow of `examples/fred/` (user -> Agentic -> Knowledge Flow)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import tokenward as tw
from _uvicorn import serve
from tokenward.fastapi import User

from ._app_realm import (
    AGENTIC_ID,
    AGENTIC_SECRET,
    KNOWLEDGE_FLOW_ID,
    KNOWLEDGE_FLOW_SECRET,
    MEMBERS,
    NO_AUDIENCE_CLIENT_ID,
    USERS,
    app_realm,
    password_grant,
    service_token,
)
from ._kc import HTTP_TIMEOUT, Keycloak

pytestmark = pytest.mark.keycloak

FRED_EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "fred"


@pytest.fixture(scope="module")
def realm(keycloak: Keycloak) -> Keycloak:
    return app_realm(keycloak)


def strict(realm: Keycloak) -> tw.Verifier:
    """Knowledge Flow's check with FRED_STRICT_AUDIENCE on: `knowledge-flow` must be in `aud`."""
    return tw.Verifier(realm.issuer, audience=KNOWLEDGE_FLOW_ID)


@pytest.mark.parametrize("username", sorted(MEMBERS))
def test_user_token_has_the_groups_role_path_and_audience(realm: Keycloak, username: str) -> None:
    group, role = MEMBERS[username]
    token = password_grant(realm, username)
    claims = strict(realm).verify(token)
    assert claims["azp"] == "app"
    assert claims["preferred_username"] == username
    assert claims["email"] == f"{username}@example.org"
    assert claims["resource_access"]["app"]["roles"] == [role]
    assert claims["groups"] == [f"/{group}"]
    assert KNOWLEDGE_FLOW_ID in claims["aud"]
    user = User.from_claims(claims, token, role_clients=["app"], realm_roles=False)
    assert user.roles == (role,)


def test_user_in_no_group_has_no_app_roles(realm: Keycloak) -> None:
    token = password_grant(realm, "dave")
    claims = strict(realm).verify(token)
    assert "app" not in claims["resource_access"]
    assert "groups" not in claims  # Keycloak leaves the claim out rather than sending []
    assert User.from_claims(claims, token, role_clients=["app"], realm_roles=False).roles == ()


def test_strict_audience_refuses_a_token_without_knowledge_flow(realm: Keycloak) -> None:
    token = password_grant(realm, "alice", client_id=NO_AUDIENCE_CLIENT_ID)
    claims = tw.Verifier(realm.issuer).verify(token)  # a good token otherwise
    assert KNOWLEDGE_FLOW_ID not in claims["aud"]
    with pytest.raises(tw.InvalidToken) as caught:
        strict(realm).verify(token)
    assert caught.value.code == "bad_audience"


def test_agentic_service_account_lists_users(realm: Keycloak) -> None:
    token = service_token(realm, AGENTIC_ID, AGENTIC_SECRET)
    claims = tw.Verifier(realm.issuer).verify(token)
    granted = set(claims["resource_access"]["realm-management"]["roles"])
    assert {"view-users", "query-users"} <= granted
    answer = httpx.get(
        f"{realm.admin_url}/users",
        headers={"Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    users = answer.json()
    assert sorted(u["username"] for u in users) == sorted(USERS)
    alice = next(u for u in users if u["username"] == "alice")
    assert alice["email"] == "alice@example.org" and alice["enabled"] is True
    assert alice["id"] == tw.Verifier(realm.issuer).verify(password_grant(realm, "alice"))["sub"]


def test_admin_api_refuses_a_client_without_the_role(realm: Keycloak) -> None:
    token = service_token(realm, KNOWLEDGE_FLOW_ID, KNOWLEDGE_FLOW_SECRET)
    headers = {"Authorization": f"Bearer {token}"}
    answer = httpx.get(f"{realm.admin_url}/users", headers=headers, timeout=HTTP_TIMEOUT)
    assert answer.status_code == 403
    assert httpx.get(f"{realm.admin_url}/users", timeout=HTTP_TIMEOUT).status_code == 401


# ---- the services flow: examples/fred/ (Agentic and Knowledge Flow) on uvicorn ---------------

def load_fred_example(name: str) -> ModuleType:
    path = FRED_EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"kc_fred_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fred_services(realm: Keycloak, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Knowledge Flow (strict audience) and Agentic, both on uvicorn against the realm `app`."""
    for name in ("FRED_STRICT_ISSUER", "FRED_STRICT_AUDIENCE", "FRED_JWT_MAX_LIFETIME_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    knowledge_flow = load_fred_example("knowledge_flow")
    agentic = load_fred_example("agentic")
    kf_app = knowledge_flow.create_app(realm_url=realm.issuer, strict_audience=True)
    with serve(kf_app) as kf_url:
        ag_app = agentic.create_app(
            realm_url=realm.issuer, knowledge_flow_url=kf_url, client_secret=AGENTIC_SECRET
        )
        with serve(ag_app) as ag_url:
            yield {"agentic": ag_url, "knowledge_flow": kf_url}


def _get(url: str, token: str) -> httpx.Response:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT)


@pytest.mark.parametrize("username", [*sorted(MEMBERS), "dave"])
def test_user_token_through_agentic_to_knowledge_flow(
    realm: Keycloak, fred_services: dict[str, str], username: str
) -> None:
    token = password_grant(realm, username)
    sub = tw.Verifier(realm.issuer).verify(token)["sub"]
    answer = _get(f"{fred_services['agentic']}/agentic/v1/me", token)
    assert answer.status_code == 200, answer.text
    me: dict[str, Any] = answer.json()
    expected_roles = [MEMBERS[username][1]] if username in MEMBERS else []
    assert (me["uid"], me["username"], me["email"]) == (sub, username, f"{username}@example.org")
    assert me["roles"] == expected_roles
    seen_by_kf = me["knowledge_flow"]
    assert (seen_by_kf["uid"], seen_by_kf["roles"]) == (sub, expected_roles)


def test_knowledge_flow_refuses_a_token_without_its_audience(
    realm: Keycloak, fred_services: dict[str, str]
) -> None:
    kf_me = f"{fred_services['knowledge_flow']}/knowledge-flow/v1/me"
    assert _get(kf_me, password_grant(realm, "alice")).status_code == 200
    token = password_grant(realm, "alice", client_id=NO_AUDIENCE_CLIENT_ID)
    assert _get(kf_me, token).status_code == 401


def test_agentic_lists_users_with_its_service_account(
    realm: Keycloak, fred_services: dict[str, str]
) -> None:
    answer = _get(f"{fred_services['agentic']}/agentic/v1/users", password_grant(realm, "alice"))
    assert answer.status_code == 200, answer.text
    listed = answer.json()
    usernames = [u["username"] if isinstance(u, dict) else u for u in listed]
    assert sorted(usernames) == sorted(USERS)


def test_knowledge_flow_rbac_follows_the_users_group(
    realm: Keycloak, fred_services: dict[str, str]
) -> None:
    from tokenward.fred import Action, Resource

    documents = f"{fred_services['knowledge_flow']}/knowledge-flow/v1/documents"
    assert _get(documents, password_grant(realm, "carol")).status_code == 200  # viewers read
    refused = _get(documents, password_grant(realm, "dave"))  # no group, no role
    assert refused.status_code == 403
    read, docs = Action.READ.value, Resource.DOCUMENTS.value
    assert refused.json()["detail"] == f"You are not allowed to {read} {docs}."
    headers = {"Authorization": f"Bearer {password_grant(realm, 'carol')}"}
    deleted = httpx.delete(f"{documents}/d2", headers=headers, timeout=HTTP_TIMEOUT)
    assert deleted.status_code == 403  # viewers do not delete
    headers = {"Authorization": f"Bearer {password_grant(realm, 'alice')}"}
    deleted = httpx.delete(f"{documents}/d2", headers=headers, timeout=HTTP_TIMEOUT)
    assert deleted.status_code == 204  # admins do
