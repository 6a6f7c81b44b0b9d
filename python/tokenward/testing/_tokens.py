"""Keycloak-shaped token claims, and the token endpoint (client_credentials, password, and
token exchange through `_exchange`)."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ._groups import effective_roles, groups_claim
from ._realm import (
    GRANT_TYPES,
    REFRESH_LIFETIME,
    Client,
    ClientAuthenticator,
    Directory,
    OAuthError,
    User,
    form_values,
    parse_form,
)
from ._server import Request, Response

if TYPE_CHECKING:
    from ._exchange import TokenExchange

logger = logging.getLogger("tokenward.testing")

#: The scopes every token carries (Keycloak's default client scopes).
DEFAULT_SCOPES: tuple[str, ...] = ("profile", "email")


class TokenSigner(Protocol):
    @property
    def issuer(self) -> str: ...

    @property
    def token_url(self) -> str: ...

    def sign_claims(self, claims: Mapping[str, Any]) -> str:
        """A compact JWS of `claims` with the realm's current RS256 key."""


def apply_overrides(claims: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Add or override claims; an override whose value is None removes the claim."""
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def base_claims(
    issuer: str, sub: Any, azp: Any, expires_in: int, now: int | None = None
) -> dict[str, Any]:
    """The claims every access token starts from, in Keycloak's order. A negative `expires_in`
    gives a token that expired that long ago after a lifetime of 300 s, so `iat` stays before
    `exp` as in a real expired token."""
    now = int(time.time()) if now is None else now
    exp = now + int(expires_in)
    return {
        "exp": exp,
        "iat": now if expires_in >= 0 else exp - 300,
        "jti": str(uuid.uuid4()),
        "iss": issuer,
        "aud": "account",
        "sub": sub,
        "typ": "Bearer",
        "azp": azp,
    }


def mint_claims(
    issuer: str, sub: Any, azp: Any, expires_in: int, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The claims of `DevIdP.mint`: a user access token, with `overrides` applied."""
    username = sub if isinstance(sub, str) and sub else "user"
    claims = base_claims(issuer, sub, azp, expires_in)
    claims.update(
        {
            "scope": "openid profile email",
            "email_verified": True,
            "preferred_username": username,
            "email": f"{username}@example.org",
            "realm_access": {"roles": []},
            "resource_access": {},
            "groups": [],
        }
    )
    return apply_overrides(claims, {"sub": sub, "azp": azp, **overrides})


def token_audience(client: Client) -> str | list[str]:
    """`aud` of a token issued to `client`: its mapped audiences, then "account" (a string when
    there is only one, as Keycloak writes it)."""
    audiences = list(dict.fromkeys((*client.audiences, "account")))
    return audiences[0] if len(audiences) == 1 else audiences


def _resource_access(roles: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    return {cid: {"roles": list(names)} for cid, names in roles.items()}


def _scope(requested: str | None) -> str:
    wanted = (requested or "").split()
    scopes = ["openid"] if "openid" in wanted else []
    for scope in (*DEFAULT_SCOPES, *wanted):
        if scope not in scopes:
            scopes.append(scope)
    return " ".join(scopes)


def _at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


class TokenEndpoint:
    """POST /protocol/openid-connect/token, answering like Keycloak."""

    def __init__(
        self,
        directory: Directory,
        authenticator: ClientAuthenticator,
        signer: TokenSigner,
        exchange: TokenExchange,
    ) -> None:
        self._exchange = exchange
        self._directory = directory
        self._authenticator = authenticator
        self._signer = signer

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return Response.json(405, {"error": "HTTP method not allowed"}, {"Allow": "POST"})
        try:
            form = parse_form(request)
            grant_type = form.get("grant_type")
            if not grant_type:
                raise OAuthError(400, "invalid_request", "Missing form parameter: grant_type")
            if grant_type not in GRANT_TYPES:
                raise OAuthError(400, "unsupported_grant_type", "Unsupported grant_type")
            audiences = (self._signer.token_url, self._signer.issuer)
            client = self._authenticator.authenticate(request, form, audiences)
            if not client.enabled:
                # What Keycloak 26 answers a disabled client (measured): as an unknown one.
                raise OAuthError(
                    401, "invalid_client", "Invalid client or Invalid client credentials"
                )
            if grant_type == "client_credentials":
                document = self._client_credentials(client, form, request.peer)
            elif grant_type == GRANT_TYPES[2]:
                audience = form_values(request, "audience")
                document = self._exchange.exchange(client, form, audience)
            else:
                document = self._password(client, form)
        except OAuthError as exc:
            logger.info("DevIdP token endpoint: %s (%s)", exc.error, exc.description)
            return exc.response()
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        return Response.json(200, document, headers)

    def _client_credentials(
        self, client: Client, form: Mapping[str, str], peer: str
    ) -> dict[str, Any]:
        if not client.confidential:
            raise OAuthError(
                400, "unauthorized_client", "Public client not allowed to retrieve service account"
            )
        if not client.service_account:
            raise OAuthError(
                400, "unauthorized_client", "Client not enabled to retrieve service account"
            )
        scope = _scope(form.get("scope"))
        claims = base_claims(
            self._signer.issuer, client.service_account_id, client.client_id, client.token_lifetime
        )
        claims.update(
            {
                "aud": token_audience(client),
                "acr": "1",
                "realm_access": {"roles": list(client.roles)},
                "resource_access": _resource_access(client.service_client_roles),
                "scope": scope,
                "email_verified": False,
                "clientHost": peer,
                "preferred_username": f"service-account-{client.client_id}",
                "clientAddress": peer,
                "client_id": client.client_id,
                "groups": [],
            }
        )
        apply_overrides(claims, client.extra_claims)
        logger.debug("DevIdP: client_credentials token for %s", client.client_id)
        return {
            "access_token": self._signer.sign_claims(claims),
            "expires_in": client.token_lifetime,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": scope,
        }

    def _password(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        username = form.get("username")
        password = form.get("password")
        if not username:
            raise OAuthError(400, "invalid_request", "Missing parameter: username")
        if password is None:
            raise OAuthError(400, "invalid_request", "Missing parameter: password")
        user = self._directory.user(username)
        if user is None or not user.password_matches(password):
            raise OAuthError(401, "invalid_grant", "Invalid user credentials")
        issuer = self._signer.issuer
        scope = _scope(form.get("scope"))
        session = str(uuid.uuid4())
        lifetime = client.token_lifetime
        groups = groups_claim(user.groups, self._directory.groups(), client.groups_claim)
        access = self._user_access_claims(user, client, scope, session, lifetime, groups)
        access_token = self._signer.sign_claims(access)
        now = access["iat"]

        refresh = base_claims(issuer, user.user_id, client.client_id, REFRESH_LIFETIME, now)
        refresh.update({"aud": issuer, "typ": "Refresh", "sid": session, "scope": scope})

        id_claims = base_claims(issuer, user.user_id, client.client_id, lifetime, now)
        id_claims.update(
            {
                "aud": client.client_id,
                "typ": "ID",
                "at_hash": _at_hash(access_token),
                "acr": "1",
                "sid": session,
                "email_verified": user.email is not None,
                "preferred_username": user.username,
                "groups": groups,
            }
        )
        if user.email is not None:
            id_claims["email"] = user.email
        logger.debug("DevIdP: password token for %s via %s", user.username, client.client_id)
        return {
            "access_token": access_token,
            "expires_in": lifetime,
            "refresh_expires_in": REFRESH_LIFETIME,
            "refresh_token": self._signer.sign_claims(refresh),
            "token_type": "Bearer",
            "id_token": self._signer.sign_claims(id_claims),
            "not-before-policy": 0,
            "session_state": session,
            "scope": scope,
        }

    def _user_access_claims(
        self,
        user: User,
        client: Client,
        scope: str,
        session: str,
        lifetime: int,
        groups: list[str],
    ) -> dict[str, Any]:
        claims = base_claims(self._signer.issuer, user.user_id, client.client_id, lifetime)
        roles = effective_roles(user.roles, user.client_roles, self._directory.memberships(user))
        claims.update(
            {
                "aud": token_audience(client),
                "session_state": session,
                "acr": "1",
                "realm_access": {"roles": list(roles.realm)},
                "resource_access": _resource_access(roles.clients),
                "scope": scope,
                "sid": session,
                "email_verified": user.email is not None,
                "preferred_username": user.username,
                "groups": groups,
            }
        )
        if user.email is not None:
            claims["email"] = user.email
        return claims
