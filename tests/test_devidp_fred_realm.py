"""The DevIdP playing a realm set up like Fred's (issue 13, item 3), over real HTTP: groups that
grant client roles, the `groups` claim with full paths, an audience mapper on a public client,
a service account with realm-management roles, and the read-only Admin API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import tokenward as tw
from tokenward.testing import DevIdP

ROLES = ("admin", "editor", "viewer")
GROUPS = {"admins": "admin", "editors": "editor", "viewers": "viewer"}


@pytest.fixture
def realm() -> Iterator[DevIdP]:
    with DevIdP(realm="app") as idp:
        for group, role in GROUPS.items():
            idp.add_group(group, client_roles={"app": [role]})
        idp.add_client("app", audiences=["knowledge-flow"], groups_claim="full_path")
        idp.add_client("plain")  # public, no mappers
        idp.add_client("knowledge-flow", secret="kf-secret")
        idp.add_client(
            "agentic",
            secret="ag-secret",
            client_roles={"realm-management": ["view-users", "query-users"]},
        )
        idp.add_user("alice", "pw", "alice@example.org", groups=["admins"], first_name="Alice")
        idp.add_user("bob", "pw", "bob@example.org", groups=["/viewers"], last_name="Builder")
        idp.add_user("carol", "pw", "carol@example.org", groups=["editors", "viewers"])
        idp.add_user("dave", "pw", "dave@example.org")
        yield idp


def _password_token(idp: DevIdP, username: str, client_id: str = "app") -> str:
    form = {"grant_type": "password", "client_id": client_id, "username": username}
    answer = httpx.post(idp.token_url, data={**form, "password": "pw"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _service_token(idp: DevIdP, client_id: str, secret: str) -> str:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    answer = httpx.post(idp.token_url, data=form, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _verifier(idp: DevIdP, **settings: Any) -> tw.Verifier:
    return tw.Verifier(idp.issuer, http_timeout=5.0, **settings)


def _admin(idp: DevIdP, path: str, token: str | None, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(idp.admin_url + path, headers=headers, params=params, timeout=10)


def test_groups_grant_client_roles_and_the_groups_claim_has_full_paths(realm: DevIdP) -> None:
    verifier = _verifier(realm, audience="knowledge-flow")
    alice = verifier.verify(_password_token(realm, "alice"))
    assert alice["resource_access"]["app"]["roles"] == ["admin"]
    assert alice["groups"] == ["/admins"]
    carol = verifier.verify(_password_token(realm, "carol"))
    assert carol["resource_access"]["app"]["roles"] == ["editor", "viewer"]
    assert carol["groups"] == ["/editors", "/viewers"]
    bob = verifier.verify(_password_token(realm, "bob"))
    assert bob["resource_access"]["app"]["roles"] == ["viewer"]
    assert bob["groups"] == ["/viewers"]
    assert len({alice["sub"], bob["sub"], carol["sub"]}) == 3


def test_a_user_in_no_group_has_no_app_roles(realm: DevIdP) -> None:
    dave = _verifier(realm).verify(_password_token(realm, "dave"))
    assert "app" not in dave["resource_access"]
    assert dave["groups"] == []


def test_audience_mapper_puts_the_audience_in_user_tokens(realm: DevIdP) -> None:
    claims = _verifier(realm).verify(_password_token(realm, "alice"))
    assert claims["aud"] == ["knowledge-flow", "account"]
    assert claims["azp"] == "app"


def test_strict_audience_refuses_a_token_of_a_client_without_the_mapper(realm: DevIdP) -> None:
    token = _password_token(realm, "alice", client_id="plain")
    assert _verifier(realm).verify(token)["aud"] == "account"  # unchanged without audiences
    with pytest.raises(tw.InvalidToken) as caught:
        _verifier(realm, audience="knowledge-flow").verify(token)
    assert caught.value.code == "bad_audience"


def test_groups_claim_styles(realm: DevIdP) -> None:
    realm.add_client("names", groups_claim="name")
    claims = _verifier(realm).verify(_password_token(realm, "bob", client_id="names"))
    assert claims["groups"] == ["viewers"]
    # Without groups_claim the names are as given to add_user (the DevIdP's behaviour before).
    claims = _verifier(realm).verify(_password_token(realm, "bob", client_id="plain"))
    assert claims["groups"] == ["/viewers"]
    with pytest.raises(ValueError, match="groups_claim"):
        realm.add_client("bad", groups_claim="paths")


def test_group_realm_roles_merge_with_the_users_own(realm: DevIdP) -> None:
    realm.add_group("ops", realm_roles=["operator", "viewer"], client_roles={"app": ["viewer"]})
    realm.add_user("erin", "pw", roles=["viewer"], client_roles={"app": ["editor"]}, groups=["ops"])
    claims = _verifier(realm).verify(_password_token(realm, "erin"))
    assert claims["realm_access"]["roles"] == ["viewer", "operator"]
    assert claims["resource_access"]["app"]["roles"] == ["editor", "viewer"]


def test_service_account_carries_realm_management_roles(realm: DevIdP) -> None:
    claims = _verifier(realm).verify(_service_token(realm, "agentic", "ag-secret"))
    assert claims["resource_access"] == {
        "realm-management": {"roles": ["view-users", "query-users"]}
    }
    assert claims["preferred_username"] == "service-account-agentic"


def test_admin_api_lists_users_for_the_service_account(realm: DevIdP) -> None:
    token = _service_token(realm, "agentic", "ag-secret")
    answer = _admin(realm, "/users", token)
    assert answer.status_code == 200
    users = answer.json()
    assert [u["username"] for u in users] == ["alice", "bob", "carol", "dave"]
    alice = users[0]
    assert alice["email"] == "alice@example.org" and alice["enabled"] is True
    assert alice["firstName"] == "Alice" and "lastName" not in alice
    assert users[1]["lastName"] == "Builder"
    user_token = _verifier(realm).verify(_password_token(realm, "alice"))
    assert alice["id"] == user_token["sub"]

    assert [u["username"] for u in _admin(realm, "/users", token, search="bo").json()] == ["bob"]
    page = _admin(realm, "/users", token, first=1, max=2).json()
    assert [u["username"] for u in page] == ["bob", "carol"]
    brief = _admin(realm, "/users", token, briefRepresentation="true").json()
    assert "access" not in brief[0] and "access" in alice
    exact = _admin(realm, "/users", token, username="ALICE", exact="true").json()
    assert [u["id"] for u in exact] == [alice["id"]]
    assert _admin(realm, f"/users/{alice['id']}", token).json()["username"] == "alice"
    assert _admin(realm, "/users/nobody", token).status_code == 404
    assert _admin(realm, "/users", token, first="-1").status_code == 400


def test_admin_api_groups_and_members(realm: DevIdP) -> None:
    token = _service_token(realm, "agentic", "ag-secret")
    groups = _admin(realm, "/groups", token).json()
    assert [(g["name"], g["path"]) for g in groups] == [
        ("admins", "/admins"),
        ("editors", "/editors"),
        ("viewers", "/viewers"),
    ]
    full = _admin(realm, "/groups", token, briefRepresentation="false").json()
    assert full[0]["clientRoles"] == {"app": ["admin"]}
    viewers = next(g["id"] for g in groups if g["name"] == "viewers")
    members = _admin(realm, f"/groups/{viewers}/members", token).json()
    assert [m["username"] for m in members] == ["bob", "carol"]
    assert _admin(realm, "/groups/nope/members", token).status_code == 404


def test_admin_api_refuses_without_a_valid_bearer(realm: DevIdP) -> None:
    assert _admin(realm, "/users", None).status_code == 401
    assert _admin(realm, "/users", "not.a.jwt").status_code == 401
    with DevIdP(realm="app") as other:
        other.add_client(
            "agentic", secret="ag-secret", client_roles={"realm-management": ["view-users"]}
        )
        foreign = _service_token(other, "agentic", "ag-secret")
    assert _admin(realm, "/users", foreign).status_code == 401
    expired = realm.mint(
        expires_in=-600, resource_access={"realm-management": {"roles": ["view-users"]}}
    )
    assert _admin(realm, "/users", expired).status_code == 401


def test_admin_api_answers_403_without_a_realm_management_role(realm: DevIdP) -> None:
    kf = _service_token(realm, "knowledge-flow", "kf-secret")
    assert _admin(realm, "/users", kf).status_code == 403
    assert _admin(realm, "/groups", kf).status_code == 403
    user = _password_token(realm, "alice")  # an admin of `app`, not of the realm
    assert _admin(realm, "/users", user).status_code == 403
    minted = realm.mint(resource_access={"realm-management": {"roles": ["query-groups"]}})
    assert _admin(realm, "/groups", minted).status_code == 200
    assert _admin(realm, "/users", minted).status_code == 403
    assert httpx.post(realm.admin_url + "/users", timeout=10).status_code == 405
