"""Fred's service-to-service tokens on `TokenClient`: `M2MAuthConfig`, `M2MTokenProvider`,
`M2MBearerAuth` and `make_m2m_asgi_client` (httpx), `ClientCredentialsProvider` and the
outbound `BearerAuth` (requests)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel

from ..errors import ConfigError
from ..httpx import BearerAuth as _HttpxBearerAuth
from ..token_client import TokenClient

__all__ = [
    "BearerAuth",
    "ClientCredentialsProvider",
    "M2MAuthConfig",
    "M2MBearerAuth",
    "M2MTokenProvider",
    "make_m2m_asgi_client",
]


class M2MAuthConfig(BaseModel):
    """A confidential client's client-credentials settings; the secret is read from the
    environment variable `secret_env`, never held in the config."""

    keycloak_realm_url: str
    client_id: str
    secret_env: str
    scope: str | None = None

    @property
    def token_url(self) -> str:
        return f"{self.keycloak_realm_url.rstrip('/')}/protocol/openid-connect/token"


class M2MTokenProvider:
    """One cached service token for `cfg` (a `TokenClient`, made on first use): concurrent
    callers needing a new one cause one request."""

    def __init__(self, cfg: M2MAuthConfig) -> None:
        self.cfg = cfg
        self._client: TokenClient | None = None

    @property
    def client(self) -> TokenClient:
        if self._client is None:
            secret = os.environ.get(self.cfg.secret_env, "")
            if not secret:
                raise ConfigError(
                    f"Missing Keycloak client secret in env: {self.cfg.secret_env}",
                    setting=self.cfg.secret_env,
                )
            self._client = TokenClient(
                self.cfg.token_url,
                client_id=self.cfg.client_id,
                client_secret=secret,
                scope=self.cfg.scope,
            )
        return self._client

    async def get_token(self) -> str:
        return await self.client.get_token_async()

    def __repr__(self) -> str:
        return (
            f"M2MTokenProvider(client_id={self.cfg.client_id!r}, token_url={self.cfg.token_url!r})"
        )


class M2MBearerAuth(_HttpxBearerAuth):
    """httpx `auth=` sending the provider's service token (a 401 gets one fresh retry)."""

    def __init__(self, provider: M2MTokenProvider) -> None:
        super().__init__(provider.client)


def make_m2m_asgi_client(app: Any, auth: httpx.Auth) -> httpx.AsyncClient:
    """An httpx client calling `app` in process (no network), with `auth`."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://apiserver",
        timeout=15.0,
        auth=auth,
    )


class ClientCredentialsProvider:
    """A callable returning a valid client-credentials token (`TokenClient` underneath).

    `verify`: None or True (system trust store), or a CA bundle path; False is refused
    (`ConfigError`): tokenward never turns TLS verification off."""

    def __init__(
        self,
        *,
        keycloak_base: str,
        realm: str,
        client_id: str,
        client_secret: str,
        audience: str | None = None,
        verify: bool | str | None = None,
    ) -> None:
        if verify is False:
            raise ConfigError("verify=False is not supported", setting="verify")
        self.token_url = f"{keycloak_base.rstrip('/')}/realms/{realm}/protocol/openid-connect/token"
        self.client_id = client_id
        self.audience = audience
        self.client = TokenClient(
            self.token_url,
            client_id=client_id,
            client_secret=client_secret,
            audience=audience,
            timeout=10.0,
            ca_bundle=verify if isinstance(verify, str) else None,
        )

    def __call__(self) -> str:
        return self.client.get_token()

    def force_refresh(self) -> None:
        self.client.invalidate()

    def __repr__(self) -> str:
        return (
            f"ClientCredentialsProvider(client_id={self.client_id!r}, token_url={self.token_url!r})"
        )


def BearerAuth(token_provider: str | Callable[[], str]) -> Any:
    """requests `auth=` sending `Authorization: Bearer <token>`: a fixed token, or a callable's
    (a `ClientCredentialsProvider` also gets a fresh-token retry on 401)."""
    from ._outbound import bearer_auth

    return bearer_auth(token_provider)
