"""The key-set policy of docs/architecture.md, observed from outside: what the IdP sees
(`idp.hits`, `idp.in_flight`) and the verifier's counters (`v.stats()`), over real HTTP with
injected faults.

Races are forced with barriers and by holding the IdP's answer ("slow" fault, released by
healing it), never with sleeps; nothing asserts on time."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import tokenward as tw
from _helpers import MakeVerifier, expect_invalid, header_of, with_header
from tokenward._native import SigningKey
from tokenward.testing import DevIdP


def _prime(idp: DevIdP, v: tw.Verifier) -> None:
    assert v.verify(idp.mint())["sub"] == "u1"
    assert idp.hits["jwks"] == 1


def test_keys_are_fetched_once_and_reused(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    for i in range(5):
        assert verifier.verify(dev_idp.mint(sub=f"u{i}"))["sub"] == f"u{i}"
    assert dev_idp.hits["jwks"] == 1
    stats = verifier.stats()
    assert stats["jwks_fetches"] == 1
    assert stats["verified"] == 5
    assert stats["jwks_errors"] == 0


def test_discovery_cannot_send_the_key_fetch_to_another_http_origin(
    dev_idp: DevIdP, verifier: tw.Verifier, evil_idp: DevIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The realm's discovery document (plain http) names a key set on another origin: refused,
    # and the realm's own path is used. (A jwks_uri the document names on the issuer's own
    # origin, or on any https origin, is used: tests/test_hostile_servers.py.)
    mirror = evil_idp
    mirror.extra_jwks.extend(dev_idp.jwks()["keys"])
    document = dev_idp.discovery() | {"jwks_uri": mirror.jwks_uri}
    monkeypatch.setattr(dev_idp, "discovery", lambda: document)
    assert verifier.verify(dev_idp.mint())["sub"] == "u1"
    assert dev_idp.hits["discovery"] >= 1
    assert (dev_idp.hits["jwks"], mirror.hits["jwks"]) == (1, 0)


@pytest.mark.parametrize("fault", ["down", "500", "garbage"])
def test_without_discovery_the_standard_jwks_path_is_used(
    dev_idp: DevIdP, verifier: tw.Verifier, fault: str
) -> None:
    dev_idp.set_fault("discovery", fault)
    _prime(dev_idp, verifier)


def test_an_explicit_jwks_uri_skips_discovery(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    _prime(dev_idp, make_verifier(jwks_uri=dev_idp.jwks_uri))
    assert dev_idp.hits["discovery"] == 0


# ---- rotation and unknown kids -----------------------------------------------------------------


def test_rotation_is_picked_up_by_the_first_token_with_the_new_kid(
    dev_idp: DevIdP, verifier: tw.Verifier
) -> None:
    old_token = dev_idp.mint(sub="old")
    _prime(dev_idp, verifier)
    new_kid = dev_idp.rotate_keys()
    token = dev_idp.mint(sub="new")
    assert header_of(token)["kid"] == new_kid
    assert verifier.verify(token)["sub"] == "new"
    assert dev_idp.hits["jwks"] == 2
    assert verifier.verify(old_token)["sub"] == "old", "the old key is still published"
    assert verifier.verify(dev_idp.mint(sub="again"))["sub"] == "again"
    assert dev_idp.hits["jwks"] == 2


def test_a_forged_kid_flood_costs_at_most_one_fetch(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier(jwks_cooldown=30)
    _prime(dev_idp, v)
    template = dev_idp.mint()
    for i in range(1000):
        expect_invalid(v, with_header(template, kid=f"forged-{i}"), "unknown_kid")
    assert dev_idp.hits["jwks"] == 2, "one refetch for the first unknown kid, then cooldown"
    stats = v.stats()
    assert stats["unknown_kid_rejected"] >= 999
    assert stats["jwks_fetches"] == 2
    # Known kids are not affected by the flood.
    assert v.verify(dev_idp.mint(sub="still-fine"))["sub"] == "still-fine"


def test_a_rotation_during_a_long_cooldown_waits_for_the_cooldown(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    # A cooldown longer than the 5 s wait bound: inside it an unknown kid is refused at once (the
    # default 5 s cooldown makes it wait for the next refetch instead: test_rotation_under_attack).
    v = make_verifier(jwks_cooldown=3600)
    _prime(dev_idp, v)
    expect_invalid(v, dev_idp.mint(kid="forged"), "unknown_kid")  # starts the cooldown
    assert dev_idp.hits["jwks"] == 2
    dev_idp.rotate_keys()
    expect_invalid(v, dev_idp.mint(), "unknown_kid")
    assert dev_idp.hits["jwks"] == 2, "no fetch during the cooldown"


def test_a_removed_kid_leaves_the_key_set_and_the_token_cache(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(jwks_cooldown=3600)  # the old kid is refused at once, not in 5 s
    old_token = dev_idp.mint(sub="old")
    assert verifier.verify(old_token)["sub"] == "old"
    assert verifier.verify(old_token)["sub"] == "old"
    assert verifier.stats()["cache_hits"] == 1, "the old token is in the token cache"
    dev_idp.rotate_keys(keep_old=False)
    assert verifier.verify(dev_idp.mint(sub="new"))["sub"] == "new"  # refetch: old kid gone
    assert dev_idp.hits["jwks"] == 2
    expect_invalid(verifier, old_token, "unknown_kid")
    assert verifier.stats()["cache_hits"] == 1


def test_concurrent_verifies_of_a_new_kid_share_one_fetch(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier(http_timeout=30.0)  # the held fetch must outlast the race set-up
    _prime(dev_idp, v)
    dev_idp.rotate_keys()
    token = dev_idp.mint(sub="rotated")
    dev_idp.set_fault("jwks", "slow")  # hold the refetch until every thread has started
    barrier = threading.Barrier(33)
    results: list[Any] = []
    lock = threading.Lock()

    def verify() -> None:
        barrier.wait()
        try:
            outcome: Any = v.verify(token)["sub"]
        except tw.TokenwardError as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=verify) for _ in range(32)]
    for t in threads:
        t.start()
    barrier.wait()
    try:
        assert dev_idp.in_flight.wait_for("jwks", 1), "no refetch arrived"
    finally:
        dev_idp.set_fault("jwks", None)  # release the held refetch
    for t in threads:
        t.join(timeout=60)
    assert results == ["rotated"] * 32
    assert dev_idp.hits["jwks"] == 2, "exactly one fetch for 32 concurrent callers"


# ---- outages -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["down", "500", "garbage"])
def test_idp_failing_after_the_first_fetch_known_kids_still_verify(
    dev_idp: DevIdP, verifier: tw.Verifier, fault: str
) -> None:
    _prime(dev_idp, verifier)
    for endpoint in ("jwks", "discovery"):
        dev_idp.set_fault(endpoint, fault)
    assert verifier.verify(dev_idp.mint(sub="during-outage"))["sub"] == "during-outage"
    with pytest.raises(tw.KeySetUnavailable):
        verifier.refresh_keys()
    assert verifier.stats()["jwks_errors"] >= 1
    assert verifier.verify(dev_idp.mint(sub="after-failed-refresh"))["sub"] == (
        "after-failed-refresh"
    )


@pytest.mark.parametrize("fault", ["down", "500", "garbage"])
def test_idp_failing_with_an_empty_cache_raises_key_set_unavailable(
    dev_idp: DevIdP, verifier: tw.Verifier, fault: str
) -> None:
    for endpoint in ("jwks", "discovery"):
        dev_idp.set_fault(endpoint, fault)
    with pytest.raises(tw.KeySetUnavailable) as info:
        verifier.verify(dev_idp.mint())
    assert not isinstance(info.value, tw.InvalidToken), "an outage is a 503, never a 401"
    assert isinstance(info.value, tw.TokenwardError)
    assert dev_idp.hits["jwks"] >= 1
    assert verifier.stats()["jwks_errors"] >= 1


def test_a_slow_idp_with_an_empty_cache_times_out_as_key_set_unavailable(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier(http_timeout=1.0, jwks_uri=dev_idp.jwks_uri)
    dev_idp.set_fault("jwks", "slow")
    with pytest.raises(tw.KeySetUnavailable):
        v.verify(dev_idp.mint())


def test_a_garbage_jwks_keeps_the_old_keys(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    _prime(dev_idp, verifier)
    dev_idp.set_fault("jwks", "garbage")
    with pytest.raises(tw.KeySetUnavailable):
        verifier.refresh_keys()
    assert dev_idp.hits["jwks"] == 2
    assert verifier.verify(dev_idp.mint(sub="kept"))["sub"] == "kept"
    dev_idp.set_fault("jwks", None)
    verifier.refresh_keys()
    assert dev_idp.hits["jwks"] == 3


def test_a_slow_jwks_never_delays_a_known_kid(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    v = make_verifier(http_timeout=10.0)  # longer than this test needs; close() drops it
    _prime(dev_idp, v)
    dev_idp.set_fault("jwks", "slow")
    refetch_done = threading.Event()
    outcome: list[BaseException] = []

    def unknown_kid() -> None:
        try:
            v.verify(dev_idp.mint(kid="brand-new-kid"))
        except tw.TokenwardError as exc:
            outcome.append(exc)
        finally:
            refetch_done.set()

    background = threading.Thread(target=unknown_kid, daemon=True)
    background.start()
    try:
        assert dev_idp.in_flight.wait_for("jwks", 1), "the unknown kid did not refetch"
        # The refetch is held by the IdP right now; a known-kid token must not wait for it.
        assert v.verify(dev_idp.mint(sub="known"))["sub"] == "known"
        assert not refetch_done.is_set()
        assert dev_idp.in_flight["jwks"] == 1
    finally:
        dev_idp.set_fault("jwks", None)
    background.join(timeout=30)
    assert refetch_done.is_set()
    assert len(outcome) == 1 and isinstance(outcome[0], tw.InvalidToken)
    assert outcome[0].code == "unknown_kid"


# ---- what is in the set ------------------------------------------------------------------------


def test_unusable_keys_are_skipped_and_the_others_work(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(jwks_cooldown=3600)  # unknown kids refused at once, not in 5 s
    enc = SigningKey.generate("RS256", "enc-key")
    enc_jwk = enc.public_jwk() | {"use": "enc"}
    dev_idp.extra_jwks.extend(
        [
            enc_jwk,
            {"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": "A" * 76, "alg": "EdDSA"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
            {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "no-modulus", "e": "AQAB"},
            {"kty": "RSA", "kid": "bad-b64", "n": "!!!", "e": "AQAB"},
            {"kty": "XYZ", "kid": "unknown-kty"},
            {"kid": "no-kty"},
            {"kty": "RSA", "kid": 42, "n": "AQAB", "e": "AQAB"},
        ]
    )
    ed_token = dev_idp.mint(alg="EdDSA", sub="ed")  # publishes an Ed25519 key too
    assert verifier.verify(dev_idp.mint(sub="rs"))["sub"] == "rs"
    assert verifier.verify(ed_token)["sub"] == "ed"
    claims = json.dumps(dev_idp.make_claims())
    expect_invalid(verifier, enc.sign(claims), "unknown_kid")
    expect_invalid(verifier, dev_idp.mint(kid="ed448", alg="EdDSA"), "unknown_kid")
    hmac_header = {"alg": "HS256", "kid": "hmac"}
    expect_invalid(verifier, dev_idp.mint(kid="hmac", headers=hmac_header), "alg_not_allowed")
    assert dev_idp.hits["jwks"] == 2, "at most the first fetch and one unknown-kid refetch"
