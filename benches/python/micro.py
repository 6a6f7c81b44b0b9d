"""Token verification, one call at a time and from two threads: the `cryptography` floor, PyJWT
(with a key object, and through PyJWKClient as SmartEM's backend does), joserfc, and tokenward
with its verified-token cache off and on. Same keys, same tokens, one process."""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import jwt
import tokenward
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fixtures import ALGORITHMS, AZP, LEEWAY, Realm, Signed
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jwt import JWTClaimsRegistry
from timing import Case, calibrate, interleaved, threaded_throughput

FLOOR = "cryptography (floor)"
PYJWT = "PyJWT decode"
PYJWKCLIENT = "PyJWT + PyJWKClient (SmartEM)"
JOSERFC = "joserfc"
TW_UNCACHED = "tokenward, cache off"
TW_CACHED = "tokenward, cached"
TW_CACHED_ASYNC = "tokenward verify_async, cached"


def _floor(signed: Signed) -> Callable[[], Any]:
    """The raw signature check over the same bytes: what any verifier must at least spend."""
    key, data, sig = signed.public_key, signed.signing_input, signed.signature
    if signed.alg == "RS256":
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return lambda: key.verify(sig, data, pkcs1, sha256)
    if signed.alg == "ES256":
        half = len(sig) // 2
        der = encode_dss_signature(
            int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big")
        )
        ecdsa = ec.ECDSA(hashes.SHA256())
        return lambda: key.verify(der, data, ecdsa)
    return lambda: key.verify(sig, data)


def _pyjwt(signed: Signed, issuer: str) -> Callable[[], Any]:
    token, key, algs = signed.token, signed.public_key, [signed.alg]
    options = {"verify_aud": False}

    def decode() -> Any:
        return jwt.decode(
            token, key, algorithms=algs, issuer=issuer, leeway=LEEWAY, options=options
        )

    return decode


class SmartEmPyJwt:
    """The verification SmartEM's backend does per request (its `auth._verify`, without the
    FastAPI parts): PyJWKClient(cache_keys=True, lifespan=600), get_signing_key_from_jwt, then
    jwt.decode with RS256, leeway 60, the issuer check and no audience check; then the azp
    allowlist."""

    def __init__(self, jwks_uri: str, issuer: str, allowed_azp: frozenset[str]) -> None:
        self.client = jwt.PyJWKClient(jwks_uri, cache_keys=True, lifespan=600)
        self.issuer = issuer
        self.allowed_azp = allowed_azp

    def __call__(self, token: str) -> dict[str, Any]:
        key = self.client.get_signing_key_from_jwt(token).key
        claims = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            options={"verify_iss": True, "verify_aud": False},
            leeway=LEEWAY,
            issuer=self.issuer,
        )
        if self.allowed_azp and claims.get("azp") not in self.allowed_azp:
            raise PermissionError("azp not permitted")
        return claims


def _joserfc(signed: Signed, issuer: str) -> Callable[[], Any]:
    key_type = {"RS256": RSAKey, "ES256": ECKey, "EdDSA": OKPKey}[signed.alg]
    key = key_type.import_key(signed.jwk)
    token, algs = signed.token, [signed.alg]
    registry = JWTClaimsRegistry(leeway=LEEWAY, iss={"essential": True, "value": issuer})

    def decode() -> Any:
        result = jose_jwt.decode(token, key, algorithms=algs)
        registry.validate(result.claims)
        return result.claims

    return decode


def verifiers(realm: Realm) -> tuple[tokenward.Verifier, tokenward.Verifier]:
    """The two tokenward verifiers: cache off, and the default cache."""
    uncached = tokenward.Verifier(realm.issuer, jwks_uri=realm.jwks_uri, cache_size=0)
    cached = tokenward.Verifier(realm.issuer, jwks_uri=realm.jwks_uri)
    return uncached, cached


def verify_cases(realm: Realm) -> list[Case]:
    uncached, cached = verifiers(realm)
    smartem = SmartEmPyJwt(realm.jwks_uri, realm.issuer, frozenset({AZP}))
    cases: list[Case] = []
    for alg in ALGORITHMS:
        signed = realm.tokens[alg]
        token = signed.token
        fns: list[tuple[str, Callable[[], Any]]] = [
            (FLOOR, _floor(signed)),
            (PYJWT, _pyjwt(signed, realm.issuer)),
        ]
        if alg == "RS256":
            fns.append((PYJWKCLIENT, lambda t=token: smartem(t)))
        try:
            fns.append((JOSERFC, _joserfc(signed, realm.issuer)))
        except Exception as exc:  # noqa: BLE001 - a library without this algorithm is skipped
            print(f"  joserfc: {alg} skipped ({exc})")
        fns += [
            (TW_UNCACHED, lambda t=token: uncached.verify(t)),
            (TW_CACHED, lambda t=token: cached.verify(t)),
        ]
        for name, fn in fns:
            result = fn()
            if name != FLOOR:
                assert result["sub"] == "0b6e4c2a-6f0e-4a53-9b3c-2f4f1a8d9e10", (name, result)
            cases.append(Case("verify", name, alg, fn))
    return cases


def run_verify(realm: Realm, rounds: int, batch_seconds: float) -> list[dict[str, Any]]:
    cases = verify_cases(realm)
    interleaved(cases, rounds, batch_seconds)
    return [c.summary() for c in cases]


def run_async_cached(realm: Realm, rounds: int, batch_seconds: float) -> list[dict[str, Any]]:
    """`await verifier.verify_async(token)` on a cache hit, as the FastAPI layer calls it."""
    _, cached = verifiers(realm)
    token = realm.tokens["RS256"].token
    loop = asyncio.new_event_loop()

    async def batch(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await cached.verify_async(token)
        return time.perf_counter() - start

    try:
        loop.run_until_complete(batch(10))
        per_op = loop.run_until_complete(batch(1000)) / 1000
        n = max(1, int(batch_seconds / per_op))
        case = Case("verify", TW_CACHED_ASYNC, "RS256", lambda: None, n=n)
        for _ in range(rounds):
            case.per_op.append(loop.run_until_complete(batch(n)) / n)
        return [case.summary()]
    finally:
        loop.close()


#: The reference for thread scaling: a C function that releases the GIL for a similar time.
GIL_FREE_REFERENCE = "hashlib.sha256 of 48 KB (reference: GIL released)"


def run_threads(realm: Realm, repeats: int, seconds: float) -> list[dict[str, Any]]:
    """Throughput with one thread and with two, per verifier; repeats interleaved. The
    reference row shows what this machine's two cores give any GIL-releasing call of that
    grain."""
    uncached, cached = verifiers(realm)
    token = realm.tokens["RS256"].token
    block = bytes(48 * 1024)
    subjects: list[tuple[str, Callable[[], Any]]] = [
        (TW_UNCACHED, lambda: uncached.verify(token)),
        (TW_CACHED, lambda: cached.verify(token)),
        (PYJWT, _pyjwt(realm.tokens["RS256"], realm.issuer)),
        (GIL_FREE_REFERENCE, lambda: hashlib.sha256(block).digest()),
    ]
    results = []
    for name, fn in subjects:
        fn()
        n = calibrate(fn, seconds)
        one: list[float] = []
        two: list[float] = []
        for _ in range(repeats):
            one.append(threaded_throughput(fn, 1, n))
            two.append(threaded_throughput(fn, 2, n))
        ratios = [b / a for a, b in zip(one, two, strict=True)]
        results.append(
            {
                "group": "threads",
                "name": name,
                "variant": "RS256",
                "ops_per_thread": n,
                "one_thread_ops": statistics.median(one),
                "two_threads_ops": statistics.median(two),
                "scaling": statistics.median(ratios),
                "scaling_samples": ratios,
            }
        )
    return results
