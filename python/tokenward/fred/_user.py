"""Fred's `KeycloakUser` and service-agent predicate, and its `UserSecurity` settings model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, PrivateAttr

from ..forwarding import ForwardedBearer

if TYPE_CHECKING:
    from ._exchange import ForwardingExchange

__all__ = ["SERVICE_AGENT_ROLE", "KeycloakUser", "UserSecurity", "is_service_agent"]

#: The role a service identity (an evaluation worker, another backend) carries.
SERVICE_AGENT_ROLE = "service_agent"


class KeycloakUser(BaseModel):
    """The authenticated caller, with Fred's fields. `roles` are the client roles of the
    configured client (`resource_access.<client_id>.roles`), `groups` the `groups` claim.

    The bearer token the user came with is a private attribute: never a field, so
    `model_dump()`, the JSON of a response and `repr()` never show it; `user.bearer` forwards
    it. `repr()` also hides the email (it is a field, and shown by `model_dump()`).

    With forwarding exchange configured (`initialize_user_security(..., exchange=(client,
    audience))`), `bearer`, `bearer_async()` and `bearer_for()` carry the token exchanged for
    the downstream audience instead of the user's own (a refused exchange is an
    HTTPException 502)."""

    uid: str
    username: str
    roles: list[str]
    email: str | None = None
    groups: list[str] = []

    _token: str | None = PrivateAttr(default=None)
    _exchange: ForwardingExchange | None = PrivateAttr(default=None)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr() reaches log lines through f-strings and %r: the address stays out of them.
        for name, value in super().__repr_args__():
            yield name, ("<redacted>" if name == "email" and value else value)

    @property
    def bearer(self) -> ForwardedBearer:
        """`auth=` for requests/httpx calls made on this user's behalf: the verified token, or
        with exchange configured the token exchanged for its audience (a cache miss blocks,
        without the GIL, for the exchange request: in async code prefer `bearer_async`)."""
        return self.bearer_for(None)

    def bearer_for(self, audience: str | Sequence[str] | None) -> ForwardedBearer:
        """`bearer`, exchanged for `audience` (None: the configured one). Without exchange
        configured, the user's own token whatever `audience` says."""
        token = self._own_token()
        if self._exchange is None:
            return ForwardedBearer(token)
        return self._exchange.bearer(token, audience)

    async def bearer_async(self, audience: str | Sequence[str] | None = None) -> ForwardedBearer:
        """`bearer_for(audience)`, awaiting the exchange instead of blocking."""
        token = self._own_token()
        if self._exchange is None:
            return ForwardedBearer(token)
        return await self._exchange.bearer_async(token, audience)

    def _own_token(self) -> str:
        if self._token is None:
            raise ValueError("this KeycloakUser was not made from a bearer token")
        return self._token


def is_service_agent(user: KeycloakUser) -> bool:
    """Whether `user` holds `SERVICE_AGENT_ROLE`."""
    return SERVICE_AGENT_ROLE in (user.roles or [])


class UserSecurity(BaseModel):
    """What `initialize_user_security` takes (any object with these attributes will do)."""

    enabled: bool = True
    realm_url: str
    client_id: str
