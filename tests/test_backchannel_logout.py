"""The back-channel logout receiver over real HTTP (uvicorn on 127.0.0.1), fed by the DevIdP's
`logout()`: a valid logout token revokes its session (or subject); every way a logout token can
be bad gets the spec's 400 and revokes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import tokenward as tw
from _helpers import expect_invalid
from _uvicorn import serve
from fastapi import FastAPI
from tokenward.fastapi import backchannel_logout_route
from tokenward.testing import DevIdP

CLIENT = "tw-api"
TIMEOUT = 10


@pytest.fixture
def verifier(dev_idp: DevIdP) -> tw.Verifier:
    return tw.Verifier(dev_idp.issuer, http_timeout=2.0)


@pytest.fixture
def receiver(dev_idp: DevIdP, verifier: tw.Verifier) -> Iterator[str]:
    app = FastAPI()
    app.include_router(backchannel_logout_route(verifier, client_id=CLIENT))
    with serve(app) as base:
        url = f"{base}/backchannel-logout"
        dev_idp.add_client(CLIENT, backchannel_logout_url=url)
        yield url


def post(url: str, token: str) -> requests.Response:
    return requests.post(url, data={"logout_token": token}, timeout=TIMEOUT)


def test_a_logout_from_the_idp_revokes_that_session(
    dev_idp: DevIdP, verifier: tw.Verifier, receiver: str
) -> None:
    dev_idp.add_user("alice", password="pw")
    dev_idp.add_client("cli")
    grant = requests.post(
        dev_idp.token_url,
        data={"grant_type": "password", "client_id": "cli", "username": "alice", "password": "pw"},
        timeout=TIMEOUT,
    ).json()
    token = grant["access_token"]
    claims = verifier.verify(token)
    other_session = dev_idp.mint(sub=claims["sub"], sid="another-session")

    deliveries = dev_idp.logout(sub=claims["sub"], sid=claims["sid"])
    assert [(d.client_id, d.status) for d in deliveries] == [(CLIENT, 200)]
    expect_invalid(verifier, token, "revoked")
    # Only that session ended: the user's other session goes on.
    assert verifier.verify(other_session)["sid"] == "another-session"


def test_a_logout_by_subject_alone_revokes_all_of_its_tokens(
    dev_idp: DevIdP, verifier: tw.Verifier, receiver: str
) -> None:
    token = dev_idp.mint(sub="bob", sid="s1")
    verifier.verify(token)
    assert [d.status for d in dev_idp.logout(sub="bob")] == [200]
    expect_invalid(verifier, token, "revoked")
    expect_invalid(verifier, dev_idp.mint(sub="bob", sid="s2"), "revoked")


def test_the_answer_is_never_stored(dev_idp: DevIdP, receiver: str) -> None:
    ok = post(receiver, dev_idp.logout_token(CLIENT, sid="s1"))
    bad = post(receiver, "not-a-jwt")
    assert ok.status_code == 200 and bad.status_code == 400
    assert ok.headers["Cache-Control"] == "no-store" == bad.headers["Cache-Control"]


def _bad_tokens(idp: DevIdP) -> dict[str, str]:
    now = int(time.time())
    return {
        "no events": idp.logout_token(CLIENT, sid="victim", events=None),
        "wrong event": idp.logout_token(CLIENT, sid="victim", events={"urn:other": {}}),
        "a nonce": idp.logout_token(CLIENT, sid="victim", nonce="n"),
        "neither sid nor sub": idp.logout_token(CLIENT),
        "another audience": idp.logout_token("another-client", sid="victim"),
        "another issuer": idp.logout_token(
            CLIENT, sid="victim", iss="http://evil.example/realms/dls"
        ),
        "too old": idp.logout_token(CLIENT, sid="victim", iat=now - 3600, exp=now + 60),
        "expired": idp.logout_token(CLIENT, sid="victim", iat=now - 200, exp=now - 100),
        "no jti": idp.logout_token(CLIENT, sid="victim", jti=None),
        "an access token": idp.mint(aud=CLIENT, sid="victim"),
        "a forged signature": idp.logout_token(CLIENT, sid="victim")[:-8] + "AAAAAAAA",
        "garbage": "not-a-jwt",
    }


def test_a_bad_logout_token_is_a_400_and_revokes_nothing(
    dev_idp: DevIdP, verifier: tw.Verifier, receiver: str
) -> None:
    victim = dev_idp.mint(sid="victim")
    for why, token in _bad_tokens(dev_idp).items():
        response = post(receiver, token)
        assert response.status_code == 400, why
        body: dict[str, Any] = response.json()
        assert body["error"] == "invalid_request", why
        assert token not in body["error_description"], why
    assert verifier.verify(victim)["sid"] == "victim"
    assert verifier.health()["revocations"]["entries"] == 0


def test_a_replayed_logout_token_is_refused(dev_idp: DevIdP, receiver: str) -> None:
    token = dev_idp.logout_token(CLIENT, sid="s1")
    assert post(receiver, token).status_code == 200
    replay = post(receiver, token)
    assert replay.status_code == 400
    assert "before" in replay.json()["error_description"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "application/x-www-form-urlencoded"),
        (b"token=x", "application/x-www-form-urlencoded"),
        (b"logout_token=a&logout_token=b", "application/x-www-form-urlencoded"),
        (b'{"logout_token": "x"}', "application/json"),
    ],
)
def test_a_request_without_one_logout_token_is_a_400(
    receiver: str, body: bytes, content_type: str
) -> None:
    response = requests.post(
        receiver, data=body, headers={"Content-Type": content_type}, timeout=TIMEOUT
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_the_logout_token_is_verified_with_the_realm_keys_after_a_rotation(
    dev_idp: DevIdP, verifier: tw.Verifier, receiver: str
) -> None:
    verifier.warm()
    dev_idp.rotate_keys(keep_old=False)
    token = dev_idp.mint(sid="s9")
    assert post(receiver, dev_idp.logout_token(CLIENT, sid="s9")).status_code == 200
    expect_invalid(verifier, token, "revoked")


def test_a_logout_token_replayed_to_another_replica_is_refused_through_redis(
    dev_idp: DevIdP, redis_server: Any
) -> None:
    # Two verifiers (two replicas' worth): their in-process replay sets are apart, so only the
    # shared one in Redis can tell the second receiver it has been seen.
    first = tw.Verifier(dev_idp.issuer, revocations=redis_server.url, http_timeout=2.0)
    second = tw.Verifier(dev_idp.issuer, revocations=redis_server.url, http_timeout=2.0)
    deadline = time.monotonic() + 15
    while not all(v.health()["revocations"]["connected"] for v in (first, second)):
        assert time.monotonic() < deadline, "never connected to Redis"
        time.sleep(0.02)
    app_one, app_two = FastAPI(), FastAPI()
    app_one.include_router(backchannel_logout_route(first, client_id=CLIENT))
    app_two.include_router(backchannel_logout_route(second, client_id=CLIENT))
    token = dev_idp.logout_token(CLIENT, sid="s1")
    with serve(app_one) as one, serve(app_two) as two:
        assert post(f"{one}/backchannel-logout", token).status_code == 200
        replay = post(f"{two}/backchannel-logout", token)
        assert replay.status_code == 400
        assert "before" in replay.json()["error_description"]
        fresh = dev_idp.logout_token(CLIENT, sid="s2")
        assert post(f"{two}/backchannel-logout", fresh).status_code == 200
