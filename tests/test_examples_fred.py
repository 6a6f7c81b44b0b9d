"""examples/fred: Agentic and Knowledge Flow under uvicorn, in one process, over a DevIdP set up
as Fred's realm `app` (groups granting `app` client roles, the audience mapper adding
`knowledge-flow`, the `agentic` service account with realm-management roles)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from _examples import load_example
from _uvicorn import serve
from tokenward.testing import DevIdP

AGENTIC_SECRET = "agentic-secret-value"


def load(name: str) -> ModuleType:
    return load_example(f"fred/{name}", "tokenward_example")


@pytest.fixture
def realm(monkeypatch: pytest.MonkeyPatch) -> Iterator[DevIdP]:
    for name in ("FRED_STRICT_ISSUER", "FRED_STRICT_AUDIENCE", "FRED_JWT_MAX_LIFETIME_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    with DevIdP(realm="app") as idp:
        for group, role in {"admins": "admin", "editors": "editor", "viewers": "viewer"}.items():
            idp.add_group(group, client_roles={"app": [role]})
        idp.add_client("app", audiences=["knowledge-flow"], groups_claim="full_path")
        idp.add_client("plain")  # no audience mapper
        idp.add_client("knowledge-flow", secret="kf-secret-value")
        idp.add_client(
            "agentic", secret=AGENTIC_SECRET, client_roles={"realm-management": ["view-users"]}
        )
        idp.add_user("alice", "pw", "alice@example.org", groups=["admins"])
        idp.add_user("carol", "pw", "carol@example.org", groups=["editors"])
        idp.add_user("dave", "pw", "dave@example.org")
        yield idp


def password_token(idp: DevIdP, username: str, client_id: str = "app") -> str:
    form = {
        "grant_type": "password",
        "client_id": client_id,
        "username": username,
        "password": "pw",
    }
    answer = httpx.post(idp.token_url, data=form, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def get(url: str, token: str, method: str = "GET") -> httpx.Response:
    return httpx.request(method, url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.fixture
def services(realm: DevIdP, tmp_path: Path) -> Iterator[dict[str, Any]]:
    kf_app = load("knowledge_flow").create_app(realm_url=realm.issuer)
    with serve(kf_app) as kf:
        agentic_app = load("agentic").create_app(
            realm_url=realm.issuer, knowledge_flow_url=kf, client_secret=AGENTIC_SECRET
        )
        with serve(agentic_app) as agentic:
            yield {"kf": kf, "agentic": agentic}


def test_agentic_forwards_the_user_to_knowledge_flow(
    realm: DevIdP, services: dict[str, Any]
) -> None:
    token = password_token(realm, "alice")
    answer = get(services["agentic"] + "/agentic/v1/me", token)
    assert answer.status_code == 200, answer.text
    me = answer.json()
    assert me["username"] == "alice" and me["email"] == "alice@example.org"
    assert me["roles"] == ["admin"]
    assert me["knowledge_flow"] == {k: me[k] for k in ("uid", "username", "email", "roles")}


def test_a_user_in_no_group_has_no_roles_and_rbac_denies(
    realm: DevIdP, services: dict[str, Any]
) -> None:
    token = password_token(realm, "dave")
    me = get(services["agentic"] + "/agentic/v1/me", token).json()
    assert me["roles"] == [] and me["knowledge_flow"]["roles"] == []
    denied = get(services["kf"] + "/knowledge-flow/v1/documents", token)
    assert denied.status_code == 403
    assert denied.json() == {"detail": "You are not allowed to read document."}


def test_knowledge_flow_rbac(realm: DevIdP, services: dict[str, Any]) -> None:
    kf = services["kf"]
    carol = password_token(realm, "carol")
    assert get(kf + "/knowledge-flow/v1/documents", carol).status_code == 200
    denied = get(kf + "/knowledge-flow/v1/documents/d1", carol, "DELETE")
    assert denied.status_code == 403
    assert denied.json() == {"detail": "You are not allowed to delete document."}
    alice = password_token(realm, "alice")
    assert get(kf + "/knowledge-flow/v1/documents/d1", alice, "DELETE").status_code == 204
    assert [d["id"] for d in get(kf + "/knowledge-flow/v1/documents", alice).json()] == ["d2"]


def test_strict_audience_refuses_a_token_without_knowledge_flow(
    realm: DevIdP, services: dict[str, Any]
) -> None:
    token = password_token(realm, "alice", client_id="plain")
    answer = get(services["kf"] + "/knowledge-flow/v1/me", token)
    assert answer.status_code == 401 and answer.json() == {"detail": "Invalid token"}
    # Agentic, with Fred's defaults (strict audience off), takes it, and its forward fails.
    assert get(services["agentic"] + "/agentic/v1/me", token).status_code == 502


def test_agentic_lists_users_with_its_service_account(
    realm: DevIdP, services: dict[str, Any]
) -> None:
    answer = get(services["agentic"] + "/agentic/v1/users", password_token(realm, "carol"))
    assert answer.status_code == 200, answer.text
    assert sorted(u["username"] for u in answer.json()) == ["alice", "carol", "dave"]
    assert realm.hits["token"] == 2  # carol's password grant, then one service token


def test_knowledge_flow_allowlist(realm: DevIdP, tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("alice@example.org\ncarol@example.org  # literal: matches nobody\n")
    app = load("knowledge_flow").create_app(realm_url=realm.issuer, allowlist_path=str(users))
    with serve(app) as kf:
        assert get(kf + "/knowledge-flow/v1/me", password_token(realm, "alice")).status_code == 200
        refused = get(kf + "/knowledge-flow/v1/me", password_token(realm, "carol"))
        assert refused.status_code == 403 and refused.json() == {"detail": "user_not_whitelisted"}


def test_two_apps_in_one_process_keep_their_own_settings(realm: DevIdP) -> None:
    kf = load("knowledge_flow")
    strict = kf.create_app(realm_url=realm.issuer)
    lax = kf.create_app(realm_url=realm.issuer, strict_audience=False)  # initialised last
    token = password_token(realm, "alice", client_id="plain")
    with serve(strict) as strict_url, serve(lax) as lax_url:
        assert get(strict_url + "/knowledge-flow/v1/me", token).status_code == 401
        assert get(lax_url + "/knowledge-flow/v1/me", token).status_code == 200


def test_agentic_with_exchange_hands_knowledge_flow_an_exchanged_token(realm: DevIdP) -> None:
    """`exchange_audience`: a user token meant for Agentic only (no `knowledge-flow` in `aud`)
    still reaches the strict Knowledge Flow, exchanged; without it, Knowledge Flow refuses."""
    realm.add_client("ui-to-agentic", audiences=["agentic"], groups_claim="full_path")
    realm.add_client(
        "agentic",
        secret=AGENTIC_SECRET,
        client_roles={"realm-management": ["view-users"]},
        token_exchange=True,
        audiences=["knowledge-flow"],
    )
    token = password_token(realm, "alice", client_id="ui-to-agentic")
    kf_app = load("knowledge_flow").create_app(realm_url=realm.issuer)
    agentic = load("agentic")
    with serve(kf_app) as kf:
        plain = agentic.create_app(
            realm_url=realm.issuer, knowledge_flow_url=kf, client_secret=AGENTIC_SECRET
        )
        exchanging = agentic.create_app(
            realm_url=realm.issuer,
            knowledge_flow_url=kf,
            client_secret=AGENTIC_SECRET,
            exchange_audience="knowledge-flow",
        )
        # With `app` as well: the exchanged token keeps only its audiences' client roles.
        with_roles = agentic.create_app(
            realm_url=realm.issuer,
            knowledge_flow_url=kf,
            client_secret=AGENTIC_SECRET,
            exchange_audience=["knowledge-flow", "app"],
        )
        with serve(plain) as plain_url, serve(exchanging) as exchanging_url:
            assert get(plain_url + "/agentic/v1/me", token).status_code == 502
            answer = get(exchanging_url + "/agentic/v1/me", token)
        with serve(with_roles) as with_roles_url:
            roles_answer = get(with_roles_url + "/agentic/v1/me", token)
    assert answer.status_code == 200, answer.text
    me = answer.json()
    assert me["roles"] == ["admin"]
    assert me["knowledge_flow"]["username"] == "alice"
    assert me["knowledge_flow"]["roles"] == [], "resource_access.app is not kept"
    assert roles_answer.json()["knowledge_flow"]["roles"] == ["admin"]
