"""The requests side of `BearerAuth` (imported only when used: requests is optional)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from ..requests import BearerAuth as _RequestsBearerAuth


class _CallableBearer(requests.auth.AuthBase):
    def __init__(self, provider: Callable[[], str]) -> None:
        self._provider = provider

    def __repr__(self) -> str:
        return "BearerAuth(<provider>)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._provider()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        return request


def bearer_auth(token_provider: str | Callable[[], str]) -> Any:
    from ._m2m import ClientCredentialsProvider

    if isinstance(token_provider, ClientCredentialsProvider):
        return _RequestsBearerAuth(token_provider.client)
    if isinstance(token_provider, str):
        token = token_provider
        return _CallableBearer(lambda: token)
    return _CallableBearer(token_provider)
