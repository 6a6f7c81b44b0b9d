"""tokenward.rbac: the policy rules, and authorize/requires over real HTTP with the log line."""

import enum
import logging
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
import requests
from _uvicorn import serve
from conftest import MakeVerifier
from fastapi import Depends, FastAPI, HTTPException
from tokenward import rbac
from tokenward.fastapi import Authenticator, User
from tokenward.rbac import Policy
from tokenward.testing import DevIdP

TIMEOUT = 10

POLICY = Policy(
    {
        "admin": {"*": ["*"]},
        "editor": {"documents": ["read", "create", "update"], "tags": "read"},
        "viewer": {"documents": ["read"]},
        "auditor": {"*": ["read"]},
        "janitor": {"documents": ["*"]},
    }
)


def make_user(*roles: str, uid: str = "u1") -> User:
    return User.from_claims({"sub": uid, "realm_access": {"roles": list(roles)}}, "token")


# ---- the policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "action", "resource", "allowed"),
    [
        (["viewer"], "read", "documents", True),
        (["viewer"], "delete", "documents", False),
        (["viewer"], "read", "tags", False),
        (["editor"], "update", "documents", True),
        (["editor"], "read", "tags", True),
        (["editor"], "update", "tags", False),
        (["viewer", "editor"], "create", "documents", True),  # union of roles
        (["admin"], "delete", "anything", True),
        (["auditor"], "read", "anything", True),
        (["auditor"], "delete", "documents", False),
        (["janitor"], "purge", "documents", True),
        (["janitor"], "read", "tags", False),
        (["unknown-role"], "read", "documents", False),
        ([], "read", "documents", False),
        (["Viewer"], "read", "documents", False),  # names are exact
        (["viewer"], "*", "documents", False),  # "*" in a request is just a name
    ],
)
def test_policy_rules(roles: list[str], action: str, resource: str, allowed: bool) -> None:
    assert POLICY.is_allowed(roles, action, resource) is allowed


def test_permissions_are_the_union() -> None:
    assert POLICY.permissions(["viewer", "editor", "nobody"]) == {
        "documents": frozenset({"read", "create", "update"}),
        "tags": frozenset({"read"}),
    }
    assert POLICY.permissions([]) == {}


class Action(enum.Enum):
    READ = "read"
    DELETE = "delete"


class Resource(enum.Enum):
    DOCUMENTS = "documents"


def test_enums_are_accepted() -> None:
    policy = Policy({"viewer": {Resource.DOCUMENTS: [Action.READ]}})
    assert policy.is_allowed(["viewer"], Action.READ, Resource.DOCUMENTS)
    assert policy.is_allowed(["viewer"], "read", "documents")
    assert not policy.is_allowed(["viewer"], Action.DELETE, Resource.DOCUMENTS)


def test_bad_names_are_rejected() -> None:
    with pytest.raises(TypeError):
        Policy({"viewer": {"documents": [1]}})  # type: ignore[list-item]
    with pytest.raises(TypeError):
        POLICY.authorize(3, "documents")  # type: ignore[arg-type]


def test_check_logs_the_denial(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tokenward.rbac"):
        POLICY.check(make_user("viewer"), "read", "documents")
        assert caplog.records == []
        with pytest.raises(HTTPException) as info:
            POLICY.check(make_user("viewer", "guest", uid="u-42"), Action.DELETE, "documents")
    assert info.value.status_code == 403
    [record] = caplog.records
    assert record.name == "tokenward.rbac"
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "Authorization denied: user=u-42 roles=['viewer', 'guest'] action=delete resource=documents"
    )


# ---- the service-layer decorator -----------------------------------------------------------------


class DocumentService:
    @POLICY.requires("read", "documents")
    def list(self, user: User) -> list[str]:
        return ["a", "b"]

    @POLICY.requires("delete", "documents")
    async def delete(self, doc_id: str, *, user: User) -> str:
        return doc_id


def test_requires_on_sync_and_async_methods() -> None:
    service = DocumentService()
    assert service.list(make_user("viewer")) == ["a", "b"]
    with pytest.raises(HTTPException) as info:
        service.list(make_user("nobody"))
    assert info.value.status_code == 403
    with pytest.raises(TypeError, match="without a User"):
        service.list("not a user")  # type: ignore[arg-type]


async def test_requires_on_async_method() -> None:
    service = DocumentService()
    assert await service.delete("d1", user=make_user("admin")) == "d1"
    with pytest.raises(HTTPException):
        await service.delete("d1", user=make_user("viewer"))


# ---- over HTTP -----------------------------------------------------------------------------------


def make_app(auth: Authenticator) -> FastAPI:
    app = FastAPI()

    @app.get("/documents")
    async def list_documents(
        user: Annotated[
            User, Depends(POLICY.authorize("read", "documents", user_dependency=auth.user))
        ],
    ) -> dict[str, Any]:
        return {"documents": ["a"], "uid": user.uid}

    @app.delete(
        "/documents/{doc_id}",
        dependencies=[Depends(POLICY.authorize("delete", "documents", user_dependency=auth.user))],
    )
    async def delete_document(doc_id: str) -> dict[str, str]:
        return {"deleted": doc_id}

    @app.post("/tags")
    @POLICY.requires("create", "tags")
    async def create_tag(user: Annotated[User, Depends(auth.user)]) -> dict[str, str]:
        return {"created_by": user.uid}

    return app


@pytest.fixture
def base_url(make_verifier: MakeVerifier) -> Iterator[str]:
    auth = Authenticator(make_verifier(), role_clients=["fred-app"], allowlist=False)
    with serve(make_app(auth)) as url:
        yield url


def call(method: str, url: str, token: str | None = None) -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.request(method, url, headers=headers, timeout=TIMEOUT)


def test_allowed_and_denied_over_http(
    base_url: str, dev_idp: DevIdP, caplog: pytest.LogCaptureFixture
) -> None:
    viewer = dev_idp.mint(sub="v-1", realm_access={"roles": ["viewer"]})
    admin = dev_idp.mint(sub="a-1", realm_access={"roles": ["admin"]})
    with caplog.at_level(logging.WARNING, logger="tokenward.rbac"):
        response = call("GET", f"{base_url}/documents", viewer)
        assert response.status_code == 200
        assert response.json() == {"documents": ["a"], "uid": "v-1"}
        assert call("DELETE", f"{base_url}/documents/d9", admin).json() == {"deleted": "d9"}
        assert [r for r in caplog.records if r.name == "tokenward.rbac"] == []

        response = call("DELETE", f"{base_url}/documents/d9", viewer)
    assert response.status_code == 403
    assert response.json() == {"detail": "Permission denied"}
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')
    denials = [r.getMessage() for r in caplog.records if r.name == "tokenward.rbac"]
    assert denials == [
        "Authorization denied: user=v-1 roles=['viewer'] action=delete resource=documents"
    ]


def test_client_roles_count(base_url: str, dev_idp: DevIdP) -> None:
    token = dev_idp.mint(
        sub="e-1",
        realm_access={"roles": []},
        resource_access={"fred-app": {"roles": ["editor"]}, "other": {"roles": ["admin"]}},
    )
    assert call("GET", f"{base_url}/documents", token).status_code == 200
    # admin from a client that is not configured grants nothing
    assert call("DELETE", f"{base_url}/documents/x", token).status_code == 403


def test_unknown_and_missing_roles_get_nothing(base_url: str, dev_idp: DevIdP) -> None:
    for claims in ({"realm_access": {"roles": ["superuser"]}}, {"realm_access": None}):
        token = dev_idp.mint(**claims)
        assert call("GET", f"{base_url}/documents", token).status_code == 403


def test_unauthenticated_is_401_not_403(base_url: str) -> None:
    assert call("GET", f"{base_url}/documents").status_code == 401
    assert call("GET", f"{base_url}/documents", "garbage").status_code == 401


def test_decorator_on_endpoint(
    base_url: str, dev_idp: DevIdP, caplog: pytest.LogCaptureFixture
) -> None:
    admin = dev_idp.mint(sub="a-2", realm_access={"roles": ["admin"]})
    editor = dev_idp.mint(sub="e-2", realm_access={"roles": ["editor"]})
    assert call("POST", f"{base_url}/tags", admin).json() == {"created_by": "a-2"}
    with caplog.at_level(logging.WARNING, logger="tokenward.rbac"):
        assert call("POST", f"{base_url}/tags", editor).status_code == 403
    assert (
        "Authorization denied: user=e-2 roles=['editor'] action=create resource=tags"
        in caplog.messages
    )


# ---- the module-level policy ---------------------------------------------------------------------


@pytest.fixture
def module_policy() -> Iterator[None]:
    saved = rbac.get_policy()
    yield
    rbac.set_policy(saved)


def test_module_level_authorize_uses_the_current_policy(
    module_policy: None, make_verifier: MakeVerifier, dev_idp: DevIdP
) -> None:
    import tokenward.fastapi as twf

    saved = twf._default
    twf.configure(make_verifier(), allowlist=False)
    try:
        app = FastAPI()

        @app.get("/reports", dependencies=[Depends(rbac.authorize("read", "reports"))])
        async def reports() -> dict[str, bool]:
            return {"ok": True}

        token = dev_idp.mint(realm_access={"roles": ["analyst"]})
        with serve(app) as url:
            # Before a policy is set, the empty default denies everything.
            assert call("GET", f"{url}/reports", token).status_code == 403
            rbac.set_policy({"analyst": {"reports": ["read"]}})
            assert call("GET", f"{url}/reports", token).status_code == 200
    finally:
        twf._default = saved


def test_client_roles_only_like_fred(make_verifier: MakeVerifier, dev_idp: DevIdP) -> None:
    """With realm_roles=False a realm role named like a policy role grants nothing."""
    auth = Authenticator(
        make_verifier(), role_clients=["fred-app"], realm_roles=False, allowlist=False
    )
    token = dev_idp.mint(
        sub="r-1",
        realm_access={"roles": ["admin"]},
        resource_access={"fred-app": {"roles": ["viewer"]}},
    )
    with serve(make_app(auth)) as url:
        assert call("GET", f"{url}/documents", token).status_code == 200
        assert call("DELETE", f"{url}/documents/x", token).status_code == 403
