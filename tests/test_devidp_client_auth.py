"""The DevIdP's JWT-assertion client authentication (private_key_jwt, client_secret_jwt): it
checks the signature, aud, exp, iss/sub and jti reuse. Assertions are built by hand here, so the
checks are tested independently of TokenClient."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest
from _helpers import b64url, b64url_json
from tokenward._native import SigningKey
from tokenward.testing import DevIdP

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def post(idp: DevIdP, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    body = urlencode({"grant_type": "client_credentials", **form}).encode()
    request = Request(
        idp.token_url, body, {"Content-Type": "application/x-www-form-urlencoded"}, method="POST"
    )
    try:
        with urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except HTTPError as error:
        return error.code, json.loads(error.read())


def claims_for(idp: DevIdP, client_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": idp.token_url,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def signed(key: SigningKey, claims: dict[str, Any]) -> str:
    return key.sign(json.dumps(claims), None)


def hs256(secret: str, claims: dict[str, Any], alg: str = "HS256") -> str:
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    signing_input = f"{b64url_json({'alg': alg, 'typ': 'JWT'})}.{b64url_json(claims)}"
    mac = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(mac)}"


def assertion_form(assertion: str, client_id: str | None = None) -> dict[str, str]:
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    if client_id is not None:
        form["client_id"] = client_id
    return form


@pytest.fixture
def key(dev_idp: DevIdP) -> SigningKey:
    key = SigningKey.generate("ES256")
    dev_idp.add_client("jwt-agent", jwks=key, token_lifetime=120)
    return key


def test_discovery_lists_the_assertion_methods(dev_idp: DevIdP) -> None:
    with urlopen(dev_idp.discovery_url, timeout=10) as response:
        methods = json.loads(response.read())["token_endpoint_auth_methods_supported"]
    assert {"private_key_jwt", "client_secret_jwt"} <= set(methods)


def test_client_keys_are_served_without_private_members(dev_idp: DevIdP) -> None:
    key = SigningKey.generate("RS256")
    private_jwk = {**key.public_jwk(), "d": "secret-d", "p": "secret-p"}
    dev_idp.add_client("jwt-agent", jwks={"keys": [private_jwk]})
    with urlopen(dev_idp.client_jwks_uri("jwt-agent"), timeout=10) as response:
        served = json.loads(response.read())
    assert served == {"keys": [key.public_jwk()]}


def test_private_key_jwt_is_accepted_once(dev_idp: DevIdP, key: SigningKey) -> None:
    assertion = signed(key, claims_for(dev_idp, "jwt-agent"))
    status, body = post(dev_idp, assertion_form(assertion, "jwt-agent"))
    assert status == 200, body
    assert body["expires_in"] == 120
    status, body = post(dev_idp, assertion_form(assertion, "jwt-agent"))
    assert (status, body["error"]) == (401, "invalid_client")
    assert "reuse" in body["error_description"]


def test_private_key_jwt_aud_may_be_the_issuer(dev_idp: DevIdP, key: SigningKey) -> None:
    assertion = signed(key, claims_for(dev_idp, "jwt-agent", aud=dev_idp.issuer))
    assert post(dev_idp, assertion_form(assertion))[0] == 200


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "http://elsewhere/token"},
        {"exp": int(time.time()) - 3600},
        {"exp": None},
        {"jti": None},
        {"iss": "someone-else"},
        {"sub": "someone-else"},
    ],
    ids=["aud", "expired", "no-exp", "no-jti", "iss", "sub"],
)
def test_private_key_jwt_claims_are_checked(
    dev_idp: DevIdP, key: SigningKey, changes: dict[str, Any]
) -> None:
    assertion = signed(key, claims_for(dev_idp, "jwt-agent", **changes))
    status, body = post(dev_idp, assertion_form(assertion, "jwt-agent"))
    assert (status, body["error"]) == (401, "invalid_client")


def test_private_key_jwt_signature_is_checked(dev_idp: DevIdP, key: SigningKey) -> None:
    other = SigningKey.generate("ES256", kid=key.kid)  # same kid, different key
    assertion = signed(other, claims_for(dev_idp, "jwt-agent"))
    status, body = post(dev_idp, assertion_form(assertion, "jwt-agent"))
    assert (status, body["error"]) == (401, "invalid_client")


def test_form_client_id_must_match(dev_idp: DevIdP, key: SigningKey) -> None:
    dev_idp.add_client("other", secret="s")
    assertion = signed(key, claims_for(dev_idp, "jwt-agent"))
    assert post(dev_idp, assertion_form(assertion, "other"))[0] == 401


def test_keys_from_the_clients_own_jwks_uri(dev_idp: DevIdP, key: SigningKey) -> None:
    dev_idp.add_client("hosted", jwks_uri=dev_idp.client_jwks_uri("jwt-agent"))
    assertion = signed(key, claims_for(dev_idp, "hosted"))
    assert post(dev_idp, assertion_form(assertion, "hosted"))[0] == 200


def test_a_key_only_client_has_no_secret(dev_idp: DevIdP, key: SigningKey) -> None:
    status, body = post(dev_idp, {"client_id": "jwt-agent", "client_secret": ""})
    assert (status, body["error"]) == (401, "invalid_client")
    assertion = hs256("", claims_for(dev_idp, "jwt-agent"))
    assert post(dev_idp, assertion_form(assertion, "jwt-agent"))[0] == 401


def test_a_secret_only_client_cannot_use_private_key_jwt(dev_idp: DevIdP) -> None:
    dev_idp.add_client("agent", secret="s")
    assertion = signed(SigningKey.generate("RS256"), claims_for(dev_idp, "agent"))
    status, body = post(dev_idp, assertion_form(assertion, "agent"))
    assert (status, body["error"]) == (401, "invalid_client")


def test_client_secret_jwt(dev_idp: DevIdP) -> None:
    dev_idp.add_client("agent", secret="shared-secret")
    claims = claims_for(dev_idp, "agent")
    assert post(dev_idp, assertion_form(hs256("shared-secret", claims)))[0] == 200
    status, body = post(dev_idp, assertion_form(hs256("shared-secret", claims)))
    assert (status, body["error"]) == (401, "invalid_client"), "jti reuse"
    hs512 = hs256("shared-secret", claims_for(dev_idp, "agent"), alg="HS512")
    assert post(dev_idp, assertion_form(hs512))[0] == 200


@pytest.mark.parametrize(
    ("secret", "changes"),
    [
        ("wrong-secret", {}),
        ("shared-secret", {"aud": "http://elsewhere/token"}),
        ("shared-secret", {"exp": int(time.time()) - 3600}),
        ("shared-secret", {"iat": int(time.time()) + 3600}),
        ("shared-secret", {"jti": None}),
        ("shared-secret", {"iss": "x"}),
    ],
    ids=["secret", "aud", "expired", "future", "no-jti", "iss"],
)
def test_client_secret_jwt_is_checked(
    dev_idp: DevIdP, secret: str, changes: dict[str, Any]
) -> None:
    dev_idp.add_client("agent", secret="shared-secret")
    assertion = hs256(secret, claims_for(dev_idp, "agent", **changes))
    status, body = post(dev_idp, assertion_form(assertion, "agent"))
    assert (status, body["error"]) == (401, "invalid_client")
