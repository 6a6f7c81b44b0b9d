"""TokenClient.exchange (RFC 8693) against the DevIdP's standard token exchange, over real HTTP:
every client authentication method, the cache and its expiry, single flight across threads and
tasks, each refusal typed and not retried, and no trace of the subject token in errors or logs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import tokenward as tw
from _uvicorn import serve
from fastapi import FastAPI
from tokenward._native import SigningKey
from tokenward.testing import DevIdP

SECRET = "requester-secret-51ad0c"
Clock = Callable[[float], None]


@pytest.fixture
def realm(dev_idp: DevIdP) -> DevIdP:
    """svc-a may exchange for svc-b and svc-c; svc-d exists but is not available to svc-a."""
    dev_idp.add_client("svc-a", secret=SECRET, token_exchange=True, audiences=["svc-b", "svc-c"])
    for name in ("svc-b", "svc-c", "svc-d"):
        dev_idp.add_client(name, secret=f"{name}-secret")
    return dev_idp


def subject(idp: DevIdP, aud: Any = "svc-a", sub: str = "alice", **claims: Any) -> str:
    """A user's access token, as svc-a receives it from its caller."""
    return idp.mint(sub=sub, aud=aud, **claims)


def make(idp: DevIdP, **settings: Any) -> tw.TokenClient:
    settings.setdefault("client_id", "svc-a")
    if "private_key" not in settings:
        settings.setdefault("client_secret", SECRET)
    settings.setdefault("timeout", 2)
    return tw.TokenClient(idp.token_url, **settings)


def verify(idp: DevIdP, token: str, audience: str) -> dict[str, Any]:
    verifier = tw.Verifier(idp.issuer, audience=audience, http_timeout=2)
    return verifier.verify(token)


# ---- success -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["client_secret_post", "client_secret_basic", "client_secret_jwt"]
)
def test_exchange_with_each_secret_method(realm: DevIdP, method: str) -> None:
    client = make(realm, auth_method=method)
    token = client.exchange(subject(realm), audience="svc-b")
    claims = verify(realm, token, "svc-b")
    assert claims["aud"] == "svc-b"
    assert claims["azp"] == "svc-a"
    assert claims["sub"] == "alice"
    assert claims["preferred_username"] == "alice"


def test_exchange_with_private_key_jwt(dev_idp: DevIdP) -> None:
    key = SigningKey.generate("ES256")
    dev_idp.add_client("svc-k", jwks=key, token_exchange=True, audiences=["svc-b"])
    dev_idp.add_client("svc-b", secret="b")
    client = make(dev_idp, client_id="svc-k", private_key=key.private_pem())
    token = client.exchange(subject(dev_idp, aud="svc-k"), audience="svc-b")
    assert verify(dev_idp, token, "svc-b")["azp"] == "svc-k"


def test_audience_narrows_and_defaults_to_all_available(realm: DevIdP) -> None:
    client = make(realm)
    user = subject(realm)
    both = verify(realm, client.exchange(user), "svc-b")
    assert sorted(both["aud"]) == ["svc-b", "svc-c"]
    repeated = client.exchange(user, audience=["svc-c", "svc-b"])
    assert sorted(verify(realm, repeated, "svc-c")["aud"]) == ["svc-b", "svc-c"]
    assert verify(realm, client.exchange(user, audience=["svc-c"]), "svc-c")["aud"] == "svc-c"


def test_clients_whose_roles_the_user_holds_are_available_too(realm: DevIdP) -> None:
    """Keycloak's audience resolve: svc-d is not in svc-a's audience mapper, but the user holds
    one of its roles, so svc-a may obtain it; the roles kept are the granted audience's."""
    roles = {"svc-d": {"roles": ["reader"]}, "svc-c": {"roles": ["x"]}}
    user = subject(realm, resource_access=roles)
    claims = verify(realm, make(realm).exchange(user, audience="svc-d"), "svc-d")
    assert claims["resource_access"] == {"svc-d": {"roles": ["reader"]}}
    everything = verify(realm, make(realm).exchange(user), "svc-d")
    assert sorted(everything["aud"]) == ["svc-b", "svc-c", "svc-d"]


@pytest.mark.parametrize("missing", ["subject_token", "subject_token_type"])
def test_both_subject_parameters_are_required(realm: DevIdP, missing: str) -> None:
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "client_id": "svc-a",
        "client_secret": SECRET,
        "subject_token": subject(realm),
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
    }
    del form[missing]
    answer = httpx.post(realm.token_url, data=form, timeout=5)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_request",
        "error_description": f"Parameter '{missing}' required for standard token exchange",
    }


@pytest.mark.parametrize(
    ("requested", "issued", "token_type", "accepted"),
    [
        (None, "urn:ietf:params:oauth:token-type:access_token", "Bearer", True),
        (None, None, "Bearer", True),
        (None, "urn:ietf:params:oauth:token-type:id_token", "N_A", False),
        (None, "urn:ietf:params:oauth:token-type:id_token", "Bearer", False),
        (
            "urn:ietf:params:oauth:token-type:id_token",
            "urn:ietf:params:oauth:token-type:id_token",
            "N_A",
            True,
        ),
        (
            "urn:ietf:params:oauth:token-type:id_token",
            "urn:ietf:params:oauth:token-type:access_token",
            "Bearer",
            False,
        ),
    ],
)
def test_the_issued_token_type_must_be_the_requested_one(
    requested: str | None, issued: str | None, token_type: str, accepted: bool
) -> None:
    """An IdP answering with another type than asked (an ID token where an access token was
    wanted) is refused, not retried; an answer without issued_token_type is taken as is."""
    app = FastAPI()
    calls: list[int] = []

    @app.post("/token")
    async def token() -> dict[str, Any]:
        calls.append(1)
        answer: dict[str, Any] = {"access_token": "issued-1", "token_type": token_type}
        if issued is not None:
            answer["issued_token_type"] = issued
        return {**answer, "expires_in": 300}

    with serve(app) as url:
        client = tw.TokenClient(f"{url}/token", client_id="svc-a", client_secret=SECRET)
        if accepted:
            assert client.exchange("subject-1", requested_token_type=requested) == "issued-1"
        else:
            with pytest.raises(tw.TokenRequestError) as caught:
                client.exchange("subject-1", requested_token_type=requested)
            assert "issued_token_type" in str(caught.value)
            assert not caught.value.retryable
    assert len(calls) == 1


async def test_exchange_async(realm: DevIdP) -> None:
    client = make(realm)
    token = await client.exchange_async(subject(realm), audience="svc-b", scope=["orders"])
    claims = verify(realm, token, "svc-b")
    assert "orders" in claims["scope"].split()


# ---- the cache -----------------------------------------------------------------------------


def test_a_repeated_exchange_is_served_from_the_cache(realm: DevIdP) -> None:
    client = make(realm)
    user = subject(realm)
    first = client.exchange(user, audience="svc-b")
    assert realm.hits["token"] == 1
    assert client.exchange(user, audience=["svc-b", "svc-b"]) == first
    assert realm.hits["token"] == 1
    assert client.stats()["exchange_hits"] == 1
    # Each other part of the key is another exchange.
    assert client.exchange(user, audience="svc-c") != first
    assert client.exchange(user, audience="svc-b", scope="orders") != first
    assert client.exchange(subject(realm), audience="svc-b") != first
    assert realm.hits["token"] == 4
    # The client's own token is a separate cache.
    client.get_token()
    assert realm.hits["token"] == 5
    assert client.exchange(user, audience="svc-b") == first
    assert realm.hits["token"] == 5


def test_exchange_cache_size_bounds_the_cache(realm: DevIdP) -> None:
    client = make(realm, exchange_cache_size=2)
    users = [subject(realm, sub=name) for name in ("u1", "u2", "u3")]
    first = [client.exchange(user, audience="svc-b") for user in users]
    assert realm.hits["token"] == 3
    # Two of the three are kept: the last, and one of the first two (not both).
    assert client.exchange(users[2], audience="svc-b") == first[2]
    assert realm.hits["token"] == 3
    again = [client.exchange(user, audience="svc-b") for user in users[:2]]
    assert realm.hits["token"] >= 4
    assert again != first[:2]
    # The default keeps all three.
    roomy = make(realm)
    for user in users:
        roomy.exchange(user, audience="svc-b")
    before = realm.hits["token"]
    for user in users:
        roomy.exchange(user, audience="svc-b")
    assert realm.hits["token"] == before


@pytest.mark.parametrize("size", [0, -1])
def test_exchange_cache_size_must_be_positive(realm: DevIdP, size: int) -> None:
    with pytest.raises(tw.ConfigError) as caught:
        make(realm, exchange_cache_size=size)
    assert caught.value.setting == "exchange_cache_size"


def test_an_exchanged_token_is_replaced_before_it_expires(dev_idp: DevIdP, clock: Clock) -> None:
    dev_idp.add_client("svc-a", SECRET, token_lifetime=60, token_exchange=True, audiences=["svc-b"])
    dev_idp.add_client("svc-b", "b")
    client = make(dev_idp, refresh_margin=10)
    user = subject(dev_idp, expires_in=3600)
    first = client.exchange(user, audience="svc-b")
    clock(45)
    assert client.exchange(user, audience="svc-b") == first, "still outside the margin"
    assert dev_idp.hits["token"] == 1
    clock(10)  # 5 s left: inside the 10 s margin
    assert client.exchange(user, audience="svc-b") != first
    assert dev_idp.hits["token"] == 2


def test_concurrent_threads_share_one_request(realm: DevIdP) -> None:
    client = make(realm)
    user = subject(realm)
    count = 24
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = client.exchange(user, audience="svc-b")
        except Exception as exc:  # noqa: BLE001 - reported as the result
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert all(isinstance(r, str) for r in results), results
    assert len(set(results)) == 1
    assert realm.hits["token"] == 1


async def test_concurrent_tasks_share_one_request(realm: DevIdP) -> None:
    client = make(realm)
    user = subject(realm)
    tokens = await asyncio.gather(
        *(client.exchange_async(user, audience="svc-c") for _ in range(32))
    )
    assert len(set(tokens)) == 1
    assert realm.hits["token"] == 1


# ---- refusals ------------------------------------------------------------------------------


def refused(client: tw.TokenClient, user: str, **kwargs: Any) -> tw.TokenRequestError:
    with pytest.raises(tw.TokenRequestError) as caught:
        client.exchange(user, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        # Keycloak 26.7.3's answers (tests/keycloak_e2e/test_token_exchange_kc.py).
        ("requester not enabled", 400, "invalid_request"),
        ("public requester", 400, "invalid_client"),
        ("subject not meant for the requester", 403, "access_denied"),
        ("audience not a client", 400, "invalid_client"),
        ("audience not available", 400, "invalid_request"),
        ("expired subject", 400, "invalid_request"),
        ("foreign subject", 400, "invalid_request"),
    ],
)
def test_each_refusal_is_typed_final_and_keeps_the_subject_secret(
    realm: DevIdP,
    evil_idp: DevIdP,
    caplog: pytest.LogCaptureFixture,
    case: str,
    status: int,
    error: str,
) -> None:
    realm.add_client("plain", secret="plain-secret")
    realm.add_client("public", token_exchange=True, audiences=["svc-b"])
    client, user, audience = make(realm), subject(realm), "svc-b"
    if case == "requester not enabled":
        client, user = (
            make(realm, client_id="plain", client_secret="plain-secret"),
            subject(realm, aud="plain"),
        )
    elif case == "public requester":
        client, user = (
            make(realm, client_id="public", client_secret="x"),
            subject(realm, aud="public"),
        )
    elif case == "subject not meant for the requester":
        user = subject(realm, aud=["svc-b", "account"])
    elif case == "audience not a client":
        audience = "nobody"
    elif case == "audience not available":
        audience = "svc-d"
    elif case == "expired subject":
        user = subject(realm, expires_in=-60)
    else:
        user = evil_idp.mint(sub="alice", aud="svc-a")
    with caplog.at_level(logging.DEBUG, logger="tokenward"):
        exc = refused(client, user, audience=audience)
    assert (exc.status, exc.error) == (status, error)
    assert not exc.retryable
    assert realm.hits["token"] == 1, "a refusal is not retried"
    shown = " ".join([str(exc), repr(exc), caplog.text])
    signature = user.rsplit(".", 1)[1]
    assert signature[:16] not in shown
    assert user[:40] not in shown


def test_a_refusal_is_held_briefly_for_its_key(realm: DevIdP, clock: Clock) -> None:
    client = make(realm)
    user = subject(realm)
    first = refused(client, user, audience="svc-d")
    second = refused(client, user, audience="svc-d")
    assert (first.error, second.error) == ("invalid_request", "invalid_request")
    assert realm.hits["token"] == 1
    clock(2)
    refused(client, user, audience="svc-d")
    assert realm.hits["token"] == 2


def test_an_echoed_subject_token_is_cut_from_the_error(realm: DevIdP) -> None:
    """An IdP that repeats the subject token in its error text: here a client named like it,
    asked for as an audience, comes back in "Requested audience not available: ..."."""
    user = subject(realm)
    realm.add_client(user, secret="e")
    exc = refused(make(realm), user, audience=user)
    assert exc.error == "invalid_request"
    assert "Requested audience not available" in str(exc)
    assert user[-30:] not in str(exc)
    assert "[redacted]" in str(exc)


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"subject_token": ""}, "subject_token"),
        ({"audience": [""]}, "audience"),
        ({"audience": 3}, "audience"),
        ({"scope": " "}, "scope"),
    ],
)
def test_bad_arguments_are_config_errors(
    realm: DevIdP, kwargs: dict[str, Any], setting: str
) -> None:
    client = make(realm)
    args = {"subject_token": subject(realm), **kwargs}
    with pytest.raises(tw.ConfigError) as caught:
        client.exchange(args.pop("subject_token"), **args)
    assert caught.value.setting == setting
    assert realm.hits["token"] == 0


async def test_an_async_cache_hit_needs_no_request_and_a_held_refusal_is_raised(
    realm: DevIdP,
) -> None:
    client = make(realm)
    user = subject(realm)
    first = await client.exchange_async(user, audience="svc-b")
    assert await client.exchange_async(user, audience="svc-b") == first
    assert client.exchange(user, audience="svc-b") == first
    assert realm.hits["token"] == 1
    assert client.stats()["exchange_hits"] == 2
    with pytest.raises(tw.TokenRequestError):
        await client.exchange_async(user, audience="svc-d")
    with pytest.raises(tw.TokenRequestError) as held:
        await client.exchange_async(user, audience="svc-d")
    assert held.value.error == "invalid_request"
    assert realm.hits["token"] == 2, "the refusal is held for its key"
