"""`TokenClient`: the native client-credentials client plus the two entry points that are easier
in Python."""

from __future__ import annotations

from typing import Any

from . import _native

_CREDENTIALS = ("client_secret", "private_key")


class TokenClient(_native.TokenClient):
    """Gets and keeps an OAuth2 client-credentials token. Safe to share between threads and
    asyncio tasks; concurrent callers that need a new token cause one request."""

    @classmethod
    def from_env(cls, **overrides: Any) -> TokenClient:
        """A client configured from KEYCLOAK_URL, KEYCLOAK_REALM (default "dls"),
        AGENT_CLIENT_ID or KEYCLOAK_CLIENT_ID, AGENT_CLIENT_SECRET or KEYCLOAK_CLIENT_SECRET, and
        AGENT_PRIVATE_KEY_FILE (a PEM key: private_key_jwt). Keyword arguments win.

        Raises ConfigError naming the variable when one is missing, so an agent fails at
        start-up rather than on its first request."""
        given = any(overrides.get(name) is not None for name in _CREDENTIALS)
        settings = dict(_native.token_client_env_settings(require_credentials=not given))
        if given:
            # The caller's credential replaces the environment's, and with it the method the
            # environment implied.
            for name in (*_CREDENTIALS, "auth_method"):
                settings.pop(name, None)
        settings.update(overrides)
        return cls(**settings)

    async def get_token_async(self) -> str:
        """Like `get_token`, but a fetch is awaited instead of blocking the event loop; a cached
        token is returned at once."""
        token = self._token_now()
        if token is None:
            token = await self._get_token_fetching()
        return token
