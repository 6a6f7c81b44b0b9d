"""Fred's forwarding with token exchange: what `initialize_user_security(..., exchange=...)`
configures, and how `KeycloakUser.bearer` / `bearer_async` / `bearer_for` use it.

Configured, the user's token is exchanged (RFC 8693, `TokenClient.exchange`, cached per user
token and audience) by this service's own confidential client for a token minted for the
downstream audience, so the downstream service can turn `FRED_STRICT_AUDIENCE` on. Not
configured, the user's own token is forwarded, as Fred does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException

from ..errors import TokenRequestError
from ..forwarding import ForwardedBearer
from ..token_client import TokenClient

logger = logging.getLogger("tokenward.fred")

#: What `exchange=` takes: `(client, audience)`, the client a `TokenClient` or anything with
#: one as `.client` (`ClientCredentialsProvider`, `M2MTokenProvider`).
ExchangeSetting = tuple[Any, "str | Sequence[str]"]


@dataclass(frozen=True)
class ForwardingExchange:
    client: TokenClient
    #: The downstream audience `user.bearer` is exchanged for.
    audience: str | Sequence[str]

    @classmethod
    def of(cls, setting: ExchangeSetting | None) -> ForwardingExchange | None:
        if setting is None:
            return None
        if not isinstance(setting, tuple) or len(setting) != 2:
            raise TypeError("exchange must be a (token_client, audience) pair")
        source, audience = setting
        client = source if isinstance(source, TokenClient) else getattr(source, "client", None)
        if not isinstance(client, TokenClient):
            raise TypeError(
                "exchange's client must be a TokenClient, a ClientCredentialsProvider or an "
                "M2MTokenProvider"
            )
        if not audience or (not isinstance(audience, str) and not all(audience)):
            raise ValueError("exchange's audience must name the downstream client")
        return cls(client, audience)

    def bearer(self, token: str, audience: str | Sequence[str] | None) -> ForwardedBearer:
        try:
            return ForwardedBearer(token, exchange=(self.client, audience or self.audience))
        except TokenRequestError as exc:
            raise _refused(exc) from exc

    async def bearer_async(
        self, token: str, audience: str | Sequence[str] | None
    ) -> ForwardedBearer:
        try:
            return await ForwardedBearer.exchanged(
                token, exchange=(self.client, audience or self.audience)
            )
        except TokenRequestError as exc:
            raise _refused(exc) from exc


def _refused(exc: TokenRequestError) -> HTTPException:
    """A refused exchange: the downstream call cannot be made for this user (502, as
    `tokenward.fastapi`'s forwarding answers it); the IdP's code is logged, no token."""
    logger.warning("[AUTH] token exchange for forwarding failed: %s", exc.error)
    return HTTPException(status_code=502, detail="token exchange failed")
