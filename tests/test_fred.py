"""`tokenward.fred` over real HTTP (DevIdP, uvicorn): the intent of each of Fred's security
tests (test_oidc_strict, test_oidc_token_lifetime, test_whitelist_access_control,
test_service_agent), and Fred's RBAC-era authorization answers."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tokenward as tw
from _uvicorn import serve
from fastapi import Depends, FastAPI, HTTPException
from tokenward import fred
from tokenward.fred import Action, FredSecurity, FredSettings, KeycloakUser, Resource
from tokenward.testing import DevIdP

CLIENT = "app"
STRICT = FredSettings(strict_issuer=True, strict_audience=True)


@pytest.fixture
def idp() -> Iterator[DevIdP]:
    with DevIdP(realm="app") as idp:
        yield idp


def _app(security: FredSecurity) -> FastAPI:
    app = FastAPI()
    fred.register_exception_handlers(app)
    current_user = Depends(security.get_current_user)

    @app.get("/me")
    async def me(user: KeycloakUser = current_user) -> KeycloakUser:
        return user

    @app.delete("/documents/{doc_id}")
    async def delete(doc_id: str, user: KeycloakUser = current_user) -> str:
        fred.authorize_or_raise(user, Action.DELETE, Resource.DOCUMENTS)
        return doc_id

    return app


def _security(idp: DevIdP, settings: FredSettings = STRICT, **options: Any) -> FredSecurity:
    return FredSecurity(
        idp.issuer, CLIENT, settings=settings, allowlist=options.pop("allowlist", False), **options
    )


@pytest.fixture
def strict(idp: DevIdP) -> Iterator[str]:
    with serve(_app(_security(idp))) as url:
        yield url


def _get(url: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(url + "/me", headers=headers, timeout=10)


def _mint(idp: DevIdP, **claims: Any) -> str:
    claims.setdefault("aud", CLIENT)
    return idp.mint(**claims)


# ---- test_oidc_strict ----------------------------------------------------------------------------


def test_strict_accepts_the_exact_issuer_and_audience(idp: DevIdP, strict: str) -> None:
    answer = _get(strict, _mint(idp, sub="u-1", preferred_username="alice"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["uid"] == "u-1" and answer.json()["username"] == "alice"


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "some-other-client"},
        {"iss": "http://evil/realms/app"},
        {"iss": "PREFIX.evil.com"},  # the realm URL plus a suffix: exact match, not a prefix
    ],
)
def test_strict_rejects_another_audience_or_issuer(
    idp: DevIdP, strict: str, claims: dict[str, Any]
) -> None:
    if claims.get("iss") == "PREFIX.evil.com":
        claims = {"iss": idp.issuer + ".evil.com"}
    answer = _get(strict, _mint(idp, **claims))
    assert answer.status_code == 401
    assert answer.json() == {"detail": "Invalid token"}
    assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_fred_defaults_check_neither_issuer_nor_audience(idp: DevIdP) -> None:
    """What strict-audience-off costs: a token of another client (or realm) of the same keys."""
    with serve(_app(_security(idp, FredSettings()))) as url:
        assert _get(url, _mint(idp, aud="some-other-client")).status_code == 200
        assert _get(url, _mint(idp, iss="http://elsewhere/realms/x")).status_code == 200
        # The signature still is checked.
        with DevIdP(realm="app") as impostor:
            assert _get(url, impostor.mint(aud=CLIENT)).status_code == 401


def test_a_groups_claim_is_accepted_and_carried(idp: DevIdP, strict: str) -> None:
    answer = _get(strict, _mint(idp, sub="u-4", groups=["/thales", "/admins"]))
    assert answer.status_code == 200
    assert answer.json()["groups"] == ["/thales", "/admins"]


def test_roles_are_the_client_roles_of_the_client(idp: DevIdP, strict: str) -> None:
    token = _mint(
        idp,
        realm_access={"roles": ["offline_access"]},
        resource_access={CLIENT: {"roles": ["editor"]}, "other": {"roles": ["admin"]}},
    )
    assert _get(strict, token).json()["roles"] == ["editor"]
    assert _get(strict, _mint(idp)).json()["roles"] == []


def test_no_token_is_fred_401(strict: str) -> None:
    answer = _get(strict, None)
    assert answer.status_code == 401
    assert answer.json() == {"detail": "No authentication token provided"}
    assert answer.headers["www-authenticate"] == "Bearer"


def test_id_and_refresh_tokens_are_refused(idp: DevIdP, strict: str) -> None:
    for typ in ("ID", "Refresh"):
        assert _get(strict, _mint(idp, typ=typ)).status_code == 401


def test_the_raw_token_is_never_serialised(idp: DevIdP, strict: str) -> None:
    token = _mint(idp, sub="u-9", email="u9@example.org")
    answer = _get(strict, token)
    assert token not in answer.text and answer.json()["email"] == "u9@example.org"
    user = fred.FredSecurity(idp.issuer, CLIENT, settings=STRICT).decode_jwt(token)
    assert token not in repr(user) and token not in str(user.model_dump())
    assert "u9@example.org" not in repr(user)
    assert user.bearer.headers == {"Authorization": f"Bearer {token}"}


# ---- test_oidc_token_lifetime --------------------------------------------------------------------


def test_a_token_within_the_lifetime_ceiling_is_accepted(idp: DevIdP, strict: str) -> None:
    now = int(time.time())
    assert _get(strict, _mint(idp, iat=now, exp=now + 300)).status_code == 200


def test_a_token_over_the_lifetime_ceiling_is_rejected(idp: DevIdP, strict: str) -> None:
    now = int(time.time())
    answer = _get(strict, _mint(idp, iat=now, exp=now + 7200))
    assert answer.status_code == 401
    assert answer.json() == {"detail": "Token lifetime exceeds the maximum permitted duration"}


def test_exp_before_iat_is_rejected(idp: DevIdP) -> None:
    settings = dataclasses.replace(STRICT, clock_skew=60)
    now = int(time.time())
    with serve(_app(_security(idp, settings))) as url:
        answer = _get(url, _mint(idp, iat=now + 30, exp=now + 10))
    assert answer.status_code == 401
    assert answer.json() == {"detail": "Token has invalid iat/exp claims"}


def test_a_token_without_iat_skips_the_ceiling(idp: DevIdP, strict: str) -> None:
    assert _get(strict, _mint(idp, iat=None, expires_in=7200)).status_code == 200


def test_the_ceiling_comes_from_the_environment(
    idp: DevIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRED_JWT_MAX_LIFETIME_SECONDS", "60")
    monkeypatch.setenv("FRED_STRICT_AUDIENCE", "true")
    settings = FredSettings.from_env()
    assert settings.max_lifetime == 60 and settings.strict_audience and not settings.strict_issuer
    now = int(time.time())
    with serve(_app(FredSecurity(idp.issuer, CLIENT, allowlist=False))) as url:
        assert _get(url, _mint(idp, iat=now, exp=now + 300)).status_code == 401
        assert _get(url, _mint(idp, iat=now, exp=now + 60)).status_code == 200


def test_an_expired_token_gets_fred_detail(idp: DevIdP, strict: str) -> None:
    answer = _get(strict, _mint(idp, expires_in=-3600))
    assert answer.status_code == 401 and answer.json() == {"detail": "Token has expired"}


@pytest.mark.parametrize(
    ("name", "value"),
    [("FRED_STRICT_ISSUER", "maybe"), ("FRED_JWT_CLOCK_SKEW", "ten"), ("FRED_JWT_CACHE_SIZE", "x")],
)
def test_a_bad_environment_value_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(tw.ConfigError, match=name) as info:
        FredSettings.from_env()
    assert info.value.setting == name


def test_a_non_positive_ceiling_is_a_config_error(idp: DevIdP) -> None:
    with pytest.raises(tw.ConfigError, match="FRED_JWT_MAX_LIFETIME_SECONDS"):
        FredSecurity(idp.issuer, CLIENT, settings=FredSettings(max_lifetime=0))


def test_decode_jwt_is_sync_and_raises_fred_http_exception(idp: DevIdP) -> None:
    fred.initialize_user_security(fred.UserSecurity(realm_url=idp.issuer, client_id=CLIENT))
    assert fred.get_keycloak_url() == idp.issuer and fred.get_keycloak_client_id() == CLIENT
    assert fred.decode_jwt(_mint(idp, sub="u-7")).uid == "u-7"
    with pytest.raises(HTTPException) as info:
        fred.decode_jwt(_mint(idp, expires_in=-3600))
    assert info.value.status_code == 401 and info.value.detail == "Token has expired"
    assert fred.split_realm_url(idp.issuer + "/") == (idp.base_url, "app")
    with pytest.raises(ValueError, match="realms"):
        fred.split_realm_url("http://host/auth")


# ---- test_whitelist_access_control ---------------------------------------------------------------


@pytest.fixture
def whitelist(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "users.txt"
    fred.set_whitelist_path(path)
    yield path
    fred.set_whitelist_path(None)


def test_the_whitelist_is_parsed_as_fred_parses_it(whitelist: Path) -> None:
    whitelist.write_text(
        "# team\n\n  ALICE@Example.COM  \nbob@example.com  # note\n", encoding="utf-8"
    )
    assert fred.retrieve_authorized_users() == frozenset(
        {"alice@example.com", "bob@example.com  # note"}
    )
    assert fred.is_email_whitelisted("alice@example.com")
    assert fred.is_email_whitelisted("ALICE@EXAMPLE.COM")
    assert not fred.is_email_whitelisted("bob@example.com")  # the literal entry matches nothing


def test_membership_is_false_while_the_whitelist_is_off(whitelist: Path) -> None:
    assert not fred.is_whitelist_active()
    assert fred.is_email_whitelisted("alice@example.com") is False
    whitelist.write_text("# only comments\n", encoding="utf-8")
    assert not fred.is_whitelist_active() and fred.retrieve_authorized_users() == frozenset()


def test_membership_answers(whitelist: Path) -> None:
    whitelist.write_text("alice@example.com\n", encoding="utf-8")
    assert fred.is_whitelist_active()
    assert fred.is_email_whitelisted("alice@example.com") is True
    assert fred.is_email_whitelisted("bob@example.com") is False
    assert fred.is_email_whitelisted(None) is False and fred.is_email_whitelisted("") is False
    alice = KeycloakUser(uid="u1", username="alice", email="alice@example.com", roles=[])
    bob = KeycloakUser(uid="u2", username="bob", email="bob@example.com", roles=[])
    assert fred.is_user_whitelisted(alice) and not fred.is_user_whitelisted(bob)


def test_the_whitelist_gates_requests(idp: DevIdP, whitelist: Path) -> None:
    with serve(_app(FredSecurity(idp.issuer, CLIENT, settings=STRICT))) as url:
        # Off (no file): everyone authenticated passes.
        assert _get(url, _mint(idp, email="bob@example.com")).status_code == 200
        whitelist.write_text("alice@example.com\n", encoding="utf-8")
        assert _get(url, _mint(idp, email="Alice@example.com")).status_code == 200
        refused = _get(url, _mint(idp, email="bob@example.com"))
        assert refused.status_code == 403 and refused.json() == {"detail": "user_not_whitelisted"}
        assert _get(url, _mint(idp, email=None)).status_code == 403


# ---- test_service_agent --------------------------------------------------------------------------


def test_service_agents_are_recognised() -> None:
    def user(roles: list[str]) -> KeycloakUser:
        return KeycloakUser(uid="u-1", username="u", roles=roles, email="u@t.com")

    assert fred.is_service_agent(user([fred.SERVICE_AGENT_ROLE]))
    assert fred.is_service_agent(user(["viewer", "service_agent"]))
    assert not fred.is_service_agent(user(["admin"]))
    assert not fred.is_service_agent(user(["editor", "viewer"])) and not fred.is_service_agent(
        user([])
    )


# ---- RBAC era --------------------------------------------------------------------------------------


def test_a_denial_is_403_with_fred_text_and_logged_at_warning(
    idp: DevIdP, strict: str, caplog: pytest.LogCaptureFixture
) -> None:
    editor = _mint(idp, sub="ed-1", resource_access={CLIENT: {"roles": ["editor"]}})
    admin = _mint(idp, sub="ad-1", resource_access={CLIENT: {"roles": ["admin"]}})
    with caplog.at_level(logging.WARNING, logger="tokenward.rbac"):
        answer = httpx.delete(
            strict + "/documents/d1", headers={"Authorization": f"Bearer {editor}"}
        )
    assert answer.status_code == 403
    assert answer.json() == {"detail": "You are not allowed to delete document."}
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        "Authorization denied: user=ed-1 roles=['editor'] action=delete resource=document" in lines
    )
    ok = httpx.delete(strict + "/documents/d1", headers={"Authorization": f"Bearer {admin}"})
    assert ok.status_code == 200 and ok.json() == "d1"


def test_the_denial_text_reads_colons_and_underscores_as_spaces() -> None:
    err = fred.AuthorizationError("u", Action.READ_GLOBAL.value, Resource.MESSAGE_ATTACHMENTS)
    assert fred.denial_detail(err) == "You are not allowed to read global message attachments."
    assert (
        isinstance(err, PermissionError)
        and str(err) == "Not authorized to read:global message_attachments"
    )


def test_the_role_table_and_helpers() -> None:
    def user(*roles: str) -> KeycloakUser:
        return KeycloakUser(uid="u", username="u", roles=list(roles))

    assert fred.is_authorized(user("admin"), Action.PROCESS, Resource.DOCUMENTS)
    assert not fred.is_authorized(user("editor"), Action.PROCESS, Resource.DOCUMENTS)
    assert fred.is_authorized(user("editor"), Action.UPDATE, Resource.DOCUMENTS)
    assert not fred.is_authorized(user("viewer"), Action.CREATE, Resource.TAGS)
    assert fred.is_authorized(user("viewer"), Action.DELETE, Resource.SESSIONS)
    assert not fred.is_authorized(user("service_agent"), Action.READ, Resource.SESSIONS)
    assert not fred.is_authorized(user(), Action.READ, Resource.TAGS)
    assert not fred.is_authorized(user("unknown"), Action.READ, Resource.TAGS)
    perms = fred.RBACProvider().list_permissions_for_user(user("service_agent", "viewer"))
    assert perms[:6] == [
        "tag:read", "document:read", "tables_database:read", "table:read", "opensearch:read", "metrics:read",
    ]  # fmt: skip
    assert len(perms) == len(set(perms)) and "sessions:delete" in perms
    fred.require_admin(user("admin"))
    with pytest.raises(fred.AuthorizationError) as info:
        fred.require_admin(user("editor"))
    assert info.value.resource is Resource.ORGANIZATION and info.value.action == "admin"


def test_the_authorize_decorator(caplog: pytest.LogCaptureFixture) -> None:
    class Service:
        @fred.authorize(Action.READ, Resource.DOCUMENTS)
        def read(self, user: KeycloakUser) -> str:
            return "read"

        @fred.authorize(Action.DELETE, Resource.DOCUMENTS)
        async def delete(self, *, user: KeycloakUser) -> str:
            return "deleted"

        @fred.authorize(Action.READ, Resource.DOCUMENTS)
        def anonymous(self) -> str:
            return "never"

    import asyncio

    viewer = KeycloakUser(uid="v", username="v", roles=["viewer"])
    assert Service().read(viewer) == "read"
    with pytest.raises(fred.AuthorizationError):
        asyncio.run(Service().delete(user=viewer))
    with pytest.raises(ValueError, match="anonymous"):
        Service().anonymous()


# ---- service-to-service tokens -------------------------------------------------------------------


def test_m2m_provider_and_auth_over_http(
    idp: DevIdP, strict: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    idp.add_client("knowledge", secret="kf-secret-value", aud=CLIENT)
    monkeypatch.setenv("KF_SECRET", "kf-secret-value")
    config = fred.M2MAuthConfig(
        keycloak_realm_url=idp.issuer, client_id="knowledge", secret_env="KF_SECRET"
    )
    assert config.token_url == idp.token_url
    provider = fred.M2MTokenProvider(config)
    assert "kf-secret-value" not in repr(provider)

    async def call() -> tuple[str, httpx.Response, httpx.Response]:
        token = await provider.get_token()
        async with httpx.AsyncClient(auth=fred.M2MBearerAuth(provider)) as client:
            return token, await client.get(strict + "/me"), await client.get(strict + "/me")

    import asyncio

    token, first, second = asyncio.run(call())
    assert (
        first.status_code == 200
        and first.json()["uid"] == tw.Verifier(idp.issuer).verify(token)["sub"]
    )
    assert second.status_code == 200
    assert idp.hits["token"] == 1  # one token, reused


def test_m2m_provider_without_its_secret_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    config = fred.M2MAuthConfig(
        keycloak_realm_url="http://kc/realms/r", client_id="c", secret_env="NO_SUCH_SECRET"
    )
    import asyncio

    with pytest.raises(tw.ConfigError, match="NO_SUCH_SECRET"):
        asyncio.run(fred.M2MTokenProvider(config).get_token())


def test_client_credentials_provider_and_outbound_bearer(idp: DevIdP, strict: str) -> None:
    import requests

    idp.add_client("agentic", secret="ag-secret-value", aud=CLIENT)
    provider = fred.ClientCredentialsProvider(
        keycloak_base=idp.base_url,
        realm="app",
        client_id="agentic",
        client_secret="ag-secret-value",
    )
    assert provider.token_url == idp.token_url and "ag-secret-value" not in repr(provider)
    first = provider()
    assert provider() == first and idp.hits["token"] == 1
    provider.force_refresh()
    assert provider() != first and idp.hits["token"] == 2
    answer = requests.get(strict + "/me", auth=fred.BearerAuth(provider), timeout=10)
    assert answer.status_code == 200
    fixed = requests.get(strict + "/me", auth=fred.BearerAuth(provider()), timeout=10)
    assert fixed.status_code == 200
    with pytest.raises(tw.ConfigError, match="verify"):
        fred.ClientCredentialsProvider(
            keycloak_base=idp.base_url, realm="app", client_id="a", client_secret="s", verify=False
        )


def test_make_m2m_asgi_client_calls_the_app_in_process(idp: DevIdP) -> None:
    app = _app(_security(idp))
    import asyncio

    async def call() -> httpx.Response:
        async with fred.make_m2m_asgi_client(app, httpx.Auth()) as client:
            return await client.get("/me")

    assert asyncio.run(call()).status_code == 401
