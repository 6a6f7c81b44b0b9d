"""`python -m tokenward demo`: a tour of the verifier and the token client against an embedded
DevIdP.

Everything here goes over real HTTP on 127.0.0.1; the printed counts are read off the IdP."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

from . import InvalidToken, KeySetUnavailable, Verifier
from ._demo_agent import run as run_agent
from .testing import DevIdP

FLOOD = 1000


class _Report:
    def __init__(self) -> None:
        self.failures = 0

    def step(self, title: str, ok: bool, detail: str) -> None:
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {title:<44} {detail}")
        if not ok:
            self.failures += 1

    def rejected(self, title: str, verify: Callable[[], Any], expected: str) -> None:
        try:
            verify()
        except InvalidToken as e:
            self.step(title, e.code == expected, f"rejected: {e.code}")
        else:
            self.step(title, False, "accepted (should have been rejected)")


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    # Flip one character of the payload: the signature no longer covers it.
    flipped = "A" if payload[10] != "A" else "B"
    return ".".join([header, payload[:10] + flipped + payload[11:], signature])


async def _flood(verifier: Verifier, tokens: list[str]) -> int:
    """How many of `tokens`, verified concurrently, are refused as `unknown_kid`."""

    async def one(token: str) -> bool:
        try:
            await verifier.verify_async(token)
        except InvalidToken as e:
            return e.code == "unknown_kid"
        return False

    return sum(await asyncio.gather(*(one(t) for t in tokens)))


def run() -> int:
    report = _Report()
    with DevIdP(realm="dls") as idp:
        print(f"DevIdP issuer: {idp.issuer}")
        verifier = Verifier(idp.issuer, allowed_azp=["SmartEM_User"], http_timeout=2.0)

        print("\nVerification")
        token = idp.mint(sub="alice", azp="SmartEM_User", preferred_username="alice")
        claims = verifier.verify(token)
        report.step("valid token", claims["sub"] == "alice", f"sub={claims['sub']}")
        verifier.verify(token)
        hits = verifier.stats()["cache_hits"]
        report.step("same token again (cache)", hits == 1, f"cache_hits={hits}")
        report.rejected(
            "tampered payload", lambda: verifier.verify(_tamper(token)), "bad_signature"
        )
        expired = idp.mint(sub="alice", expires_in=-120)
        report.rejected("expired token", lambda: verifier.verify(expired), "expired")
        other = idp.mint(sub="svc", azp="SomeOtherClient")
        report.rejected("azp not allowed", lambda: verifier.verify(other), "azp_not_allowed")
        id_token = idp.mint(sub="alice", typ="ID")
        report.rejected(
            "ID token as access token", lambda: verifier.verify(id_token), "wrong_token_type"
        )
        none_alg = idp.mint(sub="alice", headers={"alg": "none"})
        report.rejected("alg none", lambda: verifier.verify(none_alg), "alg_not_allowed")

        print("\nKey rotation")
        before = idp.hits["jwks"]
        new_kid = idp.rotate_keys()
        rotated = idp.mint(sub="alice", kid=new_kid)
        claims = verifier.verify(rotated)
        fetched = idp.hits["jwks"] - before
        report.step(
            "token signed with the new key", claims["sub"] == "alice", f"JWKS requests: {fetched}"
        )

        print("\nForged-kid flood")
        # A verifier that has its keys and has not refetched for an unknown kid yet. The flood
        # arrives at once on the event loop: the first forged kid refetches, the others wait
        # for the next refetch the 5 s cooldown allows (a real rotation among them would be
        # picked up by it) and share it.
        target = Verifier(idp.issuer, http_timeout=2.0)
        target.verify(idp.mint(sub="alice", kid=new_kid))
        before = idp.hits["jwks"]
        forged = [
            idp.mint(sub="mallory", kid="forged-" + secrets.token_hex(8)) for _ in range(FLOOD)
        ]
        rejected = asyncio.run(_flood(target, forged))
        fetched = idp.hits["jwks"] - before
        report.step(
            f"{FLOOD} tokens with unknown kids",
            rejected == FLOOD and fetched <= 2,
            f"rejected={rejected}, JWKS requests: {fetched}",
        )

        print("\nIdP outage")
        idp.set_fault("jwks", "down")
        claims = verifier.verify(idp.mint(sub="bob", kid=new_kid))
        report.step(
            "known key while the JWKS is down", claims["sub"] == "bob", "verified from cache"
        )
        cold = Verifier(idp.issuer, http_timeout=2.0)
        try:
            cold.verify(idp.mint(sub="bob"))
        except KeySetUnavailable:
            report.step("no keys at all while the JWKS is down", True, "KeySetUnavailable (503)")
        else:
            report.step("no keys at all while the JWKS is down", False, "accepted")
        idp.set_fault("jwks", None)

        print("\nAgent (client credentials, requests BearerAuth)")
        run_agent(idp, report.step)

        stats = verifier.stats()
        print("\nVerifier stats: " + ", ".join(f"{k}={v}" for k, v in stats.items()))
        print(f"IdP requests: jwks={idp.hits['jwks']} discovery={idp.hits['discovery']}")
    print("\ndemo " + ("passed" if report.failures == 0 else f"FAILED ({report.failures} steps)"))
    return 0 if report.failures == 0 else 1
