"""`TokenClient`: the native client-credentials client plus `get_token_async`, which is easier
written in Python.

`from_env` is native: the environment is read, and the client (credential included) built, in
Rust (src/python/from_env.rs), so the secret never becomes a Python value; the Python side only
checks the variables' names first (`tokenward._keycloak_env`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import _native
from ._keycloak_env import check_environment

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from ._native import _TokenClientSettings


class TokenClient(_native.TokenClient):
    """Gets and keeps an OAuth2 client-credentials token. Safe to share between threads and
    asyncio tasks; concurrent callers that need a new token cause one request."""

    @classmethod
    def from_env(cls, **overrides: Unpack[_TokenClientSettings]) -> Self:
        """A client configured from KEYCLOAK_URL, KEYCLOAK_REALM (default "dls"),
        AGENT_CLIENT_ID or KEYCLOAK_CLIENT_ID, AGENT_CLIENT_SECRET or KEYCLOAK_CLIENT_SECRET,
        and AGENT_PRIVATE_KEY_FILE; the keyword arguments win. Warns (once) about a variable
        named like one of these but misspelt, and raises ConfigError for a KEYCLOAK_URL that
        already contains the realm path (unless `token_url` or `issuer` is given)."""
        check_environment(url_used=not ({"token_url", "issuer"} & overrides.keys()))
        return super().from_env(**overrides)

    async def get_token_async(self) -> str:
        """Like `get_token`, but a fetch is awaited instead of blocking the event loop; a cached
        token is returned at once."""
        token = self._token_now()
        if token is None:
            token = await self._get_token_fetching()
        return token

    async def exchange_async(
        self,
        subject_token: str,
        *,
        audience: str | Sequence[str] | None = None,
        scope: str | Sequence[str] | None = None,
        requested_token_type: str | None = None,
    ) -> str:
        """Like `exchange`, but the request is awaited instead of blocking the event loop; a
        cached exchange is returned at once."""
        token = self._exchange_now(
            subject_token,
            audience=audience,
            scope=scope,
            requested_token_type=requested_token_type,
        )
        if token is not None:
            return token
        return await self._exchange_async(
            subject_token,
            audience=audience,
            scope=scope,
            requested_token_type=requested_token_type,
        )
