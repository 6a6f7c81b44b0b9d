"""tokenward.TokenClient against the DevIdP over real HTTP: client authentication, caching,
single-flight, refresh-ahead, outages, errors and secret hygiene."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tokenward as tw
from tokenward._native import SigningKey
from tokenward.testing import DevIdP

SECRET = "agent-secret-7c2e9a"
Clock = Callable[[float], None]


@pytest.fixture
def agent(dev_idp: DevIdP) -> str:
    dev_idp.add_client("agent", secret=SECRET, token_lifetime=300, roles=["agent"])
    return "agent"


def make(idp: DevIdP, **settings: Any) -> tw.TokenClient:
    settings.setdefault("client_id", "agent")
    if "private_key" not in settings:
        settings.setdefault("client_secret", SECRET)
    settings.setdefault("timeout", 2)
    token_url = settings.pop("token_url", None if "issuer" in settings else idp.token_url)
    return tw.TokenClient(token_url, **settings)


def run_threads(count: int, target: Callable[[], Any]) -> list[Any]:
    """`target` in `count` threads released together by a barrier; their results."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:  # noqa: BLE001 - reported as the result
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    return results


# ---- client authentication -----------------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["client_secret_post", "client_secret_basic", "client_secret_jwt"]
)
def test_secret_methods_are_accepted(
    dev_idp: DevIdP, agent: str, verifier: tw.Verifier, method: str
) -> None:
    client = make(dev_idp, auth_method=method)
    assert client.auth_method == method
    claims = verifier.verify(client.get_token())
    assert claims["azp"] == "agent"
    assert claims["realm_access"]["roles"] == ["agent"]
    assert dev_idp.hits["token"] == 1


@pytest.mark.parametrize(
    "method", ["client_secret_post", "client_secret_basic", "client_secret_jwt"]
)
def test_secret_methods_with_a_wrong_secret_are_refused(
    dev_idp: DevIdP, agent: str, method: str
) -> None:
    client = make(dev_idp, auth_method=method, client_secret="not-the-secret")
    with pytest.raises(tw.TokenRequestError) as info:
        client.get_token()
    assert (info.value.status, info.value.error, info.value.retryable) == (
        401,
        "invalid_client",
        False,
    )
    assert dev_idp.hits["token"] == 1


@pytest.mark.parametrize(
    ("alg", "signing_alg"), [("RS256", None), ("PS256", "PS256"), ("ES256", None)]
)
def test_private_key_jwt_is_accepted(
    dev_idp: DevIdP, verifier: tw.Verifier, alg: str, signing_alg: str | None
) -> None:
    key = SigningKey.generate(alg)
    dev_idp.add_client("jwt-agent", jwks=key)
    client = make(
        dev_idp,
        client_id="jwt-agent",
        private_key=key.private_pem().encode(),
        signing_alg=signing_alg,
    )
    assert client.auth_method == "private_key_jwt"
    assert client.signing_alg == alg
    assert client.key_id == key.kid, "the kid defaults to the key's thumbprint"
    assert verifier.verify(client.get_token())["azp"] == "jwt-agent"
    # A second assertion (fresh jti) is accepted too.
    client.invalidate()
    client.get_token()
    assert dev_idp.hits["token"] == 2


def test_private_key_jwt_with_an_explicit_kid(dev_idp: DevIdP) -> None:
    key = SigningKey.generate("RS256", kid="agent-key-1")
    dev_idp.add_client("jwt-agent", jwks=key.public_jwk())
    pem = SigningKey.from_pem(key.private_pem(), "RS256").private_pem()
    client = make(dev_idp, client_id="jwt-agent", private_key=pem, key_id="agent-key-1")
    assert client.key_id == "agent-key-1"
    client.get_token()


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_private_key_jwt_with_a_jwk_private_key(
    dev_idp: DevIdP, verifier: tw.Verifier, alg: str
) -> None:
    key = SigningKey.generate(alg, kid=f"{alg}-jwk")
    dev_idp.add_client("jwt-agent", jwks=key.public_jwk())
    private_jwk = key.private_jwk()
    assert private_jwk["kid"] == f"{alg}-jwk" and "d" in private_jwk
    client = make(dev_idp, client_id="jwt-agent", private_key=private_jwk)
    assert client.auth_method == "private_key_jwt"
    assert client.key_id == f"{alg}-jwk", "the kid comes from the JWK"
    assert client.signing_alg == alg
    assert verifier.verify(client.get_token())["azp"] == "jwt-agent"
    assert private_jwk["d"] not in repr(client)


def test_a_broken_jwk_private_key_is_a_config_error(dev_idp: DevIdP) -> None:
    with pytest.raises(tw.ConfigError) as info:
        make(dev_idp, client_id="jwt-agent", private_key={"kty": "EC", "crv": "P-256", "d": "AA"})
    assert info.value.setting == "private_key"


def test_private_key_jwt_with_an_unregistered_key_is_refused(dev_idp: DevIdP) -> None:
    dev_idp.add_client("jwt-agent", jwks=SigningKey.generate("ES256"))
    client = make(
        dev_idp, client_id="jwt-agent", private_key=SigningKey.generate("ES256").private_pem()
    )
    with pytest.raises(tw.TokenRequestError) as info:
        client.get_token()
    assert info.value.error == "invalid_client" and not info.value.retryable
    assert dev_idp.hits["token"] == 1


def test_scope_is_sent(dev_idp: DevIdP, agent: str, verifier: tw.Verifier) -> None:
    client = make(dev_idp, scope=["openid", "custom"])
    assert verifier.verify(client.get_token())["scope"].split() == [
        "openid",
        "profile",
        "email",
        "custom",
    ]


# ---- token URL -------------------------------------------------------------------------------


def test_token_url_from_discovery(dev_idp: DevIdP, agent: str) -> None:
    client = make(dev_idp, issuer=dev_idp.issuer)
    assert client.token_url is None
    client.get_token()
    assert client.token_url == dev_idp.token_url
    assert dev_idp.hits["discovery"] == 1


def test_token_url_falls_back_to_keycloak_path(dev_idp: DevIdP, agent: str) -> None:
    dev_idp.set_fault("discovery", "500")
    client = make(dev_idp, issuer=dev_idp.issuer + "/")
    client.get_token()
    assert dev_idp.hits["token"] == 1
    assert client.token_url is None, "a failed discovery is not remembered"


# ---- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"token_url": None}, "token_url"),
        ({"token_url": "ftp://x/token"}, "token_url"),
        ({"client_secret": None}, "client_secret"),
        ({"client_id": " "}, "client_id"),
        ({"auth_method": "magic"}, "auth_method"),
        ({"auth_method": "private_key_jwt"}, "private_key"),
        ({"private_key": "not a key"}, "private_key"),
        ({"private_key": {"kty": "RSA", "d": "x"}}, "private_key"),
        ({"timeout": 0}, "timeout"),
        ({"refresh_margin": -1}, "refresh_margin"),
    ],
)
def test_config_errors_name_the_setting(settings: dict[str, Any], setting: str) -> None:
    kwargs: dict[str, Any] = {"client_id": "agent", "client_secret": SECRET}
    token_url = settings.pop("token_url", "http://127.0.0.1:1/token")
    kwargs.update(settings)
    with pytest.raises(tw.ConfigError) as info:
        tw.TokenClient(token_url, **kwargs)
    assert info.value.setting == setting
    assert isinstance(info.value, ValueError)
    assert SECRET not in str(info.value)


def test_from_env(dev_idp: DevIdP, agent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYCLOAK_URL", dev_idp.base_url)
    monkeypatch.setenv("KEYCLOAK_REALM", "dls")
    monkeypatch.setenv("KEYCLOAK_CLIENT_ID", "agent")
    monkeypatch.setenv("KEYCLOAK_CLIENT_SECRET", SECRET)
    client = tw.TokenClient.from_env(timeout=2)
    assert isinstance(client, tw.TokenClient)
    assert client.client_id == "agent" and client.auth_method == "client_secret_post"
    assert asyncio.run(client.get_token_async()) == client.get_token()
    monkeypatch.setenv("AGENT_CLIENT_ID", "other")
    monkeypatch.setenv("AGENT_CLIENT_SECRET", "other-secret")
    assert tw.TokenClient.from_env().client_id == "other", "AGENT_* wins over KEYCLOAK_*"


def test_from_env_without_a_secret_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENT_CLIENT_SECRET", "KEYCLOAK_CLIENT_SECRET", "AGENT_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEYCLOAK_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AGENT_CLIENT_ID", "agent")
    with pytest.raises(tw.ConfigError, match="AGENT_CLIENT_SECRET") as info:
        tw.TokenClient.from_env()
    assert info.value.setting == "AGENT_CLIENT_SECRET"
    monkeypatch.delenv("KEYCLOAK_URL")
    with pytest.raises(tw.ConfigError) as info:
        tw.TokenClient.from_env()
    assert info.value.setting == "KEYCLOAK_URL"
    # A secret passed in code is enough.
    monkeypatch.setenv("KEYCLOAK_URL", "http://127.0.0.1:1")
    assert tw.TokenClient.from_env(client_secret="given").client_id == "agent"


def test_from_env_with_a_private_key_file(
    dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = SigningKey.generate("ES256")
    dev_idp.add_client("jwt-agent", jwks=key)
    path = tmp_path / "agent.pem"
    path.write_text(key.private_pem())
    monkeypatch.delenv("AGENT_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("KEYCLOAK_CLIENT_SECRET", raising=False)
    monkeypatch.setenv("KEYCLOAK_URL", dev_idp.base_url)
    monkeypatch.setenv("AGENT_CLIENT_ID", "jwt-agent")
    monkeypatch.setenv("AGENT_PRIVATE_KEY_FILE", str(path))
    client = tw.TokenClient.from_env(timeout=2)
    assert client.auth_method == "private_key_jwt"
    client.get_token()
    monkeypatch.setenv("AGENT_PRIVATE_KEY_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(tw.ConfigError) as info:
        tw.TokenClient.from_env()
    assert info.value.setting == "AGENT_PRIVATE_KEY_FILE"


# ---- caching and single-flight ---------------------------------------------------------------


def test_a_cached_token_is_reused(dev_idp: DevIdP, agent: str) -> None:
    client = make(dev_idp)
    tokens = {client.get_token() for _ in range(50)}
    assert len(tokens) == 1
    assert dev_idp.hits["token"] == 1
    assert client.stats()["cache_hits"] >= 49


def test_64_threads_on_an_empty_cache_cause_one_request(dev_idp: DevIdP, agent: str) -> None:
    client = make(dev_idp)
    results = run_threads(64, client.get_token)
    assert all(isinstance(r, str) for r in results), results
    assert len(set(results)) == 1
    assert dev_idp.hits["token"] == 1


def test_64_threads_on_an_expired_cache_cause_one_request(
    dev_idp: DevIdP, agent: str, clock: Clock
) -> None:
    client = make(dev_idp)
    first = client.get_token()
    clock(400)  # past the 300 s lifetime
    results = run_threads(64, client.get_token)
    assert all(isinstance(r, str) for r in results), results
    assert len(set(results)) == 1 and results[0] != first
    assert dev_idp.hits["token"] == 2


def test_64_threads_when_the_token_is_inside_the_margin(dev_idp: DevIdP, clock: Clock) -> None:
    # lifetime 20 < margin 30: the margin is capped at a third of the lifetime, so the token
    # is reused for its first 13.3 s; past that, the 64 callers share one request.
    dev_idp.add_client("agent", secret=SECRET, token_lifetime=20)
    client = make(dev_idp, refresh_margin=30)
    stale = client.get_token()
    assert client.get_token() == stale
    clock(14)
    dev_idp.add_client("agent", secret=SECRET, token_lifetime=300)
    results = run_threads(64, client.get_token)
    assert len(set(results)) == 1 and results[0] != stale
    assert dev_idp.hits["token"] == 2


async def test_64_tasks_on_an_expired_cache_cause_one_request(
    dev_idp: DevIdP, agent: str, clock: Clock
) -> None:
    client = make(dev_idp)
    first = await client.get_token_async()
    clock(400)
    results = await asyncio.gather(*(client.get_token_async() for _ in range(64)))
    assert len(set(results)) == 1 and results[0] != first
    assert dev_idp.hits["token"] == 2


async def test_64_tasks_on_an_empty_cache_cause_one_request(dev_idp: DevIdP, agent: str) -> None:
    client = make(dev_idp)
    results = await asyncio.gather(*(client.get_token_async() for _ in range(64)))
    assert len(set(results)) == 1
    assert dev_idp.hits["token"] == 1


async def test_async_returns_a_cached_token_without_suspending(dev_idp: DevIdP, agent: str) -> None:
    client = make(dev_idp)
    token = client.get_token()
    coroutine = client.get_token_async()
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)
    assert done.value.value == token


async def test_async_never_blocks_the_event_loop(dev_idp: DevIdP, agent: str) -> None:
    client = make(dev_idp, timeout=5)
    dev_idp.set_fault("token", "slow")  # held until the fault changes
    task = asyncio.create_task(client.get_token_async())
    # This await only completes if the loop is free while the token request hangs.
    arrived = await asyncio.get_running_loop().run_in_executor(
        None, dev_idp.in_flight.wait_for, "token", 1
    )
    assert arrived and not task.done()
    dev_idp.set_fault("token", None)
    assert isinstance(await task, str)
    assert dev_idp.hits["token"] == 1


def test_invalidate(dev_idp: DevIdP, agent: str) -> None:
    client = make(dev_idp)
    first = client.get_token()
    assert client.invalidate("some-other-token") is False
    assert client.get_token() == first
    assert client.invalidate(first) is True
    assert client.invalidate(first) is False, "a second 401 for the same token is a no-op"
    second = client.get_token()
    assert second != first
    assert client.invalidate() is True
    assert client.get_token() not in (first, second)
    assert dev_idp.hits["token"] == 3


def test_twenty_concurrent_invalidations_cause_one_refresh(dev_idp: DevIdP, agent: str) -> None:
    client = make(dev_idp)
    old = client.get_token()

    def on_401() -> str:
        client.invalidate(old)
        return client.get_token()

    results = run_threads(20, on_401)
    assert len(set(results)) == 1 and results[0] != old
    assert dev_idp.hits["token"] == 2


# ---- refresh ahead ---------------------------------------------------------------------------


def test_last_third_refreshes_in_the_background(dev_idp: DevIdP, agent: str, clock: Clock) -> None:
    client = make(dev_idp, refresh_margin=30)
    first = client.get_token()
    clock(210)  # 90 s left of 300: the last third, yet outside the margin
    assert client.get_token() == first, "the current token is returned at once"
    assert dev_idp.hits.wait_for("token", 2), "one background refresh starts"
    clock(60)  # 30 s left of the first token: inside the margin, so the refreshed token is due
    second = client.get_token()
    assert second != first
    assert dev_idp.hits["token"] == 2, "the background refresh was the only request"
    assert client.stats()["refreshes_ahead"] == 1


def test_a_token_handed_out_late_is_in_its_last_third_at_once(dev_idp: DevIdP) -> None:
    # A caching broker: the token was issued 1000 s before it was handed out (iat in the past),
    # with 300 s left. Its lifetime is exp - iat, so it is in its last third from the start.
    dev_idp.add_client("agent", secret=SECRET, token_lifetime=300, iat=int(time.time()) - 1000)
    client = make(dev_idp)
    first = client.get_token()
    assert client.get_token() == first
    assert dev_idp.hits.wait_for("token", 2)
    assert client.stats()["refreshes_ahead"] >= 1


# ---- failures --------------------------------------------------------------------------------


def test_bad_credentials_fail_after_exactly_one_request(dev_idp: DevIdP, agent: str) -> None:
    client = make(dev_idp, client_secret="wrong-secret")
    with pytest.raises(tw.TokenRequestError) as info:
        client.get_token()
    error = info.value
    assert isinstance(error, tw.TokenwardError)
    assert (error.status, error.error, error.retryable) == (401, "invalid_client", False)
    assert dev_idp.hits["token"] == 1
    # No retry storm: a second call inside the backoff window does not ask again.
    with pytest.raises(tw.TokenRequestError):
        client.get_token()
    assert dev_idp.hits["token"] == 1


def test_unknown_client_is_invalid_client(dev_idp: DevIdP) -> None:
    client = make(dev_idp, client_id="nobody")
    with pytest.raises(tw.TokenRequestError) as info:
        client.get_token()
    assert info.value.error == "invalid_client"
    assert dev_idp.hits["token"] == 1


def test_idp_down_serves_the_cached_token_then_recovers(
    dev_idp: DevIdP, agent: str, clock: Clock
) -> None:
    client = make(dev_idp, refresh_margin=30)
    first = client.get_token()
    clock(280)  # 20 s left: inside the margin, so a refresh is due, but still valid
    dev_idp.set_fault("token", "down")
    assert client.get_token() == first
    assert dev_idp.hits["token"] == 2
    for _ in range(10):
        assert client.get_token() == first
    assert dev_idp.hits["token"] == 2, "no request inside the backoff window"
    assert client.stats()["stale_served"] >= 11
    dev_idp.set_fault("token", None)
    clock(1.0)  # one backoff step (the first is at most 1 s)
    second = client.get_token()
    assert second != first
    assert dev_idp.hits["token"] == 3


@pytest.mark.parametrize("fault", ["down", "500", "garbage"])
def test_without_a_token_transient_failures_are_retried_then_raised(
    dev_idp: DevIdP, agent: str, clock: Clock, fault: str
) -> None:
    client = make(dev_idp)
    dev_idp.set_fault("token", fault)
    with pytest.raises(tw.TokenRequestError) as info:
        client.get_token()
    assert info.value.retryable
    assert info.value.status == {"down": None, "500": 500, "garbage": 200}[fault]
    assert info.value.error == {"down": None, "500": "unknown_error", "garbage": None}[fault]
    assert dev_idp.hits["token"] == 3, "a few attempts, then the error"
    dev_idp.set_fault("token", None)
    with pytest.raises(tw.TokenRequestError):
        client.get_token()  # inside the backoff window: the same error, no request
    assert dev_idp.hits["token"] == 3
    clock(1.0)
    assert client.get_token()
    assert dev_idp.hits["token"] == 4, "recovered with the first request after one backoff step"


def test_a_hanging_idp_times_out_and_the_cached_token_is_served(
    dev_idp: DevIdP, agent: str, clock: Clock
) -> None:
    client = make(dev_idp, timeout=0.5)
    first = client.get_token()
    clock(280)
    dev_idp.set_fault("token", "slow")
    assert client.get_token() == first
    assert dev_idp.hits["token"] == 2


def test_a_transient_failure_is_retried_within_one_call(dev_idp: DevIdP, agent: str) -> None:
    client = make(dev_idp)
    dev_idp.set_fault("token", "500")
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(client.get_token()))
    thread.start()
    assert dev_idp.hits.wait_for("token", 1)
    dev_idp.set_fault("token", None)
    thread.join(timeout=30)
    assert result and isinstance(result[0], str)
    assert 2 <= dev_idp.hits["token"] <= 3


# ---- secret hygiene --------------------------------------------------------------------------


def test_the_secret_never_shows(
    dev_idp: DevIdP, agent: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tokenward")
    texts: list[str] = []
    tokens: list[str] = []
    for method in ("client_secret_post", "client_secret_basic", "client_secret_jwt"):
        client = make(dev_idp, auth_method=method)
        tokens.append(client.get_token())
        texts += [repr(client), str(client), repr(client.stats())]
    wrong = SECRET + "-wrong"
    for method in ("client_secret_post", "client_secret_basic", "client_secret_jwt"):
        with pytest.raises(tw.TokenRequestError) as info:
            make(dev_idp, auth_method=method, client_secret=wrong).get_token()
        texts += [str(info.value), repr(info.value), repr(info.value.args)]
    with pytest.raises(tw.ConfigError) as config:
        tw.TokenClient(client_id="agent", client_secret=SECRET)
    texts += [str(config.value), repr(config.value)]
    records = [r for r in caplog.records if r.name.startswith("tokenward")]
    assert any(r.name.startswith("tokenward.token") for r in records), "the client logs"
    assert any(r.levelno == logging.DEBUG for r in records), "DEBUG records are captured"
    texts += [r.getMessage() for r in records]
    for text in texts:
        assert SECRET not in text
        for token in tokens:
            assert token not in text


def test_the_client_cannot_be_pickled_or_copied(dev_idp: DevIdP, agent: str) -> None:
    import copy
    import pickle

    client = make(dev_idp)
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError) as info:
            attempt(client)
        assert SECRET not in str(info.value)


def test_an_echoed_secret_is_cut_from_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A misbehaving endpoint that repeats the request body in its error.
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            description = f"bad request: {body} / {self.headers.get('Authorization')}"
            payload = json.dumps({"error": "invalid_request", "error_description": description})
            payload = payload.encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/token"
        secret = "p@ss word&=" + SECRET
        client = tw.TokenClient(url, client_id="agent", client_secret=secret, timeout=2)
        with pytest.raises(tw.TokenRequestError) as info:
            client.get_token()
        text = f"{info.value} {info.value!r}"
        assert "bad request" in text, "the description is passed on"
        assert SECRET not in text
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("fault", "transport"), [("down", "dropped"), ("slow", "timeout")])
def test_a_failure_without_an_answer_says_how_it_failed(
    dev_idp: DevIdP, agent: str, fault: str, transport: str
) -> None:
    """`transport` lets a caller map failures onto its own classes (the SmartEM drop-in's
    ConnectionError / ReadTimeout) without reading the message."""
    client = make(dev_idp, timeout=0.3)
    dev_idp.set_fault("token", fault)
    try:
        with pytest.raises(tw.TokenRequestError) as info:
            client.get_token()
    finally:
        dev_idp.set_fault("token", None)
    error = info.value
    assert error.status is None and error.retryable
    assert error.transport == transport
    assert pickle.loads(pickle.dumps(error)).transport == transport
