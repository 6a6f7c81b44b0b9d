"""Duplicate member names (issue 11, item 7): a JSON parser that keeps the last copy (serde_json,
Python's json) and one that keeps the first would read different claims from the same token.
Every token here is signed for real by the realm's key, over a payload text with a member named
twice; each is `malformed`, in the payload as in the header, at any depth."""

from __future__ import annotations

import json
import time

import pytest
import tokenward as tw
from _helpers import b64url, expect_invalid
from tokenward.testing import DevIdP


@pytest.fixture
def primed(dev_idp: DevIdP, verifier: tw.Verifier) -> tw.Verifier:
    assert verifier.verify(dev_idp.mint())["sub"] == "u1"
    return verifier


def _members(dev_idp: DevIdP, **changes: object) -> str:
    """The realm's claims as JSON members (no braces), so a test can repeat one."""
    return json.dumps(dev_idp.make_claims() | changes)[1:-1]


def _signed(dev_idp: DevIdP, payload: str, header: str | None = None) -> str:
    return dev_idp.signing_key().sign(payload, header)


def test_a_well_formed_payload_text_verifies(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    assert primed.verify(_signed(dev_idp, "{" + _members(dev_idp) + "}"))["sub"] == "u1"


def test_iss_evil_then_good(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    payload = '{"iss":"https://evil.example.org",' + _members(dev_idp) + "}"
    expect_invalid(primed, _signed(dev_idp, payload), "malformed")


def test_exp_expired_then_valid(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    payload = '{"exp":' + str(int(time.time()) - 3600) + "," + _members(dev_idp) + "}"
    expect_invalid(primed, _signed(dev_idp, payload), "malformed")


def test_typ_refresh_then_bearer(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    payload = '{"typ":"Refresh",' + _members(dev_idp, typ="Bearer") + "}"
    expect_invalid(primed, _signed(dev_idp, payload), "malformed")


def test_a_duplicate_spelled_with_an_escape(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    payload = '{"\\u0073ub":"admin",' + _members(dev_idp) + "}"
    expect_invalid(primed, _signed(dev_idp, payload), "malformed")


def test_a_duplicate_in_a_nested_object(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    roles = '"realm_access":{"roles":["admin"],"roles":["user"]}'
    payload = "{" + _members(dev_idp) + "," + roles + "}"
    expect_invalid(primed, _signed(dev_idp, payload), "malformed")


def test_a_duplicate_in_the_header(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    kid = dev_idp.current_kid
    alg = dev_idp.signing_key().alg
    header = f'{{"alg":"{alg}","typ":"JWT","kid":"{kid}","x5t":"a","x5t":"b"}}'
    token = _signed(dev_idp, "{" + _members(dev_idp) + "}")
    forged = b64url(header.encode()) + token[token.index(".") :]
    expect_invalid(primed, forged, "malformed")
