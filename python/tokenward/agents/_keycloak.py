"""The two ways to change an agent's client in Keycloak:

- `Registration`: Keycloak's client registration (provider `default`, which takes the client id
  we choose: the `openid-connect` provider refuses one, "Client Identifier included"), with an
  initial access token for the first call and the client's registration access token after it.
  Keycloak rotates that token on every update, so each update hands back the next one.
- `AdminClients`: the Admin REST API, as an operator's service account (a `TokenClient`).

Both speak Keycloak's ClientRepresentation; the public keys travel in the attribute
`jwks.string`, a JWK Set that may hold several keys, which Keycloak picks from by `kid`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ._http import AgentError, call

if TYPE_CHECKING:
    from ..token_client import TokenClient

JWKS_ATTRIBUTE = "jwks.string"


def agent_representation(client_id: str, jwks: dict[str, Any], alg: str) -> dict[str, Any]:
    """A confidential client for one workstation: signed-JWT client authentication against the
    uploaded keys, a service account, and no browser or password flows."""
    return {
        "clientId": client_id,
        "name": client_id,
        "enabled": True,
        "protocol": "openid-connect",
        "publicClient": False,
        "bearerOnly": False,
        "clientAuthenticatorType": "client-jwt",
        "serviceAccountsEnabled": True,
        "standardFlowEnabled": False,
        "implicitFlowEnabled": False,
        "directAccessGrantsEnabled": False,
        "attributes": {
            "use.jwks.string": "true",
            "use.jwks.url": "false",
            JWKS_ATTRIBUTE: json.dumps(jwks),
            "token.endpoint.auth.signing.alg": alg,
        },
    }


def registered_jwks(rep: dict[str, Any]) -> dict[str, Any]:
    """The JWK Set a representation carries (empty if none)."""
    text = (rep.get("attributes") or {}).get(JWKS_ATTRIBUTE)
    try:
        jwks = json.loads(text) if isinstance(text, str) else {"keys": []}
    except ValueError:
        jwks = {"keys": []}
    return jwks if isinstance(jwks, dict) and isinstance(jwks.get("keys"), list) else {"keys": []}


def with_jwks(rep: dict[str, Any], jwks: dict[str, Any]) -> dict[str, Any]:
    updated = {k: v for k, v in rep.items() if k not in ("registrationAccessToken", "secret")}
    updated["attributes"] = {**(rep.get("attributes") or {}), JWKS_ATTRIBUTE: json.dumps(jwks)}
    updated["attributes"]["use.jwks.string"] = "true"
    return updated


def _strip_secrets(rep: Any) -> dict[str, Any]:
    """A representation without the secret Keycloak makes even for a client-jwt client, and
    without the registration access token (kept apart, in its own file)."""
    if not isinstance(rep, dict):
        raise AgentError("Keycloak answered something that is not a client representation")
    return {k: v for k, v in rep.items() if k not in ("secret", "registrationAccessToken")}


@dataclass(frozen=True)
class Registered:
    representation: dict[str, Any]
    registration_access_token: str = field(repr=False)


class Registration:
    """Client registration of one realm (`issuer` is the realm URL)."""

    def __init__(self, issuer: str, timeout: float = 10.0, ca_bundle: str | None = None) -> None:
        self.base = f"{issuer.rstrip('/')}/clients-registrations/default"
        self._timeout = timeout
        self._ca_bundle = ca_bundle

    def client_uri(self, client_id: str) -> str:
        return f"{self.base}/{quote(client_id, safe='')}"

    def _call(self, method: str, url: str, token: str, body: Any, what: str, expect: int) -> Any:
        answer = call(
            method,
            url,
            bearer=token,
            body=body,
            timeout=self._timeout,
            ca_bundle=self._ca_bundle,
            what=what,
            expect=(expect,),
        )
        return answer.document

    def _registered(self, document: Any, what: str) -> Registered:
        token = document.get("registrationAccessToken") if isinstance(document, dict) else None
        if not isinstance(token, str) or not token:
            raise AgentError(f"{what}: Keycloak sent no registration access token")
        return Registered(_strip_secrets(document), token)

    def register(self, rep: dict[str, Any], initial_access_token: str) -> Registered:
        what = "client registration"
        return self._registered(
            self._call("POST", self.base, initial_access_token, rep, what, 201), what
        )

    def get(self, client_id: str, token: str) -> Registered:
        what = "reading the registered client"
        return self._registered(
            self._call("GET", self.client_uri(client_id), token, None, what, 200), what
        )

    def update(self, client_id: str, token: str, rep: dict[str, Any]) -> Registered:
        what = "updating the registered client"
        return self._registered(
            self._call("PUT", self.client_uri(client_id), token, rep, what, 200), what
        )


class AdminClients:
    """The Admin REST API's clients of one realm, as an operator's service account."""

    def __init__(
        self,
        url: str,
        realm: str,
        operator: TokenClient,
        timeout: float = 10.0,
        ca_bundle: str | None = None,
    ) -> None:
        self.base = f"{url.rstrip('/')}/admin/realms/{quote(realm, safe='')}/clients"
        self._operator = operator
        self._timeout = timeout
        self._ca_bundle = ca_bundle

    def _call(
        self, method: str, url: str, what: str, body: Any = None, expect: tuple[int, ...] = (200,)
    ) -> Any:
        answer = call(
            method,
            url,
            bearer=self._operator.get_token(),
            body=body,
            timeout=self._timeout,
            ca_bundle=self._ca_bundle,
            what=what,
            expect=expect,
        )
        return answer

    def search(self, prefix: str) -> list[dict[str, Any]]:
        """Clients whose id starts with `prefix` (Keycloak searches by substring; the prefix is
        checked here), sorted by client id."""
        found: list[dict[str, Any]] = []
        first, page = 0, 100
        while True:
            url = f"{self.base}?clientId={quote(prefix)}&search=true&first={first}&max={page}"
            batch = self._call("GET", url, "listing clients").document
            if not isinstance(batch, list):
                raise AgentError("listing clients: Keycloak answered something that is not a list")
            found += [
                _strip_secrets(c) for c in batch if str(c.get("clientId", "")).startswith(prefix)
            ]
            if len(batch) < page:
                return sorted(found, key=lambda c: str(c.get("clientId")))
            first += page

    def find(self, client_id: str) -> dict[str, Any]:
        url = f"{self.base}?clientId={quote(client_id)}"
        batch = self._call("GET", url, "looking the client up").document
        match = [c for c in batch or [] if isinstance(c, dict) and c.get("clientId") == client_id]
        if not match:
            raise AgentError(f"no client {client_id!r} in the realm", status=404)
        return _strip_secrets(match[0])

    def create(self, rep: dict[str, Any]) -> None:
        self._call("POST", self.base, "creating the client", rep, (201,))

    def update(self, internal_id: str, rep: dict[str, Any]) -> None:
        url = f"{self.base}/{quote(internal_id, safe='')}"
        self._call("PUT", url, "updating the client", rep, (204,))

    def delete(self, internal_id: str) -> None:
        url = f"{self.base}/{quote(internal_id, safe='')}"
        self._call("DELETE", url, "deleting the client", None, (204,))
