"""Human users' tokens (password grant on the test-only client `tokenward-test`): audience,
realm and client roles, groups, RBAC on a FastAPI route, and ID and refresh tokens presented
as access tokens."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations, and they
# name dependencies local to a fixture.
import logging
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
import requests
import tokenward as tw
from _helpers import claims_of, expect_invalid, header_of
from _uvicorn import serve
from fastapi import Depends, FastAPI
from tokenward.fastapi import Authenticator, User
from tokenward.rbac import Policy, authorize

from ._kc import HTTP_TIMEOUT, PASSWORDS, USER_CLIENT_ID, Keycloak

pytestmark = pytest.mark.keycloak

POLICY = Policy(
    {
        "admin": {"*": ["*"]},
        "editor": {"documents": ["read", "update"]},
        "viewer": {"documents": ["read"]},
    }
)


@pytest.fixture(scope="module")
def tokens(keycloak: Keycloak) -> dict[str, dict[str, Any]]:
    """Each user's token response (access, ID and refresh token)."""
    return {user: keycloak.user_tokens(user) for user in PASSWORDS}


def access(tokens: dict[str, dict[str, Any]], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[user]['access_token']}"}


@pytest.fixture(scope="module")
def app_url(keycloak: Keycloak) -> Iterator[str]:
    """The resource server `app`: accepts tokens whose aud includes "app"; a user's roles are
    the realm roles plus app's client roles; documents guarded by POLICY."""
    auth = Authenticator(
        tw.Verifier(keycloak.issuer, audience="app"), role_clients=["app"], allowlist=False
    )
    app = FastAPI()

    @app.get("/me")
    async def me(user: Annotated[User, Depends(auth.user)]) -> dict[str, Any]:
        return {
            "uid": user.uid,
            "username": user.username,
            "email": user.email,
            "roles": list(user.roles),
            "groups": list(user.groups),
            "azp": user.azp,
        }

    def guarded(action: str) -> Any:
        return Depends(authorize(action, "documents", policy=POLICY, user_dependency=auth.user))

    @app.get("/documents")
    async def read(user: Annotated[User, guarded("read")]) -> dict[str, str]:
        return {"read_by": user.uid}

    @app.put("/documents/{doc}")
    async def update(doc: str, user: Annotated[User, guarded("update")]) -> dict[str, str]:
        return {"updated": doc}

    @app.delete("/documents/{doc}")
    async def delete(doc: str, user: Annotated[User, guarded("delete")]) -> dict[str, str]:
        return {"deleted": doc}

    with serve(app) as url:
        yield url


def test_audience(keycloak: Keycloak, tokens: dict[str, dict[str, Any]]) -> None:
    token = tokens["alice"]["access_token"]
    claims = tw.Verifier(keycloak.issuer, audience="app").verify(token)
    assert claims["preferred_username"] == "alice"
    assert "app" in claims["aud"]
    expect_invalid(tw.Verifier(keycloak.issuer, audience="other"), token, "bad_audience")


@pytest.mark.parametrize(
    ("user", "app_role", "group"),
    [("alice", "admin", "/admins"), ("bob", "editor", "/editors"), ("carol", "viewer", "/viewers")],
)
def test_roles_and_groups(
    app_url: str, tokens: dict[str, dict[str, Any]], user: str, app_role: str, group: str
) -> None:
    answer = requests.get(f"{app_url}/me", headers=access(tokens, user), timeout=HTTP_TIMEOUT)
    assert answer.status_code == 200, answer.text
    me = answer.json()
    claims = claims_of(tokens[user]["access_token"])
    assert me["uid"] == claims["sub"]
    assert (me["username"], me["email"], me["azp"]) == (user, f"{user}@example.org", USER_CLIENT_ID)
    assert claims["resource_access"]["app"]["roles"] == [app_role]
    # Realm roles first, then app's client roles; other clients' roles (account) left out.
    assert me["roles"] == [*claims["realm_access"]["roles"], app_role]
    assert "user" in me["roles"]
    assert "manage-account" not in me["roles"]
    assert me["groups"] == [group]  # full path


def test_a_user_in_no_group(app_url: str, tokens: dict[str, dict[str, Any]]) -> None:
    claims = claims_of(tokens["dave"]["access_token"])
    assert "groups" not in claims  # Keycloak leaves the claim out rather than sending []
    assert "app" not in claims.get("resource_access", {})
    answer = requests.get(f"{app_url}/me", headers=access(tokens, "dave"), timeout=HTTP_TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["groups"] == []
    assert "user" in answer.json()["roles"]


ALLOWED = {
    "alice": {"read", "update", "delete"},
    "bob": {"read", "update"},
    "carol": {"read"},
    "dave": set(),
}


@pytest.mark.parametrize("user", sorted(ALLOWED))
def test_rbac(
    app_url: str,
    tokens: dict[str, dict[str, Any]],
    user: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tokenward.rbac")
    calls = {
        "read": ("GET", "/documents"),
        "update": ("PUT", "/documents/d1"),
        "delete": ("DELETE", "/documents/d1"),
    }
    for action, (method, path) in calls.items():
        answer = requests.request(
            method, f"{app_url}{path}", headers=access(tokens, user), timeout=HTTP_TIMEOUT
        )
        expected = 200 if action in ALLOWED[user] else 403
        assert answer.status_code == expected, (action, answer.text)
        if expected == 403:
            assert answer.json() == {"detail": "Permission denied"}
            assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]
    sub = claims_of(tokens[user]["access_token"])["sub"]
    denied = {
        r.getMessage().rsplit("action=", 1)[1]
        for r in caplog.records
        if r.name == "tokenward.rbac" and f"Authorization denied: user={sub} " in r.getMessage()
    }
    assert denied == {f"{a} resource=documents" for a in set(calls) - ALLOWED[user]}


def test_id_and_refresh_tokens_are_not_access_tokens(
    keycloak: Keycloak, tokens: dict[str, dict[str, Any]], app_url: str
) -> None:
    """Keycloak's ID token (typ "ID", aud = the client) and refresh token (typ "Refresh",
    HS512 with the realm's HMAC key, aud = the issuer), each presented as a bearer token."""
    id_token, refresh_token = tokens["alice"]["id_token"], tokens["alice"]["refresh_token"]
    assert claims_of(id_token)["typ"] == "ID"
    assert claims_of(refresh_token)["typ"] == "Refresh"
    assert header_of(refresh_token)["alg"] == "HS512"
    issuer = keycloak.issuer
    # A SmartEM-style backend (azp allowlist, no audience): the ID token fails on its typ.
    smartem_like = tw.Verifier(issuer, allowed_azp=[USER_CLIENT_ID, "SmartEM_User"])
    expect_invalid(smartem_like, id_token, "wrong_token_type")
    expect_invalid(tw.Verifier(issuer), id_token, "wrong_token_type")
    # Even with the ID token's own audience configured, its typ gives it away.
    expect_invalid(tw.Verifier(issuer, audience=USER_CLIENT_ID), id_token, "wrong_token_type")
    # The resource server `app` (audience "app"): the ID token's aud is the client.
    expect_invalid(tw.Verifier(issuer, audience="app"), id_token, "bad_audience")
    # The refresh token is HMAC-signed: refused for its alg whatever the configuration.
    for verifier in (smartem_like, tw.Verifier(issuer), tw.Verifier(issuer, audience="app")):
        expect_invalid(verifier, refresh_token, "alg_not_allowed")
    # Over HTTP the resource server answers 401 invalid_token to both.
    for token in (id_token, refresh_token):
        answer = requests.get(
            f"{app_url}/me", headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT
        )
        assert answer.status_code == 401
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
