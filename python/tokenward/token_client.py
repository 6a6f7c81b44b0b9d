"""`TokenClient`: the native client-credentials client plus `get_token_async`, which is easier
written in Python.

`from_env` is native: the environment is read, and the client (credential included) built, in
Rust (src/python/from_env.rs), so the secret never becomes a Python value.
"""

from __future__ import annotations

from . import _native


class TokenClient(_native.TokenClient):
    """Gets and keeps an OAuth2 client-credentials token. Safe to share between threads and
    asyncio tasks; concurrent callers that need a new token cause one request."""

    async def get_token_async(self) -> str:
        """Like `get_token`, but a fetch is awaited instead of blocking the event loop; a cached
        token is returned at once."""
        token = self._token_now()
        if token is None:
            token = await self._get_token_fetching()
        return token
