"""Warm start and health of Verifier and TokenClient, against the DevIdP over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import tokenward as tw
from _helpers import MakeVerifier
from tokenward.testing import DevIdP

SECRET = "agent-secret-health"
Clock = Callable[[float], None]

VERIFIER_KEYS = {
    "ready", "keys", "key_set_age", "stale", "last_error", "last_success", "revocations"
}
TOKEN_KEYS = {"ready", "expires_in", "last_error", "last_success"}


def test_a_new_verifier_is_not_ready_and_fetched_nothing(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    health = verifier.health()
    assert set(health) == VERIFIER_KEYS
    assert health == {
        "ready": False,
        "keys": 0,
        "key_set_age": None,
        "stale": False,
        "last_error": None,
        "last_success": None,
        "revocations": {
            "shared": False, "connected": None, "entries": 0, "pending": 0, "last_error": None
        },
    }
    assert dev_idp.hits["jwks"] == 0


def test_after_warm_the_first_verify_makes_no_request(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    before = time.time()
    verifier.warm()
    assert dev_idp.hits["jwks"] == 1
    health = verifier.health()
    assert health["ready"] is True
    assert health["keys"] == len(dev_idp.kids)
    assert health["key_set_age"] is not None and 0 <= health["key_set_age"] < 60
    assert health["stale"] is False and health["last_error"] is None
    assert health["last_success"] is not None and health["last_success"] >= before - 1

    assert verifier.verify(dev_idp.mint(sub="u1"))["sub"] == "u1"
    assert dev_idp.hits["jwks"] == 1, "the first verify fetched no key set"
    verifier.warm()
    assert dev_idp.hits["jwks"] == 1, "warm with usable keys held asks nothing"


def test_warm_async_fetches_on_the_event_loop(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier()

    async def main() -> None:
        await verifier.warm_async()
        assert verifier.health()["ready"] is True
        assert (await verifier.verify_async(dev_idp.mint()))["sub"] == "u1"

    asyncio.run(main())
    assert dev_idp.hits["jwks"] == 1


def test_warm_raises_the_typed_error_and_health_says_why(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(jwks_uri=dev_idp.jwks_uri)
    dev_idp.set_fault("jwks", "500")
    with pytest.raises(tw.KeySetUnavailable):
        verifier.warm()

    async def warm() -> None:
        await verifier.warm_async()

    with pytest.raises(tw.KeySetUnavailable):
        asyncio.run(warm())
    health = verifier.health()
    assert health["ready"] is False and health["last_success"] is None
    assert health["last_error"] is not None and "500" in health["last_error"]

    dev_idp.set_fault("jwks", None)
    verifier.warm()
    health = verifier.health()
    assert health["ready"] is True and health["last_error"] is None


def test_stale_keys_are_reported_while_refetches_fail(
    dev_idp: DevIdP, make_verifier: MakeVerifier, clock: Clock
) -> None:
    dev_idp.jwks_max_age = 60
    verifier = make_verifier(jwks_uri=dev_idp.jwks_uri)
    verifier.warm()
    dev_idp.set_fault("jwks", "down")
    clock(120)
    with pytest.raises(tw.KeySetUnavailable):
        verifier.refresh_keys()
    health = verifier.health()
    assert health["ready"] is True, "stale keys within max_stale are still usable"
    assert health["stale"] is True
    assert health["key_set_age"] is not None and health["key_set_age"] >= 120
    assert health["last_error"] is not None

    dev_idp.set_fault("jwks", None)
    verifier.refresh_keys()
    assert verifier.health()["stale"] is False


def test_health_is_read_without_io(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier()
    for _ in range(100):
        verifier.health()
    assert dev_idp.hits["jwks"] == 0 and dev_idp.hits["discovery"] == 0


# ---- token client ---------------------------------------------------------------------------


@pytest.fixture
def client(dev_idp: DevIdP) -> tw.TokenClient:
    dev_idp.add_client("agent", secret=SECRET, token_lifetime=300)
    return tw.TokenClient(dev_idp.token_url, client_id="agent", client_secret=SECRET, timeout=2)


def test_token_client_health_before_and_after_warm(dev_idp: DevIdP, client: tw.TokenClient) -> None:
    health = client.health()
    assert set(health) == TOKEN_KEYS
    assert health == {"ready": False, "expires_in": None, "last_error": None, "last_success": None}
    assert dev_idp.hits["token"] == 0

    client.warm()
    assert dev_idp.hits["token"] == 1
    health = client.health()
    assert health["ready"] is True
    assert health["expires_in"] is not None and 250 < health["expires_in"] <= 300
    assert health["last_error"] is None and health["last_success"] is not None
    client.get_token()
    client.warm()
    assert dev_idp.hits["token"] == 1, "the warmed token serves the first call"


def test_token_client_health_names_the_failure_never_the_secret(
    dev_idp: DevIdP, client: tw.TokenClient
) -> None:
    dev_idp.set_fault("token", "500")

    async def warm() -> None:
        await client.warm_async()

    with pytest.raises(tw.TokenRequestError):
        asyncio.run(warm())
    health = client.health()
    assert health["ready"] is False
    assert health["last_error"] is not None and "500" in health["last_error"]
    assert SECRET not in repr(health)


def test_token_client_health_expires_in_counts_down(
    dev_idp: DevIdP, client: tw.TokenClient, clock: Clock
) -> None:
    client.warm()
    clock(290)
    health = client.health()
    assert health["expires_in"] is not None and health["expires_in"] <= 10
    clock(20)
    assert client.health()["ready"] is False
    assert client.health()["expires_in"] == 0
