"""Back-channel logout from the DevIdP (OpenID Connect Back-Channel Logout 1.0): each client
may register a `backchannel_logout_url`; `DevIdP.logout(sub=..., sid=...)` signs one logout
token per such client and POSTs it there, as Keycloak does when a session ends."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("tokenward.testing")

#: The `events` member that makes a JWT a logout token (the spec's section 2.4).
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

#: How long a logout token is valid for (Keycloak: a couple of minutes).
LOGOUT_TOKEN_LIFETIME = 120


@dataclass(frozen=True)
class LogoutDelivery:
    """One POST of a logout token: the client, its URL, and the HTTP status it answered
    (None when the request got no answer)."""

    client_id: str
    url: str
    status: int | None


def logout_claims(
    issuer: str, client_id: str, sub: str | None, sid: str | None, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """A logout token's claims, Keycloak-shaped (its `typ` claim is "Logout"); `extra` adds or
    overrides claims (None removes one)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": str(uuid.uuid4()),
        "typ": "Logout",
        "events": {LOGOUT_EVENT: {}},
    }
    if sub is not None:
        claims["sub"] = sub
    if sid is not None:
        claims["sid"] = sid
    for name, value in extra.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


class BackchannelLogout:
    """The registered back-channel logout URLs, and their delivery."""

    def __init__(self, sign: Callable[[Mapping[str, Any]], str], issuer: Callable[[], str]):
        self._sign = sign
        self._issuer = issuer
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def register(self, client_id: str, url: str | None) -> None:
        with self._lock:
            if url is None:
                self._urls.pop(client_id, None)
            else:
                if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                    raise ValueError("backchannel_logout_url must be an http(s) URL")
                self._urls[client_id] = url

    def token(self, client_id: str, sub: str | None, sid: str | None, **claims: Any) -> str:
        return self._sign(logout_claims(self._issuer(), client_id, sub, sid, claims))

    def send(
        self, sub: str | None, sid: str | None, client_id: str | None, timeout: float
    ) -> list[LogoutDelivery]:
        if sub is None and sid is None:
            raise ValueError("logout needs a sub or a sid")
        with self._lock:
            targets = [
                (cid, url)
                for cid, url in self._urls.items()
                if client_id is None or cid == client_id
            ]
        deliveries = []
        for cid, url in targets:
            token = self.token(cid, sub, sid)
            deliveries.append(LogoutDelivery(cid, url, post(url, token, timeout)))
        return deliveries


def post(url: str, logout_token: str, timeout: float = 10.0) -> int | None:
    """POSTs `logout_token` as the spec's form; the status answered, None for no answer."""
    body = urllib.parse.urlencode({"logout_token": logout_token}).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status: int = response.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError as e:
        logger.warning("DevIdP: back-channel logout to %s got no answer: %s", url, e)
        return None
    logger.info("DevIdP: back-channel logout to %s answered %s", url, status)
    return status

