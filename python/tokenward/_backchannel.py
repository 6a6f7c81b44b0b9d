"""The back-channel logout receiver (OpenID Connect Back-Channel Logout 1.0), re-exported by
`tokenward.fastapi`:

    app.include_router(backchannel_logout_route(verifier, client_id="my-api"))

Keycloak (client setting "Backchannel logout URL") POSTs a form with one `logout_token` when a
session ends. The token is verified by the core: a logout-token verifier that shares the
verifier's key set (`Verifier._logout_verifier`: signature, `iss`, `aud` = `client_id`, `exp`,
`iat` not in the future, a `typ` claim, if any, of "Logout"); here, the spec's own rules: `iat`
recent (`max_age`), the `events` member, `sid` or `sub`, no `nonce`, a `jti` not seen before
(shared through Redis when the verifier's revocations are). Only then is anything revoked: the
session (`sid`) when the token names one, else every token of the subject (`sub`).

Answers: 200 on success; 400 with `{"error": "invalid_request", "error_description": ...}` for
a bad logout token (nothing revoked); 503 with `Retry-After` when no signing keys can be had
(the IdP may retry); always `Cache-Control: no-store`.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import InvalidToken, KeySetUnavailable

if TYPE_CHECKING:
    from ._native import Verifier

logger = logging.getLogger("tokenward.fastapi")

#: The `events` member that makes a JWT a logout token (the spec's section 2.4).
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

#: Seconds a logout token's `iat` may lie in the past (Keycloak sends it at once).
DEFAULT_MAX_AGE = 300

#: A form larger than this is refused unread: a logout token is a few kilobytes.
MAX_BODY_BYTES = 65536

_NO_STORE = {"Cache-Control": "no-store"}


class BadLogoutToken(Exception):
    """Why a logout request is refused (the `error_description`; no token data in it)."""


def _bad_request(description: str) -> JSONResponse:
    return JSONResponse(
        {"error": "invalid_request", "error_description": description},
        status_code=400,
        headers=_NO_STORE,
    )


async def _logout_token(request: Request) -> str:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadLogoutToken("the request must be an application/x-www-form-urlencoded form")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadLogoutToken("the request is too large")
    try:
        form = urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise BadLogoutToken("the request is not a form") from None
    tokens = form.get("logout_token", [])
    if len(tokens) != 1 or not tokens[0]:
        raise BadLogoutToken("the request must carry one logout_token")
    return tokens[0]


def check_logout_claims(claims: Mapping[str, Any], max_age: float, now: float) -> None:
    """The spec's rules the core's policy does not know (section 2.6, steps 3 to 5, and a
    recent `iat`)."""
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or now - iat > max_age:
        raise BadLogoutToken("the logout token is too old")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise BadLogoutToken("the logout token has no back-channel logout event")
    if "nonce" in claims:
        raise BadLogoutToken("a logout token must not carry a nonce")
    sid, sub = claims.get("sid"), claims.get("sub")
    if not (isinstance(sid, str) and sid) and not (isinstance(sub, str) and sub):
        raise BadLogoutToken("the logout token names neither a sid nor a sub")
    if sid is not None and not isinstance(sid, str):
        raise BadLogoutToken("the logout token's sid must be a string")


def backchannel_logout_route(
    verifier: Verifier,
    *,
    client_id: str,
    path: str = "/backchannel-logout",
    max_age: float = DEFAULT_MAX_AGE,
    also_revoke: Sequence[Verifier] = (),
) -> APIRouter:
    """A router with `POST path`: the back-channel logout endpoint of `client_id` (the audience
    of its logout tokens) for `verifier`'s issuer. A valid logout token revokes its session
    (`sid`) or, with no `sid`, its subject (`sub`) on `verifier` and on each of `also_revoke`
    (other verifiers of the same realm in this process); with `revocations="redis://..."`,
    on every replica. Register the URL at the IdP (Keycloak: the client's "Backchannel
    logout URL", with "Backchannel logout session required" on so `sid` is sent)."""
    if max_age <= 0:
        raise ValueError("max_age must be a positive number of seconds")
    logout_verifier = verifier._logout_verifier(client_id)
    targets = [verifier, *also_revoke]
    router = APIRouter()

    async def backchannel_logout(request: Request) -> Response:
        try:
            token = await _logout_token(request)
            claims = logout_verifier._verify_now(token)
            if claims is None:
                claims = await logout_verifier._verify_fetching(token)
            now = time.time()
            check_logout_claims(claims, max_age, now)
            # Kept until the token is too old to pass `max_age` anyway.
            until = int(claims["iat"] + max_age) + 1
            if not await logout_verifier._first_use_async(str(claims["jti"]), until):
                raise BadLogoutToken("the logout token was received before")
        except InvalidToken as exc:
            logger.warning("Back-channel logout refused: the logout token is %s", exc.code)
            return _bad_request(f"the logout token is invalid ({exc.code})")
        except BadLogoutToken as exc:
            logger.warning("Back-channel logout refused: %s", exc)
            return _bad_request(str(exc))
        except KeySetUnavailable:
            logger.warning("Back-channel logout deferred: the realm's keys are unavailable")
            return JSONResponse(
                {"error": "temporarily_unavailable"},
                status_code=503,
                headers={**_NO_STORE, "Retry-After": "30"},
            )
        sid = claims.get("sid")
        for target in targets:
            if isinstance(sid, str) and sid:
                target.revoke(sid=sid)
            else:
                target.revoke(sub=str(claims["sub"]))
        logger.info(
            "Back-channel logout: revoked %s",
            "a session" if isinstance(sid, str) and sid else "a subject's tokens",
        )
        return Response(status_code=200, headers=_NO_STORE)

    router.add_api_route(
        path,
        backchannel_logout,
        methods=["POST"],
        include_in_schema=False,
        response_class=Response,
    )
    return router
