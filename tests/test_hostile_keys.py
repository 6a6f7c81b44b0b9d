"""Keys that must never verify (issue 11, item 6), served by a key set over real HTTP: Ed25519
points of small order, which accept a forged signature for any message, and RSA keys under
2048 bits. Each is skipped when the set is parsed, with one log line, like a `use: enc` key;
a token naming one fails as `unknown_kid`, never `bad_signature` (or, worse, verifies)."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import tokenward as tw
from _helpers import b64url, b64url_json
from _hostile_server import Answer, HostileServer, hostile_server
from tokenward._native import SigningKey

# ---- Ed25519's points of small order, derived from the curve equation -------------------------

P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P


def _sqrt(a: int) -> int | None:
    a %= P
    x = pow(a, (P + 3) // 8, P)
    if (x * x - a) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    return x if (x * x - a) % P == 0 else None


def small_order_ys() -> list[int]:
    """The y of every point of order 1, 2, 4 or 8 on -x^2 + y^2 = 1 + d x^2 y^2.

    Order 1 and 2: x = 0, so y = 1 or -1. Order 4: y = 0. Order 8: its double has y = 0, i.e.
    x^2 = -y^2, which with the curve gives d y^4 + 2 y^2 - 1 = 0."""
    ys = [1, P - 1, 0]
    root = _sqrt(1 + D)
    assert root is not None
    for sign in (1, -1):
        y_squared = (-1 + sign * root) * pow(D, -1, P) % P
        y = _sqrt(y_squared)
        if y is not None:
            ys += [y, P - y]
    assert len(ys) == 5
    return ys


def small_order_encodings() -> list[bytes]:
    """Every 32-byte encoding of those points: y little-endian, canonical (y < p) or not
    (y + p < 2^255), with either sign bit of x."""
    values: list[int] = []
    for y in small_order_ys():
        values += [y] + ([y + P] if y + P < 2**255 else [])
    out = []
    for value in values:
        for sign in (0, 0x80):
            raw = bytearray(value.to_bytes(32, "little"))
            raw[31] |= sign
            out.append(bytes(raw))
    return out


def test_the_derivation_finds_all_fourteen_encodings() -> None:
    # 5 canonical y values plus the non-canonical p and p + 1, each with two sign bits.
    encodings = small_order_encodings()
    assert len(set(encodings)) == 14
    assert bytes(32) in encodings and (1).to_bytes(32, "little") in encodings


# ---- over HTTP ----------------------------------------------------------------------------------


@pytest.fixture
def idp() -> Iterator[HostileServer]:
    with hostile_server() as server:
        yield server


def _claims(issuer: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": issuer, "sub": "forged", "exp": now + 300, "iat": now}


def _skipped(caplog: pytest.LogCaptureFixture, kid: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if "skipped" in r.getMessage() and f'"{kid}"' in r.getMessage()
    ]


def test_small_order_ed25519_keys_are_skipped(
    idp: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tokenward")
    good = SigningKey.generate("EdDSA", "good")
    weak = [
        {"kty": "OKP", "crv": "Ed25519", "kid": f"small-{i}", "x": b64url(point), "use": "sig"}
        for i, point in enumerate(small_order_encodings())
    ]
    idp.routes["/certs"] = Answer(200, {"keys": [*weak, good.public_jwk()]})
    issuer = idp.url("/realms/r")
    v = tw.Verifier(issuer, jwks_uri=idp.url("/certs"), http_timeout=5)
    # The good key of the same set still verifies.
    assert v.verify(good.sign(json.dumps(_claims(issuer))))["sub"] == "forged"
    # The classic forgery against the identity point: R = identity, S = 0 verifies any message.
    identity = (1).to_bytes(32, "little")
    kid = next(k["kid"] for k in weak if k["x"] == b64url(identity))
    header = {"alg": "EdDSA", "typ": "JWT", "kid": kid}
    forged = f"{b64url_json(header)}.{b64url_json(_claims(issuer))}.{b64url(identity + bytes(32))}"
    with pytest.raises(tw.InvalidToken) as info:
        v.verify(forged)
    assert info.value.code == "unknown_kid"
    # One line per skipped key each time the set is parsed (the unknown kid refetched it once).
    fetches = len(idp.requests_to("/certs"))
    assert fetches == 2
    for key in weak:
        lines = _skipped(caplog, key["kid"])
        assert len(lines) == fetches and all("small order" in line for line in lines)


@pytest.mark.parametrize("bits", [512, 1024, 2047])
def test_rsa_keys_under_2048_bits_are_skipped(
    idp: HostileServer, caplog: pytest.LogCaptureFixture, bits: int
) -> None:
    caplog.set_level(logging.WARNING, logger="tokenward")
    good = SigningKey.generate("RS256", "good")
    modulus = secrets.randbits(bits) | (1 << (bits - 1)) | 1
    short = {
        "kty": "RSA",
        "kid": "short",
        "alg": "RS256",
        "use": "sig",
        # With a leading zero byte, as some servers pad: the bits counted are the value's.
        "n": b64url(b"\x00" + modulus.to_bytes((bits + 7) // 8, "big")),
        "e": "AQAB",
    }
    idp.routes["/certs"] = Answer(200, {"keys": [short, good.public_jwk()]})
    issuer = idp.url("/realms/r")
    v = tw.Verifier(issuer, jwks_uri=idp.url("/certs"), http_timeout=5)
    assert v.verify(good.sign(json.dumps(_claims(issuer))))["sub"] == "forged"
    header = {"alg": "RS256", "typ": "JWT", "kid": "short"}
    token = f"{b64url_json(header)}.{b64url_json(_claims(issuer))}.{b64url(bytes(bits // 8))}"
    with pytest.raises(tw.InvalidToken) as info:
        v.verify(token)
    assert info.value.code == "unknown_kid", "skipped at parse time, not a bad signature"
    lines = _skipped(caplog, "short")
    assert len(lines) == len(idp.requests_to("/certs")) == 2
    assert all(f"RSA key of {bits} bits" in line for line in lines)
