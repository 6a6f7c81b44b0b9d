"""The token-exchange grant (RFC 8693) with the rules of Keycloak's standard token exchange (V2),
checked in Keycloak's order, with the codes and statuses Keycloak 26.7.3 answers (seen against
the real server: tests/keycloak/README.md).

- The requester must be registered with `token_exchange=True` (Keycloak's "Standard token
  exchange" switch on the client), else 400 `invalid_request`; a public client with the switch
  on is 400 `invalid_client`.
- `subject_token` and `subject_token_type` are required (400 `invalid_request`); only access
  tokens are taken as subjects, and only access tokens are issued.
- The subject token must be an access token this realm issued, unexpired (else 400
  `invalid_request` "Invalid token"), whose `aud` contains the requester (else 403
  `access_denied`).
- `audience` (repeatable) only narrows: each must be a client of the realm (else 400
  `invalid_client` "Audience not found") and available to the requester (else 400
  `invalid_request` "Requested audience not available"). Available, as in Keycloak, is what
  the requester's own token for that user would carry: its audience mapper (`add_client(...,
  audiences=)`) plus, by audience resolve, every client whose roles the user holds (the subject
  token's `resource_access`). Without `audience` the new token carries all of them.
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
        if not client.token_exchange:
            raise _denied(
                400,
                "invalid_request",
                "Standard token exchange is not enabled for the requested client",
            )
        if not client.confidential:
            raise _denied(400, "invalid_client", "Public client is not allowed to exchange token")
        for parameter in ("subject_token", "subject_token_type"):
            if parameter not in form:
                raise _denied(
                    400,
                    "invalid_request",
                    f"Parameter '{parameter}' required for standard token exchange",
                )
        if form["subject_token_type"] != ACCESS_TOKEN_TYPE:
            raise _denied(
                400, "invalid_request", "Parameter 'subject_token' supports access tokens only"
            )
        if form.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
            raise _denied(400, "invalid_request", "requested_token_type unsupported")
        subject = self._verify(form["subject_token"])
        held = subject.get("aud", [])
        held = [held] if isinstance(held, str) else list(held)
        if client.client_id not in held:
            raise _denied(403, "access_denied", "Client is not within the token audience")
        available = self._available(client, subject)
        for audience in audiences:
            if self._directory.client(audience) is None:
                raise _denied(400, "invalid_client", "Audience not found")
            if audience not in available:
                raise _denied(
                    400, "invalid_request", f"Requested audience not available: {audience}"
                )
        granted = list(dict.fromkeys(audiences)) if audiences else available
        now = int(time.time())
        lifetime = max(0, min(client.token_lifetime, int(subject["exp"]) - now))
        scope = _scope(form.get("scope"))
        claims = {name: v for name, v in subject.items() if name not in _OWN_CLAIMS}
        roles = subject.get("resource_access")
        if isinstance(roles, dict):
            # As Keycloak: the client roles kept are those of the granted audiences.
            claims["resource_access"] = {c: r for c, r in roles.items() if c in granted}
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

    def _available(self, client: Client, subject: Mapping[str, Any]) -> list[str]:
        """The audiences the requester may obtain for this user: its audience mapper, then the
        realm's clients whose roles the user holds (Keycloak's audience resolve)."""
        roles = subject.get("resource_access")
        resolved = [
            cid
            for cid in (roles if isinstance(roles, dict) else {})
            if cid != client.client_id and self._directory.client(cid) is not None
        ]
        return list(dict.fromkeys((*client.audiences, *resolved)))
