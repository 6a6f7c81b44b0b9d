"""Hand the caller's own bearer token to an outgoing requests or httpx call.

    from tokenward.forwarding import ForwardedBearer

    requests.get(url, auth=ForwardedBearer(token))
    await httpx.AsyncClient().get(url, auth=ForwardedBearer(token))

In a FastAPI service, `tokenward.fastapi.forwarded_bearer` (or `Authenticator.forwarded`) is a
dependency that returns one for the current request, built from the token that request was
authenticated with, so the downstream service sees the same user.

With `exchange=(token_client, audience)` the caller's token is first exchanged (RFC 8693,
`TokenClient.exchange`) for one minted for `audience`, and that one is sent: the downstream
service can check its audience strictly. The exchange happens when the ForwardedBearer is made
(cached per caller token and audience by the token client); in async code use
`await ForwardedBearer.exchanged(token, exchange=...)`, which awaits it instead.
`tokenward.fastapi`'s `Authenticator.forwarding(exchange=...)` is the dependency for it.

This module imports neither requests nor httpx: both accept a plain callable as `auth=` that
takes the outgoing request, sets its headers and returns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeAlias, TypeVar

from ._bearer import B64TOKEN

if TYPE_CHECKING:
    from typing_extensions import Self

    from .token_client import TokenClient

__all__ = ["Exchange", "ForwardedBearer"]

#: `(token_client, audience)`: exchange the caller's token for one for `audience` first.
Exchange: TypeAlias = "tuple[TokenClient, str | Sequence[str]]"


class _HasHeaders(Protocol):
    @property
    def headers(self) -> object: ...


_Request = TypeVar("_Request", bound=_HasHeaders)


class ForwardedBearer:
    """`auth=` for requests and httpx that sends `Authorization: Bearer <token>`.

    The token is sent as it is: no refresh, no retry. `repr()` never shows it. It must be an
    RFC 6750 b64token (letters, digits, `-._~+/`, then `=` padding; spaces and tabs around it
    are dropped): any other character (a control character, DEL, NEL, U+2028, anything
    non-ASCII) is a ValueError, so nothing but a token can reach the outgoing header.

    With `exchange=(token_client, audience)`, the token sent is `token_client.exchange(token,
    audience=audience)` (TokenRequestError when the IdP refuses), not the caller's own."""

    __slots__ = ("_token",)

    def __init__(self, token: str, *, exchange: Exchange | None = None) -> None:
        if not isinstance(token, str):
            raise TypeError("token must be a str")
        if exchange is not None:
            client, audience = exchange
            token = client.exchange(_checked(token), audience=audience)
        # Only HTTP's optional whitespace: str.strip() would also take NEL, NBSP, U+2028.
        token = token.strip(" \t")
        if not token:
            raise ValueError("token must not be empty")
        if B64TOKEN.fullmatch(token) is None:
            raise ValueError("token must be an RFC 6750 b64token (no other characters)")
        self._token = token

    @classmethod
    async def exchanged(cls, token: str, *, exchange: Exchange) -> Self:
        """Like `ForwardedBearer(token, exchange=exchange)`, awaiting the exchange."""
        client, audience = exchange
        return cls(await client.exchange_async(_checked(token), audience=audience))

    @property
    def token(self) -> str:
        return self._token

    @property
    def headers(self) -> dict[str, str]:
        """The header to add, for clients that take headers rather than an auth object."""
        return {"Authorization": f"Bearer {self._token}"}

    def __call__(self, request: _Request) -> _Request:
        # requests passes a PreparedRequest, httpx a Request: both have mutable `headers`.
        request.headers["Authorization"] = f"Bearer {self._token}"  # type: ignore[index]
        return request

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ForwardedBearer):
            return NotImplemented
        return self._token == other._token

    def __hash__(self) -> int:
        return hash((ForwardedBearer, self._token))

    def __repr__(self) -> str:
        return "ForwardedBearer(<token hidden>)"


def _checked(token: str) -> str:
    """The caller's token as `ForwardedBearer` would send it, before it goes to the IdP."""
    return ForwardedBearer(token).token
