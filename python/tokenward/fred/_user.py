"""Fred's `KeycloakUser` and service-agent predicate, and its `UserSecurity` settings model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, PrivateAttr

from ..forwarding import ForwardedBearer

__all__ = ["SERVICE_AGENT_ROLE", "KeycloakUser", "UserSecurity", "is_service_agent"]

#: The role a service identity (an evaluation worker, another backend) carries.
SERVICE_AGENT_ROLE = "service_agent"


class KeycloakUser(BaseModel):
    """The authenticated caller, with Fred's fields. `roles` are the client roles of the
    configured client (`resource_access.<client_id>.roles`), `groups` the `groups` claim.

    The bearer token the user came with is a private attribute: never a field, so
    `model_dump()`, the JSON of a response and `repr()` never show it; `user.bearer` forwards
    it. `repr()` also hides the email (it is a field, and shown by `model_dump()`)."""

    uid: str
    username: str
    roles: list[str]
    email: str | None = None
    groups: list[str] = []

    _token: str | None = PrivateAttr(default=None)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr() reaches log lines through f-strings and %r: the address stays out of them.
        for name, value in super().__repr_args__():
            yield name, ("<redacted>" if name == "email" and value else value)

    @property
    def bearer(self) -> ForwardedBearer:
        """`auth=` for requests/httpx calls made on this user's behalf (the verified token)."""
        if self._token is None:
            raise ValueError("this KeycloakUser was not made from a bearer token")
        return ForwardedBearer(self._token)


def is_service_agent(user: KeycloakUser) -> bool:
    """Whether `user` holds `SERVICE_AGENT_ROLE`."""
    return SERVICE_AGENT_ROLE in (user.roles or [])


class UserSecurity(BaseModel):
    """What `initialize_user_security` takes (any object with these attributes will do)."""

    enabled: bool = True
    realm_url: str
    client_id: str
