"""`Verifier`: the native verifier plus `verify_async`, which is easier written in Python.

The verification and key-set policies are described in docs/architecture.md ("Verification
policy", "Key-set policy"). `from_env` is native: the environment is read, and the verifier
built, in Rust (src/python/from_env.rs).
"""

from __future__ import annotations

from typing import Any

from . import _native


class Verifier(_native.Verifier):
    """Verifies bearer JWTs offline against an issuer's JWKS. See docs/architecture.md for the
    policy."""

    async def verify_async(self, token: str | bytes) -> dict[str, Any]:
        """Like `verify`, but a key fetch is awaited instead of blocking the event loop."""
        claims = self._verify_now(token)
        if claims is None:
            claims = await self._verify_fetching(token)
        return claims
