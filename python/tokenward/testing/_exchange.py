"""The token-exchange grant (RFC 8693) with the rules of Keycloak's standard token exchange (V2).

- The requester must be confidential and registered with `token_exchange=True` (Keycloak's
  "Standard token exchange" switch on the client).
- `subject_token` must be an access token this realm issued, unexpired, whose `aud` contains
  the requester.
- `audience` (repeatable) only narrows: each one must be a client of the realm and among the
  audiences available to the requester (its `exchange_audiences`, standing in for Keycloak's
  audience mappers and the client scopes that would put the audience into a token). Without
  `audience` the new token carries all of them.
- Only access tokens are issued (`requested_token_type` access_token, the default).

Refusals use Keycloak's codes: `invalid_request` (missing or unsupported parameters, an invalid
subject token), `invalid_client` (public requester, exchange not enabled, unknown audience),
`access_denied` (the subject token is not meant for the requester) and `invalid_target`
(an audience the requester cannot obtain).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tokenward import InvalidToken, KeySetUnavailable, Verifier

from ._realm import Client, Directory, OAuthError
from ._tokens import TokenSigner, _scope

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

#: Claims of the subject token the exchanged token does not inherit (it gets its own).
_OWN_CLAIMS = ("exp", "iat", "jti", "aud", "azp", "scope", "typ", "nbf", "client_id")


def _denied(status: int, error: str, description: str) -> OAuthError:
    return OAuthError(status, error, description)


class TokenExchange:
    """Answers a token-exchange request once its client is authenticated."""

    def __init__(
        self, directory: Directory, signer: TokenSigner, verifier: Callable[[], Verifier]
    ) -> None:
        self._directory = directory
        self._signer = signer
        self._make_verifier = verifier
        self._verifier: Verifier | None = None
        self._lock = threading.Lock()

    def _verify(self, subject_token: str) -> dict[str, Any]:
        with self._lock:
            if self._verifier is None:
                self._verifier = self._make_verifier()
            verifier = self._verifier
        try:
            claims: dict[str, Any] = verifier.verify(subject_token)
        except (InvalidToken, KeySetUnavailable) as exc:
            raise _denied(400, "invalid_request", "Invalid token") from exc
        return claims

    def exchange(
        self, client: Client, form: Mapping[str, str], audiences: Sequence[str]
    ) -> dict[str, Any]:
        if not client.confidential:
            raise _denied(400, "invalid_client", "Public client is not allowed to exchange token")
        if not client.token_exchange:
            raise _denied(
                400,
                "invalid_client",
                "Standard token exchange is not enabled for the requested client",
            )
        subject_token = form.get("subject_token")
        if not subject_token:
            raise _denied(400, "invalid_request", "Missing parameter: subject_token")
        if form.get("subject_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
            raise _denied(
                400, "invalid_request", "Parameter 'subject_token' supports access tokens only"
            )
        if form.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
            raise _denied(400, "invalid_request", "requested_token_type unsupported")
        subject = self._verify(subject_token)
        held = subject.get("aud", [])
        held = [held] if isinstance(held, str) else list(held)
        if client.client_id not in held:
            raise _denied(400, "access_denied", "Client is not within the token audience")
        available = list(client.exchange_audiences)
        for audience in audiences:
            if self._directory.client(audience) is None:
                raise _denied(400, "invalid_client", "Audience not found")
            if audience not in available:
                raise _denied(
                    400, "invalid_target", f"Requested audience not available: {audience}"
                )
        granted = list(dict.fromkeys(audiences)) if audiences else available
        now = int(time.time())
        lifetime = max(0, min(client.token_lifetime, int(subject["exp"]) - now))
        scope = _scope(form.get("scope"))
        claims = {name: v for name, v in subject.items() if name not in _OWN_CLAIMS}
        claims.update(
            {
                "exp": now + lifetime,
                "iat": now,
                "jti": str(uuid.uuid4()),
                "typ": "Bearer",
                "azp": client.client_id,
                "scope": scope,
            }
        )
        if granted:
            claims["aud"] = granted[0] if len(granted) == 1 else granted
        return {
            "access_token": self._signer.sign_claims(claims),
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "refresh_expires_in": 0,
            "not-before-policy": 0,
            "scope": scope,
        }
