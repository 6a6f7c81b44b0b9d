"""`verify` hands out a fresh dict each call: a caller that mutates its claims (nested ones too)
changes nothing for the next caller, also when the claims come from the verified-token cache."""

from __future__ import annotations

from typing import Any

import pytest
import tokenward as tw
from _helpers import MakeVerifier, claims_of
from tokenward.testing import DevIdP

NESTED: dict[str, Any] = {
    "realm_access": {"roles": ["viewer", "editor"]},
    "resource_access": {"app": {"roles": ["read"]}, "account": {"roles": []}},
    "groups": ["/viewers", ["deep", {"x": 1}]],
    "aud": ["account", "app"],
    "ratio": 0.5,
    "big": 2**63 + 5,
    "flag": False,
    "nothing": None,
    "name": "Zoë ✓",
}


def _vandalise(claims: dict[str, Any]) -> None:
    claims["realm_access"]["roles"].append("admin")
    claims["resource_access"]["app"]["roles"].clear()
    claims["resource_access"]["account"]["roles"].append("x")
    claims["groups"][1][1]["x"] = 2
    claims["groups"][1].append("more")
    claims["aud"].append("evil")
    claims["sub"] = "someone-else"
    del claims["exp"]


@pytest.mark.parametrize("cache_size", [10_000, 0])
def test_mutating_returned_claims_does_not_leak_into_the_next_call(
    dev_idp: DevIdP, make_verifier: MakeVerifier, cache_size: int
) -> None:
    verifier = make_verifier(cache_size=cache_size)
    token = dev_idp.mint(**NESTED)
    expected = claims_of(token)
    for _ in range(3):
        claims = verifier.verify(token)
        assert claims == expected
        assert type(claims["big"]) is int and type(claims["ratio"]) is float
        _vandalise(claims)
    assert verifier.verify(token) == expected
    hits = verifier.stats()["cache_hits"]
    assert hits == (4 - 1 if cache_size else 0)


async def test_async_path_hands_out_fresh_dicts_too(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    token = dev_idp.mint(**NESTED)
    expected = claims_of(token)
    first = await verifier.verify_async(token)
    _vandalise(first)
    second = await verifier.verify_async(token)
    assert second == expected and second is not first
    _vandalise(second)
    assert verifier.verify(token) == expected


def test_two_verifiers_of_one_token_are_independent(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    token = dev_idp.mint(**NESTED)
    a, b = make_verifier(), make_verifier()
    _vandalise(a.verify(token))
    _vandalise(a.verify(token))
    assert b.verify(token) == claims_of(token) == a.verify(token)
