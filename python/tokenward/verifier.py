"""`Verifier`: the native verifier plus `verify_async`, which is easier written in Python.

The verification and key-set policies are described in docs/architecture.md ("Verification
policy", "Key-set policy"). `from_env` is native: the environment is read, and the verifier
built, in Rust (src/python/from_env.rs); the Python side only checks the variables' names first
(`tokenward._keycloak_env`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _native
from ._keycloak_env import check_environment

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from ._native import _VerifierSettings


class Verifier(_native.Verifier):
    """Verifies bearer JWTs offline against an issuer's JWKS. See docs/architecture.md for the
    policy."""

    @classmethod
    def from_env(cls, **overrides: Unpack[_VerifierSettings]) -> Self:
        """A verifier configured from KEYCLOAK_URL, KEYCLOAK_REALM (default "dls"),
        KEYCLOAK_VERIFY_ISS, KEYCLOAK_ALLOWED_AZP, KEYCLOAK_AUDIENCE and KEYCLOAK_JWKS_URL; the
        keyword arguments win. Warns (once) about a variable named like one of these but
        misspelt, and raises ConfigError for a KEYCLOAK_URL that already contains the realm
        path (unless `issuer` is given)."""
        check_environment(url_used="issuer" not in overrides)
        return super().from_env(**overrides)

    async def verify_async(self, token: str | bytes) -> dict[str, Any]:
        """Like `verify`, but a key fetch is awaited instead of blocking the event loop."""
        claims = self._verify_now(token)
        if claims is None:
            claims = await self._verify_fetching(token)
        return claims
