"""The DevIdP itself: Keycloak's paths and documents over real HTTP, its key ring, its token
endpoint, its faults and counters."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import tokenward as tw
from _helpers import claims_of, header_of
from tokenward.testing import DevIdP

Answer = tuple[int, dict[str, str], bytes]


def _conn(idp: DevIdP) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", idp.port, timeout=10)


def _request(
    idp: DevIdP,
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> Answer:
    own = conn is None
    conn = conn or _conn(idp)
    try:
        conn.request(method, urlsplit(url).path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        if own:
            conn.close()


def _get_json(idp: DevIdP, url: str) -> Any:
    status, _, body = _request(idp, "GET", url)
    assert status == 200
    return json.loads(body)


def _token_request(
    idp: DevIdP, form: dict[str, str], basic: tuple[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if basic is not None:
        raw = f"{basic[0]}:{basic[1]}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    status, _, body = _request(idp, "POST", idp.token_url, urlencode(form).encode(), headers)
    return status, json.loads(body)


# ---- addresses and documents -------------------------------------------------------------------


def test_fixture_gives_a_started_dls_realm(dev_idp: DevIdP) -> None:
    assert dev_idp.issuer == f"http://127.0.0.1:{dev_idp.port}/realms/dls"
    assert dev_idp.jwks_uri == dev_idp.issuer + "/protocol/openid-connect/certs"
    assert dev_idp.token_url == dev_idp.issuer + "/protocol/openid-connect/token"
    assert dev_idp.discovery_url == dev_idp.issuer + "/.well-known/openid-configuration"


def test_discovery_document_is_keycloak_shaped(dev_idp: DevIdP) -> None:
    doc = _get_json(dev_idp, dev_idp.discovery_url)
    assert doc["issuer"] == dev_idp.issuer
    assert doc["jwks_uri"] == dev_idp.jwks_uri
    assert doc["token_endpoint"] == dev_idp.token_url
    assert {"client_credentials", "password"} <= set(doc["grant_types_supported"])
    methods = set(doc["token_endpoint_auth_methods_supported"])
    assert {"client_secret_basic", "client_secret_post"} <= methods
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert dev_idp.hits["discovery"] == 1


def test_jwks_publishes_one_rs256_key_with_cache_control(dev_idp: DevIdP) -> None:
    status, headers, body = _request(dev_idp, "GET", dev_idp.jwks_uri)
    assert status == 200
    assert headers["cache-control"] == "max-age=300"
    keys = json.loads(body)["keys"]
    assert [(k["kid"], k["kty"], k["alg"], k["use"]) for k in keys] == [
        (dev_idp.current_kid, "RSA", "RS256", "sig")
    ]
    assert "d" not in keys[0] and "p" not in keys[0], "private members must never be published"
    dev_idp.jwks_max_age = 7
    assert _request(dev_idp, "GET", dev_idp.jwks_uri)[1]["cache-control"] == "max-age=7"


def test_http11_keep_alive_serves_many_requests_on_one_connection(dev_idp: DevIdP) -> None:
    conn = _conn(dev_idp)
    try:
        for url in (dev_idp.discovery_url, dev_idp.jwks_uri, dev_idp.jwks_uri):
            status, headers, body = _request(dev_idp, "GET", url, conn=conn)
            assert status == 200
            assert int(headers["content-length"]) == len(body)
            assert headers.get("connection", "").lower() != "close"
            sock = conn.sock
            assert sock is not None
        status, _, _ = _request(dev_idp, "GET", dev_idp.jwks_uri, conn=conn)
        assert conn.sock is sock, "the client had to reconnect: keep-alive not honoured"
    finally:
        conn.close()
    assert dev_idp.hits["jwks"] == 3


def test_unknown_paths_and_realms_are_404_and_not_counted(dev_idp: DevIdP) -> None:
    other_realm = dev_idp.jwks_uri.replace("/realms/dls/", "/realms/other/")
    for url in (other_realm, dev_idp.issuer + "/nope", dev_idp.base_url + "/"):
        assert _request(dev_idp, "GET", url)[0] == 404
    assert dict(dev_idp.hits) == {"discovery": 0, "jwks": 0, "token": 0}


# ---- minting and keys --------------------------------------------------------------------------


def test_mint_makes_keycloak_claims(dev_idp: DevIdP) -> None:
    token = dev_idp.mint()
    header, claims = header_of(token), claims_of(token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": dev_idp.current_kid}
    assert claims["iss"] == dev_idp.issuer
    assert (claims["sub"], claims["azp"], claims["aud"], claims["typ"]) == (
        "u1",
        "SmartEM_User",
        "account",
        "Bearer",
    )
    assert claims["exp"] - claims["iat"] == 300
    assert uuid.UUID(claims["jti"]).version == 4
    for name in ("scope", "preferred_username", "email", "resource_access", "groups"):
        assert name in claims
    assert isinstance(claims["realm_access"]["roles"], list)
    assert claims_of(dev_idp.mint())["jti"] != claims["jti"]


def test_mint_overrides_adds_and_removes_claims_and_header_members(dev_idp: DevIdP) -> None:
    token = dev_idp.mint(
        sub="bob",
        expires_in=-10,
        exp=None,
        aud=["account", "api"],
        groups=["/g"],
        headers={"typ": None, "x-extra": "1"},
    )
    claims = claims_of(token)
    assert "exp" not in claims
    assert claims["sub"] == "bob" and claims["aud"] == ["account", "api"]
    assert claims["groups"] == ["/g"]
    assert header_of(token) == {"alg": "RS256", "kid": dev_idp.current_kid, "x-extra": "1"}
    assert "azp" not in claims_of(dev_idp.mint(azp=None))
    expired = claims_of(dev_idp.mint(expires_in=-10))
    assert expired["exp"] < time.time() and expired["iat"] == expired["exp"] - 300


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "PS256", "RS512"])
def test_mint_with_another_alg_publishes_a_key_of_that_alg(
    dev_idp: DevIdP, verifier: tw.Verifier, alg: str
) -> None:
    token = dev_idp.mint(alg=alg)
    kid = header_of(token)["kid"]
    assert header_of(token)["alg"] == alg
    assert kid != dev_idp.current_kid and kid in dev_idp.kids
    published = {k["kid"]: k for k in dev_idp.jwks()["keys"]}
    assert published[kid]["alg"] == alg
    assert header_of(dev_idp.mint(alg=alg))["kid"] == kid, "the key of an alg is reused"
    assert verifier.verify(token)["sub"] == "u1"


def test_mint_with_a_known_kid_uses_that_key_and_an_unknown_kid_is_forged(
    dev_idp: DevIdP,
) -> None:
    old = dev_idp.current_kid
    new = dev_idp.rotate_keys()
    assert header_of(dev_idp.mint(kid=old))["kid"] == old
    forged = dev_idp.mint(kid="no-such-kid")
    assert header_of(forged)["kid"] == "no-such-kid"
    assert "no-such-kid" not in dev_idp.kids
    assert header_of(dev_idp.mint())["kid"] == new


def test_rotate_add_remove_and_extra_jwks(dev_idp: DevIdP) -> None:
    first = dev_idp.current_kid
    second = dev_idp.rotate_keys()
    assert dev_idp.current_kid == second and dev_idp.kids == [first, second]
    third = dev_idp.rotate_keys(keep_old=False)
    assert dev_idp.kids == [first, third]
    ec = dev_idp.add_key("ES256")
    dev_idp.remove_key(first)
    dev_idp.extra_jwks.append({"kty": "OKP", "crv": "Ed448", "kid": "x448", "x": "AA"})
    served = _get_json(dev_idp, dev_idp.jwks_uri)
    assert [k["kid"] for k in served["keys"]] == [third, ec, "x448"]
    assert served == dev_idp.jwks()
    with pytest.raises(KeyError):
        dev_idp.remove_key("never-published")


# ---- faults and counters -----------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["jwks", "discovery", "token"])
def test_faults_500_garbage_down_then_healthy(dev_idp: DevIdP, endpoint: str) -> None:
    url = {
        "jwks": dev_idp.jwks_uri,
        "discovery": dev_idp.discovery_url,
        "token": dev_idp.token_url,
    }[endpoint]
    method = "POST" if endpoint == "token" else "GET"
    form = b"grant_type=client_credentials&client_id=c&client_secret=s"
    body = form if endpoint == "token" else None
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    dev_idp.add_client("c", secret="s")

    dev_idp.set_fault(endpoint, "500")
    assert _request(dev_idp, method, url, body, headers)[0] == 500
    dev_idp.set_fault(endpoint, "garbage")
    status, _, raw = _request(dev_idp, method, url, body, headers)
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(raw)
    dev_idp.set_fault(endpoint, "down")
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        _request(dev_idp, method, url, body, headers)
    dev_idp.set_fault(endpoint, None)
    status, _, raw = _request(dev_idp, method, url, body, headers)
    assert status == 200 and json.loads(raw)
    assert dev_idp.hits[endpoint] == 4
    with pytest.raises(ValueError):
        dev_idp.set_fault(endpoint, "on-fire")
    with pytest.raises(ValueError):
        dev_idp.set_fault("userinfo", "down")


def test_slow_request_waits_until_healed(dev_idp: DevIdP) -> None:
    dev_idp.set_fault("jwks", "slow")
    answers: list[int] = []
    client = threading.Thread(
        target=lambda: answers.append(_request(dev_idp, "GET", dev_idp.jwks_uri)[0])
    )
    client.start()
    assert dev_idp.in_flight.wait_for("jwks", 1), "the slow request never arrived"
    assert answers == []
    dev_idp.set_fault("jwks", None)
    client.join(timeout=30)
    assert answers == [200]
    assert dev_idp.in_flight["jwks"] == 0


def test_close_returns_promptly_with_a_slow_request_pending() -> None:
    idp = DevIdP(realm="dls", slow_seconds=3600).start()
    idp.set_fault("jwks", "slow")
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            _request(idp, "GET", idp.jwks_uri)
        except (http.client.HTTPException, OSError) as exc:
            errors.append(exc)

    client = threading.Thread(target=fetch, daemon=True)
    client.start()
    assert idp.in_flight.wait_for("jwks", 1)
    closer = threading.Thread(target=idp.close, daemon=True)
    closer.start()
    closer.join(timeout=30)
    assert not closer.is_alive(), "close() waited for the slow request"
    client.join(timeout=30)
    assert len(errors) == 1, "the pending slow request should be dropped, not answered"
    idp.close()  # idempotent


def test_hits_count_every_request_from_many_threads(dev_idp: DevIdP) -> None:
    barrier = threading.Barrier(8)

    def fetch() -> None:
        barrier.wait()
        for _ in range(5):
            _request(dev_idp, "GET", dev_idp.jwks_uri)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert dev_idp.hits["jwks"] == 40


# ---- token endpoint ----------------------------------------------------------------------------


def test_client_credentials_post_and_basic(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    dev_idp.add_client("SmartEM_Agent", secret="dev-agent-secret", token_lifetime=120, roles=["a"])
    form = {"grant_type": "client_credentials"}
    status, post = _token_request(
        dev_idp, {**form, "client_id": "SmartEM_Agent", "client_secret": "dev-agent-secret"}
    )
    assert status == 200
    status, basic = _token_request(dev_idp, form, basic=("SmartEM_Agent", "dev-agent-secret"))
    assert status == 200
    assert post["token_type"] == "Bearer" and post["expires_in"] == 120
    a, b = verifier.verify(post["access_token"]), verifier.verify(basic["access_token"])
    assert a["sub"] == b["sub"], "a service account has one stable sub"
    assert uuid.UUID(a["sub"])
    assert a["azp"] == "SmartEM_Agent"
    assert a["preferred_username"] == "service-account-SmartEM_Agent"
    assert a["realm_access"]["roles"] == ["a"]
    assert a["exp"] - a["iat"] == 120
    assert dev_idp.hits["token"] == 2


def test_client_extra_claims_and_distinct_service_accounts(
    dev_idp: DevIdP, verifier: tw.Verifier
) -> None:
    dev_idp.add_client("one", secret="s1", tenant="t1", scope="custom")
    dev_idp.add_client("two", secret="s2", aud=None)
    form = {"grant_type": "client_credentials"}
    _, one = _token_request(dev_idp, form, basic=("one", "s1"))
    _, two = _token_request(dev_idp, form, basic=("two", "s2"))
    one_claims = verifier.verify(one["access_token"])
    two_claims = verifier.verify(two["access_token"])
    assert one_claims["tenant"] == "t1" and one_claims["scope"] == "custom"
    assert "aud" not in two_claims
    assert one_claims["sub"] != two_claims["sub"]


@pytest.mark.parametrize(
    ("form", "basic", "status", "error"),
    [
        ({"client_id": "agent", "client_secret": "wrong"}, None, 401, "invalid_client"),
        ({}, ("agent", "wrong"), 401, "invalid_client"),
        ({"client_id": "nobody", "client_secret": "x"}, None, 401, "invalid_client"),
        ({"client_id": "agent"}, None, 401, "invalid_client"),
        ({"client_id": "public-app"}, None, 400, "unauthorized_client"),
        ({"client_id": "agent", "client_secret": "s"}, ("agent", "s"), 400, "invalid_request"),
        (
            {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
            | {"client_assertion": "a.b.c", "client_id": "agent"},
            None,
            401,
            "invalid_client",
        ),
    ],
    ids=["bad-post", "bad-basic", "unknown", "no-secret", "public", "two-methods", "assertion"],
)
def test_client_credentials_errors(
    dev_idp: DevIdP,
    form: dict[str, str],
    basic: tuple[str, str] | None,
    status: int,
    error: str,
) -> None:
    dev_idp.add_client("agent", secret="s")
    dev_idp.add_client("public-app")
    got_status, body = _token_request(dev_idp, {"grant_type": "client_credentials", **form}, basic)
    assert (got_status, body["error"]) == (status, error)
    assert body["error_description"]


def test_grant_type_errors(dev_idp: DevIdP) -> None:
    dev_idp.add_client("agent", secret="s")
    creds = {"client_id": "agent", "client_secret": "s"}
    assert _token_request(dev_idp, {**creds, "grant_type": "authorization_code"}) == (
        400,
        {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"},
    )
    status, body = _token_request(dev_idp, creds)
    assert (status, body["error"]) == (400, "invalid_request")
    assert _request(dev_idp, "GET", dev_idp.token_url)[0] == 405


def test_password_grant(dev_idp: DevIdP, make_verifier: Any) -> None:
    dev_idp.add_client("SmartEM_User")
    dev_idp.add_user(
        "alice",
        password="pw",
        email="alice@example.org",
        roles=["viewer"],
        groups=["/viewers"],
        client_roles={"SmartEM_User": ["operator"]},
    )
    form = {"grant_type": "password", "client_id": "SmartEM_User", "username": "alice"}
    status, body = _token_request(dev_idp, {**form, "password": "pw", "scope": "openid"})
    assert status == 200
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    access = make_verifier().verify(body["access_token"])
    assert access["preferred_username"] == "alice"
    assert access["email"] == "alice@example.org"
    assert access["realm_access"]["roles"] == ["viewer"]
    assert access["resource_access"] == {"SmartEM_User": {"roles": ["operator"]}}
    assert access["groups"] == ["/viewers"]
    assert access["azp"] == "SmartEM_User"
    any_type = make_verifier(token_types=None)
    refresh = any_type.verify(body["refresh_token"])
    id_token = any_type.verify(body["id_token"])
    assert refresh["typ"] == "Refresh" and id_token["typ"] == "ID"
    assert refresh["sub"] == id_token["sub"] == access["sub"]
    assert id_token["aud"] == "SmartEM_User"

    status, body = _token_request(dev_idp, {**form, "password": "nope"})
    assert (status, body["error"]) == (401, "invalid_grant")
    status, body = _token_request(dev_idp, {**form, "client_id": "ghost", "password": "pw"})
    assert (status, body["error"]) == (401, "invalid_client")


def test_secrets_do_not_show_in_repr(dev_idp: DevIdP) -> None:
    dev_idp.add_client("agent", secret="super-secret-value")
    dev_idp.add_user("alice", password="user-password-value")
    text = repr(dev_idp)
    assert dev_idp.issuer in text
    assert "super-secret-value" not in text and "user-password-value" not in text
