"""Time-dependent key-set and token-cache behaviour, with tokenward's clock moved forward
(the `clock` fixture) instead of waiting. The DevIdP sends `Cache-Control: max-age=300`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import tokenward as tw
from _helpers import MakeVerifier
from tokenward.testing import DevIdP

Clock = Callable[[float], None]


def test_refresh_ahead_fetches_once_in_the_background(
    dev_idp: DevIdP, make_verifier: MakeVerifier, clock: Clock
) -> None:
    verifier = make_verifier()
    token = dev_idp.mint(sub="alice", expires_in=7200)
    verifier.verify(token)
    assert dev_idp.hits["jwks"] == 1

    clock(250)  # past 80 % of the 300 s TTL, not expired yet
    assert verifier.verify(token)["sub"] == "alice"  # answered from the cache, no waiting
    assert dev_idp.hits.wait_for("jwks", 2)
    for _ in range(20):
        verifier.verify(token)
    assert verifier.stats()["refreshes_ahead"] == 1
    assert dev_idp.hits["jwks"] == 2


def test_stale_keys_are_served_up_to_max_stale(
    dev_idp: DevIdP, make_verifier: MakeVerifier, clock: Clock
) -> None:
    verifier = make_verifier(jwks_max_stale=600)
    verifier.verify(dev_idp.mint(sub="alice", expires_in=7200))
    dev_idp.set_fault("jwks", "down")

    clock(400)  # the key set expired 100 s ago; the IdP is down
    assert verifier.verify(dev_idp.mint(sub="bob", expires_in=7200))["sub"] == "bob"
    assert verifier.stats()["stale_served"] >= 1

    clock(600)  # now 700 s past expiry, beyond max_stale
    with pytest.raises(tw.KeySetUnavailable):
        verifier.verify(dev_idp.mint(sub="carol", expires_in=7200))

    dev_idp.set_fault("jwks", None)
    clock(10)  # past the failed-fetch backoff
    assert verifier.verify(dev_idp.mint(sub="dave", expires_in=7200))["sub"] == "dave"


def test_a_cached_token_never_outlives_its_exp(
    dev_idp: DevIdP, make_verifier: MakeVerifier, clock: Clock
) -> None:
    verifier = make_verifier()
    token = dev_idp.mint(sub="alice", expires_in=120)
    verifier.verify(token)
    verifier.verify(token)
    assert verifier.stats()["cache_hits"] == 1

    # Inside the 60 s leeway by a second or more: `exp` and the verifier's now are whole seconds,
    # so a 59 s step failed whenever the mint fell late in its second.
    clock(120 + 58)
    assert verifier.verify(token)["sub"] == "alice"
    clock(3)
    with pytest.raises(tw.ExpiredToken) as raised:
        verifier.verify(token)
    assert raised.value.code == "expired"


def test_unknown_kid_refetch_again_after_the_cooldown(
    dev_idp: DevIdP, make_verifier: MakeVerifier, clock: Clock
) -> None:
    verifier = make_verifier(jwks_cooldown=30)
    verifier.verify(dev_idp.mint(sub="alice", expires_in=7200))
    forged = dev_idp.mint(sub="mallory", kid="forged", expires_in=7200)
    for _ in range(3):
        with pytest.raises(tw.InvalidToken):
            verifier.verify(forged)
    assert dev_idp.hits["jwks"] == 2  # the first fetch, then one unknown-kid refetch

    clock(31)
    new_kid = dev_idp.rotate_keys()
    assert verifier.verify(dev_idp.mint(sub="bob", kid=new_kid, expires_in=7200))["sub"] == "bob"
    assert dev_idp.hits["jwks"] == 3
