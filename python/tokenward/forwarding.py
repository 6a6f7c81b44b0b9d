"""Hand the caller's own bearer token to an outgoing requests or httpx call.

    from tokenward.forwarding import ForwardedBearer

    requests.get(url, auth=ForwardedBearer(token))
    await httpx.AsyncClient().get(url, auth=ForwardedBearer(token))

In a FastAPI service, `tokenward.fastapi.forwarded_bearer` (or `Authenticator.forwarded`) is a
dependency that returns one for the current request, built from the token that request was
authenticated with, so the downstream service sees the same user.

This module imports neither requests nor httpx: both accept a plain callable as `auth=` that
takes the outgoing request, sets its headers and returns it.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from ._bearer import B64TOKEN

__all__ = ["ForwardedBearer"]


class _HasHeaders(Protocol):
    @property
    def headers(self) -> object: ...


_Request = TypeVar("_Request", bound=_HasHeaders)


class ForwardedBearer:
    """`auth=` for requests and httpx that sends `Authorization: Bearer <token>`.

    The token is sent as it is: no refresh, no retry. `repr()` never shows it. It must be an
    RFC 6750 b64token (letters, digits, `-._~+/`, then `=` padding; spaces and tabs around it
    are dropped): any other character (a control character, DEL, NEL, U+2028, anything
    non-ASCII) is a ValueError, so nothing but a token can reach the outgoing header."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        if not isinstance(token, str):
            raise TypeError("token must be a str")
        # Only HTTP's optional whitespace: str.strip() would also take NEL, NBSP, U+2028.
        token = token.strip(" \t")
        if not token:
            raise ValueError("token must not be empty")
        if B64TOKEN.fullmatch(token) is None:
            raise ValueError("token must be an RFC 6750 b64token (no other characters)")
        self._token = token

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
