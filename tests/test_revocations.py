"""`Verifier.revoke` in one process (the default, no Redis): sessions, subjects, clients and
token ids refused with code `revoked`, cached tokens included; `not_before`; what expires; the
errors; health() and stats()."""

from __future__ import annotations

import time
from typing import Any

import pytest
import tokenward as tw
from _helpers import MakeVerifier, expect_invalid
from tokenward.testing import DevIdP


def test_a_revoked_session_is_refused_even_when_cached(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier()
    token = dev_idp.mint(sid="s1")
    other_session = dev_idp.mint(sid="s2")
    v.verify(token)
    v.verify(token)
    assert v.stats()["cache_hits"] == 1
    v.revoke(sid="s1")
    expect_invalid(v, token, "revoked")
    expect_invalid(v, token, "revoked")  # the cached entry is refused each time
    assert v.verify(other_session)["sid"] == "s2"
    assert v.stats()["rejected_revoked"] == 2


def test_a_revoked_subject_or_client_refuses_what_was_issued_until_then(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier()
    now = int(time.time())
    old = dev_idp.mint(sub="alice", iat=now - 10)
    agent = dev_idp.mint(sub="svc", azp="Agent", iat=now - 10)
    v.verify(old)
    v.revoke(sub="alice")
    v.revoke(azp="Agent")
    expect_invalid(v, old, "revoked")
    expect_invalid(v, agent, "revoked")
    # Issued after the revocation: a new sign-in works.
    assert v.verify(dev_idp.mint(sub="alice", iat=now + 2))["sub"] == "alice"
    # A matching token without iat cannot be placed in time: refused.
    expect_invalid(v, dev_idp.mint(sub="alice", iat=None), "revoked")
    assert v.verify(dev_idp.mint(sub="bob", iat=now - 10))["sub"] == "bob"


def test_not_before_refuses_tokens_issued_before_that_time(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier()
    now = int(time.time())
    v.revoke(azp="Agent", not_before=now + 30)
    expect_invalid(v, dev_idp.mint(azp="Agent", iat=now + 29), "revoked")
    assert v.verify(dev_idp.mint(azp="Agent", iat=now + 30))["azp"] == "Agent"


def test_a_revoked_jti_refuses_that_token_only(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier()
    token = dev_idp.mint(jti="leaked")
    v.verify(token)
    v.revoke(jti="leaked")
    expect_invalid(v, token, "revoked")
    assert v.verify(dev_idp.mint())["sub"] == "u1"


def test_revocations_expire_after_the_horizon(
    make_verifier: MakeVerifier, clock: Any
) -> None:
    v = make_verifier(max_lifetime=600, leeway=0)
    v.revoke(sid="s1")
    assert v.health()["revocations"]["entries"] == 1
    clock(601)
    v.revoke(sid="s2")  # any change drops what has expired
    assert v.health()["revocations"]["entries"] == 1


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({}, "revoke"),
        ({"sid": ""}, "sid"),
        ({"sid": "s", "not_before": 5.0}, "not_before"),
        ({"jti": "j", "not_before": 5.0}, "not_before"),
        ({"sub": "u", "not_before": float("nan")}, "not_before"),
    ],
)
def test_bad_revocations_are_config_errors_naming_the_argument(
    make_verifier: MakeVerifier, kwargs: dict[str, Any], setting: str
) -> None:
    v = make_verifier()
    with pytest.raises(tw.ConfigError, match=setting):
        v.revoke(**kwargs)


@pytest.mark.parametrize("url", ["http://redis:6379", "redis:/x", "localhost:6379"])
def test_a_revocations_setting_that_is_no_redis_url_is_refused(
    dev_idp: DevIdP, url: str
) -> None:
    with pytest.raises(tw.ConfigError, match="revocations"):
        tw.Verifier(dev_idp.issuer, revocations=url)


def test_a_bad_revocation_horizon_is_refused(dev_idp: DevIdP) -> None:
    with pytest.raises(tw.ConfigError, match="revocation_horizon"):
        tw.Verifier(dev_idp.issuer, revocation_horizon=0)


def test_health_reports_in_process_revocations(make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    assert v.health()["revocations"] == {
        "shared": False,
        "connected": None,
        "entries": 0,
        "pending": 0,
        "last_error": None,
    }
    v.revoke(sub="a", azp="b")
    assert v.health()["revocations"]["entries"] == 2


def test_an_unreachable_redis_does_not_stop_verification(dev_idp: DevIdP) -> None:
    # A port nothing listens on: the verifier starts, verifies, and revokes locally.
    v = tw.Verifier(dev_idp.issuer, revocations="redis://127.0.0.1:1/0", http_timeout=2.0)
    token = dev_idp.mint(sid="s1")
    assert v.verify(token)["sid"] == "s1"
    v.revoke(sid="s1")
    expect_invalid(v, token, "revoked")
    health = v.health()["revocations"]
    assert health["shared"] is True and health["connected"] is False
    assert health["pending"] == 1
    assert "127.0.0.1:1/0" not in repr(v)
