"""Hostile servers (issue 11, items 1, 3, 4 and 5): a token endpoint that redirects, discovery
documents for another issuer, key sets that redirect to another origin, and answers far larger
than any real one. Each IdP here is a small scripted server on 127.0.0.1 (`_hostile_server`),
which records every request, so the tests can prove what reached which origin."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import tokenward as tw
from _hostile_server import Answer, HostileServer, Stream, hostile_server, redirect
from tokenward._native import SigningKey

REALM = "/realms/r"
CERTS = REALM + "/protocol/openid-connect/certs"
TOKEN = REALM + "/protocol/openid-connect/token"
DISCOVERY = REALM + "/.well-known/openid-configuration"
SECRET = "hostile-test-secret-5b1e"
MIB = 1 << 20
#: What the server may hand over before the client's hang-up stops it: the limit plus what the
#: socket buffers of both ends take. Far below what the streams would send (512 MiB).
STREAM_BOUND = 48 * MIB


@pytest.fixture
def idp() -> Iterator[HostileServer]:
    with hostile_server() as server:
        yield server


@pytest.fixture
def evil() -> Iterator[HostileServer]:
    """Another origin (another port), where nothing of ours may arrive."""
    with hostile_server() as server:
        yield server


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="tokenward")
    return caplog


def issuer_of(server: HostileServer) -> str:
    return server.url(REALM)


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.public_jwk() for k in keys]}


def mint(key: SigningKey, issuer: str, sub: str = "u1") -> str:
    claims = {"iss": issuer, "sub": sub, "exp": int(time.time()) + 300, "iat": int(time.time())}
    return key.sign(json.dumps(claims))


def discovery(server: HostileServer, **members: str) -> dict[str, str]:
    return {"issuer": issuer_of(server)} | members


def verifier(server: HostileServer, **settings: Any) -> tw.Verifier:
    settings.setdefault("http_timeout", 5.0)
    return tw.Verifier(issuer_of(server), **settings)


@pytest.fixture(scope="module")
def good_key() -> SigningKey:
    return SigningKey.generate("ES256", "good")


@pytest.fixture(scope="module")
def evil_key() -> SigningKey:
    return SigningKey.generate("ES256", "evil")


# ---- item 1: the token endpoint never redirects credentials -------------------------------------


def _credentials(method: str) -> dict[str, Any]:
    if method == "private_key_jwt":
        return {"private_key": SigningKey.generate("ES256", "agent-key").private_pem()}
    return {"client_secret": SECRET, "auth_method": method}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize(
    "method",
    ["client_secret_post", "client_secret_basic", "client_secret_jwt", "private_key_jwt"],
)
def test_a_redirecting_token_endpoint_gets_no_second_request(
    idp: HostileServer, evil: HostileServer, status: int, method: str
) -> None:
    evil.routes[TOKEN] = Answer(200, {"access_token": "stolen", "token_type": "Bearer"})
    idp.routes[TOKEN] = redirect(evil.url(TOKEN), status)
    client = tw.TokenClient(idp.url(TOKEN), client_id="agent", timeout=5, **_credentials(method))
    with pytest.raises(tw.TokenRequestError) as info:
        client.get_token()
    e = info.value
    assert (e.status, e.retryable, e.error) == (status, False, None)
    assert "redirect" in str(e)
    assert SECRET not in f"{e} {e!r}"
    assert evil.seen == [], "nothing reached the other origin"
    (sent,) = idp.requests_to(TOKEN)
    assert sent.method == "POST"
    assert client.stats()["token_requests"] == 1, "a redirect is final: no retry"


def test_a_redirect_named_by_discovery_is_not_followed_either(
    idp: HostileServer, evil: HostileServer
) -> None:
    idp.routes[DISCOVERY] = Answer(200, discovery(idp, token_endpoint=idp.url("/tok")))
    idp.routes["/tok"] = redirect(evil.url("/tok"), 307)
    client = tw.TokenClient(issuer=issuer_of(idp), client_id="agent", client_secret=SECRET)
    with pytest.raises(tw.TokenRequestError) as info:
        client.get_token()
    assert info.value.status == 307
    assert evil.seen == []


# ---- item 1: our hooks never carry a bearer token to another origin ----------------------------


class Tokens:
    """A TokenSource handing out tok-0, tok-1, ...; counts invalidations."""

    def __init__(self) -> None:
        self.issued = 0
        self.invalidated = 0

    def current(self) -> str:
        return f"tok-{self.issued}"

    def get_token(self) -> str:
        return self.current()

    async def get_token_async(self) -> str:
        return self.current()

    def invalidate(self, token: str | None = None) -> bool:
        self.invalidated += 1
        self.issued += 1
        return True


def _services(idp: HostileServer, evil: HostileServer, evil_status: int, status: int) -> str:
    """`/api` on idp redirects to evil's `/api`, which answers `evil_status`; `/same` redirects
    within idp to `/here` (200)."""
    idp.routes["/api"] = redirect(evil.url("/api"), status)
    evil.routes["/api"] = Answer(evil_status, {"who": "evil"})
    idp.routes["/same"] = redirect("/here", status)
    idp.routes["/here"] = Answer(200, {"who": "idp"})
    return idp.url("/api")


def _assert_no_bearer_crossed(idp: HostileServer, evil: HostileServer) -> None:
    assert evil.seen, "the redirect was followed"
    for seen in evil.seen:
        assert "authorization" not in seen.headers, seen.headers
    assert all(s.headers["authorization"].startswith("Bearer ") for s in idp.requests_to("/api"))


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize("evil_status", [200, 401])
def test_requests_bearer_auth_stays_on_its_origin(
    idp: HostileServer, evil: HostileServer, status: int, evil_status: int
) -> None:
    import requests
    from tokenward.requests import BearerAuth

    tokens = Tokens()
    url = _services(idp, evil, evil_status, status)
    with requests.Session() as session:
        session.auth = BearerAuth(tokens)
        assert session.get(url, timeout=5).status_code == evil_status
        # A 401 from the other origin is not ours to answer: no token was sent there.
        assert tokens.invalidated == 0
        same = session.get(idp.url("/same"), timeout=5)
        assert same.status_code == 200
    _assert_no_bearer_crossed(idp, evil)
    (here,) = idp.requests_to("/here")
    assert here.headers["authorization"] == "Bearer tok-0", "same origin: the token goes along"
    # Per-request auth, too.
    evil.seen.clear()
    assert requests.get(url, auth=BearerAuth(tokens), timeout=5).status_code == evil_status
    _assert_no_bearer_crossed(idp, evil)


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize("evil_status", [200, 401])
def test_httpx_bearer_auth_stays_on_its_origin(
    idp: HostileServer, evil: HostileServer, status: int, evil_status: int
) -> None:
    import httpx
    from tokenward.httpx import BearerAuth

    tokens = Tokens()
    url = _services(idp, evil, evil_status, status)
    with httpx.Client(auth=BearerAuth(tokens), follow_redirects=True, timeout=5) as client:
        assert client.get(url).status_code == evil_status
        assert tokens.invalidated == 0
        assert client.get(idp.url("/same")).status_code == 200
    _assert_no_bearer_crossed(idp, evil)
    (here,) = idp.requests_to("/here")
    assert here.headers["authorization"] == "Bearer tok-0"


@pytest.mark.parametrize("evil_status", [200, 401])
async def test_httpx_async_bearer_auth_stays_on_its_origin(
    idp: HostileServer, evil: HostileServer, evil_status: int
) -> None:
    import httpx
    from tokenward.httpx import BearerAuth

    tokens = Tokens()
    url = _services(idp, evil, evil_status, 307)
    async with httpx.AsyncClient(
        auth=BearerAuth(tokens), follow_redirects=True, timeout=5
    ) as client:
        assert (await client.get(url)).status_code == evil_status
    assert tokens.invalidated == 0
    _assert_no_bearer_crossed(idp, evil)


@pytest.mark.parametrize("library", ["requests", "httpx"])
def test_a_forwarded_bearer_stays_on_its_origin(
    idp: HostileServer, evil: HostileServer, library: str
) -> None:
    from tokenward.forwarding import ForwardedBearer

    url = _services(idp, evil, 401, 302)
    auth = ForwardedBearer("caller-token")
    if library == "requests":
        import requests

        assert requests.get(url, auth=auth, timeout=5).status_code == 401
    else:
        import httpx

        assert httpx.get(url, auth=auth, follow_redirects=True, timeout=5).status_code == 401
    _assert_no_bearer_crossed(idp, evil)


# ---- item 3: discovery must name the issuer it was fetched for ---------------------------------


@pytest.mark.parametrize(
    "named",
    ["https://evil.example.org/realms/r", "{base}/realms/other", "{base}/realms/r/", None],
    ids=["other-host", "other-realm", "trailing-slash", "missing"],
)
def test_a_discovery_document_for_another_issuer_is_not_used(
    idp: HostileServer,
    good_key: SigningKey,
    evil_key: SigningKey,
    warnings: pytest.LogCaptureFixture,
    named: str | None,
) -> None:
    document = {"jwks_uri": idp.url("/evil-keys")}
    if named is not None:
        document["issuer"] = named.format(base=idp.base)
    idp.routes[DISCOVERY] = Answer(200, document)
    idp.routes["/evil-keys"] = Answer(200, jwks(evil_key))
    idp.routes[CERTS] = Answer(200, jwks(good_key))
    v = verifier(idp)
    assert v.verify(mint(good_key, issuer_of(idp)))["sub"] == "u1"
    with pytest.raises(tw.InvalidToken) as info:
        v.verify(mint(evil_key, issuer_of(idp)))
    assert info.value.code == "unknown_kid"
    assert idp.requests_to("/evil-keys") == [], "nothing the document names is fetched"
    assert f"not the issuer {issuer_of(idp)!r}" in warnings.text.replace('"', "'")


def test_without_verify_issuer_the_document_is_used_and_its_issuer_logged(
    idp: HostileServer, good_key: SigningKey, warnings: pytest.LogCaptureFixture
) -> None:
    # SmartEM's dev host split: the IdP names itself by another host than the one we reach.
    idp.routes[DISCOVERY] = Answer(
        200, {"issuer": "https://public.example.org/realms/r", "jwks_uri": idp.url("/keys")}
    )
    idp.routes["/keys"] = Answer(200, jwks(good_key))
    v = verifier(idp, verify_issuer=False)
    assert v.verify(mint(good_key, "https://public.example.org/realms/r"))["sub"] == "u1"
    assert len(idp.requests_to("/keys")) == 1
    assert "https://public.example.org/realms/r" in warnings.text
    assert "verify_issuer is off" in warnings.text


def test_the_token_client_posts_no_credential_where_a_foreign_document_points(
    idp: HostileServer, evil: HostileServer, warnings: pytest.LogCaptureFixture
) -> None:
    evil.routes["/token"] = Answer(200, {"access_token": "stolen", "token_type": "Bearer"})
    idp.routes[DISCOVERY] = Answer(
        200, {"issuer": "https://evil.example.org", "token_endpoint": evil.url("/token")}
    )
    idp.routes[TOKEN] = Answer(200, {"access_token": "real", "token_type": "Bearer"})
    client = tw.TokenClient(issuer=issuer_of(idp), client_id="agent", client_secret=SECRET)
    assert client.get_token() == "real"
    assert evil.seen == []
    assert client.token_url is None, "the document was not remembered"
    assert "https://evil.example.org" in warnings.text and SECRET not in warnings.text


# ---- item 4: key sets and discovery follow redirects within their origin only -----------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_key_set_redirect_to_another_origin_is_a_failed_fetch(
    idp: HostileServer,
    evil: HostileServer,
    evil_key: SigningKey,
    warnings: pytest.LogCaptureFixture,
    status: int,
) -> None:
    evil.routes["/certs"] = Answer(200, jwks(evil_key))
    idp.routes["/certs"] = redirect(evil.url("/certs"), status)
    v = verifier(idp, jwks_uri=idp.url("/certs"))
    with pytest.raises(tw.KeySetUnavailable) as info:
        v.verify(mint(evil_key, issuer_of(idp)))
    assert evil.seen == []
    for text in (str(info.value), warnings.text):
        assert idp.base in text and evil.base in text, text


def test_a_key_set_redirect_within_the_origin_is_followed(
    idp: HostileServer, good_key: SigningKey
) -> None:
    idp.routes["/certs"] = redirect("/v2/certs", 301)
    idp.routes["/v2/certs"] = redirect(idp.url("/v3/certs"), 307)
    idp.routes["/v3/certs"] = Answer(200, jwks(good_key))
    v = verifier(idp, jwks_uri=idp.url("/certs"))
    assert v.verify(mint(good_key, issuer_of(idp)))["sub"] == "u1"


def test_a_redirect_loop_is_a_failed_fetch(idp: HostileServer) -> None:
    idp.routes["/certs"] = redirect("/certs")
    v = verifier(idp, jwks_uri=idp.url("/certs"))
    with pytest.raises(tw.KeySetUnavailable, match="redirects"):
        v.refresh_keys()
    assert len(idp.requests_to("/certs")) == 4


def test_a_discovery_redirect_to_another_origin_is_a_failed_discovery(
    idp: HostileServer,
    evil: HostileServer,
    good_key: SigningKey,
    warnings: pytest.LogCaptureFixture,
) -> None:
    evil.routes[DISCOVERY] = Answer(200, discovery(idp, jwks_uri=evil.url("/certs")))
    idp.routes[DISCOVERY] = redirect(evil.url(DISCOVERY))
    idp.routes[CERTS] = Answer(200, jwks(good_key))
    assert verifier(idp).verify(mint(good_key, issuer_of(idp)))["sub"] == "u1"
    assert evil.seen == []
    assert "discovery" in warnings.text and evil.base in warnings.text


def test_discovery_names_a_key_set_on_the_issuers_own_http_origin(
    idp: HostileServer, good_key: SigningKey
) -> None:
    idp.routes[DISCOVERY] = Answer(200, discovery(idp, jwks_uri=idp.url("/elsewhere/keys")))
    idp.routes["/elsewhere/keys"] = Answer(200, jwks(good_key))
    assert verifier(idp).verify(mint(good_key, issuer_of(idp)))["sub"] == "u1"
    assert len(idp.requests_to("/elsewhere/keys")) == 1
    assert idp.requests_to(CERTS) == []


def test_discovery_may_not_name_plain_http_on_another_origin(
    idp: HostileServer,
    evil: HostileServer,
    good_key: SigningKey,
    evil_key: SigningKey,
    warnings: pytest.LogCaptureFixture,
) -> None:
    evil.routes["/certs"] = Answer(200, jwks(evil_key))
    evil.routes["/token"] = Answer(200, {"access_token": "stolen", "token_type": "Bearer"})
    idp.routes[DISCOVERY] = Answer(
        200, discovery(idp, jwks_uri=evil.url("/certs"), token_endpoint=evil.url("/token"))
    )
    idp.routes[CERTS] = Answer(200, jwks(good_key))
    idp.routes[TOKEN] = Answer(200, {"access_token": "real", "token_type": "Bearer"})
    v = verifier(idp)
    assert v.verify(mint(good_key, issuer_of(idp)))["sub"] == "u1"
    client = tw.TokenClient(issuer=issuer_of(idp), client_id="agent", client_secret=SECRET)
    assert client.get_token() == "real"
    assert evil.seen == []
    assert evil.url("/certs") in warnings.text and "is not used" in warnings.text


# ---- item 5: max_response_bytes, enforced while reading ----------------------------------------


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_an_endless_key_set_is_cut_at_the_limit(idp: HostileServer, framing: str) -> None:
    length = None if framing == "chunked" else 512 * MIB
    idp.routes["/certs"] = Stream(content_length=length)
    v = verifier(idp, jwks_uri=idp.url("/certs"))
    with pytest.raises(tw.KeySetUnavailable) as info:
        v.refresh_keys()
    assert "max_response_bytes (1048576 bytes)" in str(info.value)
    assert idp.streamed < STREAM_BOUND, f"the server wrote {idp.streamed} bytes"


def test_an_endless_discovery_document_is_a_failed_discovery(
    idp: HostileServer, good_key: SigningKey, warnings: pytest.LogCaptureFixture
) -> None:
    idp.routes[DISCOVERY] = Stream()
    idp.routes[CERTS] = Answer(200, jwks(good_key))
    assert verifier(idp).verify(mint(good_key, issuer_of(idp)))["sub"] == "u1"
    assert "max_response_bytes (1048576 bytes)" in warnings.text
    assert idp.streamed < STREAM_BOUND


def test_an_endless_token_response_is_a_final_error(idp: HostileServer) -> None:
    idp.routes[TOKEN] = Stream(piece=b'{"access_token":"' + b"a" * 8192)
    client = tw.TokenClient(idp.url(TOKEN), client_id="agent", client_secret=SECRET, timeout=5)
    with pytest.raises(tw.TokenRequestError) as info:
        client.get_token()
    assert "max_response_bytes (1048576 bytes)" in str(info.value)
    assert not info.value.retryable
    assert client.stats()["token_requests"] == 1
    assert idp.streamed < STREAM_BOUND


def test_the_limit_is_a_setting(idp: HostileServer, good_key: SigningKey) -> None:
    document = jwks(good_key)
    size = len(json.dumps(document))
    idp.routes["/certs"] = Answer(200, document)
    tight = verifier(idp, jwks_uri=idp.url("/certs"), max_response_bytes=size - 1)
    with pytest.raises(tw.KeySetUnavailable, match=f"max_response_bytes \\({size - 1} bytes\\)"):
        tight.refresh_keys()
    exact = verifier(idp, jwks_uri=idp.url("/certs"), max_response_bytes=size)
    assert exact.verify(mint(good_key, issuer_of(idp)))["sub"] == "u1"

    token = json.dumps({"access_token": "t" * 100, "token_type": "Bearer", "expires_in": 60})
    idp.routes["/token"] = Answer(200, token)
    small = tw.TokenClient(
        idp.url("/token"), client_id="a", client_secret=SECRET, max_response_bytes=50
    )
    with pytest.raises(tw.TokenRequestError, match="max_response_bytes \\(50 bytes\\)"):
        small.get_token()
    roomy = tw.TokenClient(
        idp.url("/token"), client_id="a", client_secret=SECRET, max_response_bytes=len(token)
    )
    assert roomy.get_token() == "t" * 100


@pytest.mark.parametrize("value", [0, -1])
def test_a_bad_limit_is_a_config_error(
    idp: HostileServer, monkeypatch: pytest.MonkeyPatch, value: int
) -> None:
    with pytest.raises(tw.ConfigError) as info:
        verifier(idp, max_response_bytes=value)
    assert info.value.setting == "max_response_bytes"
    with pytest.raises(tw.ConfigError) as info:
        tw.TokenClient(
            idp.url(TOKEN), client_id="a", client_secret=SECRET, max_response_bytes=value
        )
    assert info.value.setting == "max_response_bytes"
    monkeypatch.setenv("KEYCLOAK_URL", idp.base)
    monkeypatch.setenv("KEYCLOAK_CLIENT_ID", "agent")
    monkeypatch.setenv("KEYCLOAK_CLIENT_SECRET", SECRET)
    with pytest.raises(tw.ConfigError) as info:
        tw.Verifier.from_env(max_response_bytes=value)
    assert info.value.setting == "max_response_bytes"
    with pytest.raises(tw.ConfigError) as info:
        tw.TokenClient.from_env(max_response_bytes=value)
    assert info.value.setting == "max_response_bytes"
    # A good value through from_env is taken.
    assert tw.Verifier.from_env(max_response_bytes=4096).issuer.endswith("/realms/dls")
