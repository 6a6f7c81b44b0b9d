"""`Verifier`: the native verifier plus the two entry points that are easier in Python."""

from __future__ import annotations

from typing import Any

from . import _native


class Verifier(_native.Verifier):
    """Verifies bearer JWTs offline against an issuer's JWKS. See DESIGN.md for the policy."""

    @classmethod
    def from_env(cls, **overrides: Any) -> Verifier:
        """A verifier configured from KEYCLOAK_URL, KEYCLOAK_REALM, KEYCLOAK_VERIFY_ISS,
        KEYCLOAK_ALLOWED_AZP, KEYCLOAK_AUDIENCE and KEYCLOAK_JWKS_URL; keyword arguments win."""
        settings = dict(_native.verifier_env_settings())
        settings.update(overrides)
        issuer = settings.pop("issuer")
        return cls(issuer, **settings)

    async def verify_async(self, token: str | bytes) -> dict[str, Any]:
        """Like `verify`, but a key fetch is awaited instead of blocking the event loop."""
        claims = self._verify_now(token)
        if claims is None:
            claims = await self._verify_fetching(token)
        return claims
