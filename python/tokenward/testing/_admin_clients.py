"""The clients slice of the DevIdP's Admin API, enough for an operator's agent tooling:

    GET    /admin/realms/{realm}/clients        clientId, search (substring), first, max
    POST   /admin/realms/{realm}/clients        a ClientRepresentation: 201 + Location
    GET    /admin/realms/{realm}/clients/{id}
    PUT    /admin/realms/{realm}/clients/{id}   a partial representation: enabled, name,
                                                attributes (`jwks.string`): 204
    DELETE /admin/realms/{realm}/clients/{id}   204

The roles, as Keycloak 26.7's realm-management client grants them (measured): listing and
reading need `view-clients` or `manage-clients` (`query-clients` alone lists nothing: an empty
list); creating, updating and deleting need `manage-clients` (`create-client` is refused here:
it is for the client registration service).

Uploaded keys travel as Keycloak keeps them: the attribute `jwks.string` (a JWK Set as a JSON
string) with `use.jwks.string` set to "true". The client's authenticator is `client-jwt`
(private_key_jwt) when it has keys, `client-secret` otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from ._realm import Client, Directory
from ._registration import ClientStore
from ._server import Response

LIST_ROLES = frozenset({"query-clients", "view-clients", "manage-clients"})
VIEW_ROLES = frozenset({"view-clients", "manage-clients"})
MANAGE_ROLES = frozenset({"manage-clients"})
DEFAULT_MAX = 100


class ClientAdmin(ClientStore, Protocol):
    """What the Admin API changes clients through: registration's store, plus reading keys and
    the "Enabled" switch (`DevIdP` implements it)."""

    def client_keys(self, client_id: str) -> dict[str, Any] | None: ...

    def set_client_enabled(self, client_id: str, enabled: bool) -> None: ...


def _error(status: int, message: str) -> Response:
    return Response.json(status, {"error": message})


def _forbidden() -> Response:
    return _error(403, "HTTP 403 Forbidden")


class ClientsApi:
    def __init__(self, directory: Directory, admin: ClientAdmin) -> None:
        self._directory = directory
        self._admin = admin

    def representation(self, client: Client) -> dict[str, Any]:
        keys = self._admin.client_keys(client.client_id)
        attributes: dict[str, str] = {}
        if keys is not None:
            attributes = {"use.jwks.string": "true", "jwks.string": json.dumps(keys)}
        document: dict[str, Any] = {
            "id": client.internal_id,
            "clientId": client.client_id,
            "enabled": client.enabled,
            "publicClient": not client.confidential,
            "clientAuthenticatorType": "client-jwt" if client.has_keys else "client-secret",
            "serviceAccountsEnabled": client.service_account and client.confidential,
            "attributes": attributes,
        }
        if client.name is not None:
            document["name"] = client.name
        return document

    def handle(
        self,
        method: str,
        parts: list[str],
        query: Mapping[str, str],
        body: bytes,
        roles: set[str],
        location: str,
    ) -> Response:
        """`parts` is the path below the realm's admin root, starting with "clients"."""
        if len(parts) == 1:
            if method in ("GET", "HEAD"):
                return self._list(query, roles)
            if method == "POST":
                return self._create(body, roles, location)
            return _error(405, "HTTP 405 Method Not Allowed")
        if len(parts) != 2:
            return _error(404, "Unable to find matching target resource method")
        client = next((c for c in self._directory.clients() if c.internal_id == parts[1]), None)
        if method in ("GET", "HEAD"):
            if not roles & VIEW_ROLES:
                return _forbidden()
            if client is None:
                return _error(404, "Could not find client")
            return Response.json(200, self.representation(client))
        if method not in ("PUT", "DELETE"):
            return _error(405, "HTTP 405 Method Not Allowed")
        if not roles & MANAGE_ROLES:
            return _forbidden()
        if client is None:
            return _error(404, "Could not find client")
        if method == "DELETE":
            self._admin.remove_client(client.client_id)
            return Response(204, b"")
        return self._update(client, body)

    def _list(self, query: Mapping[str, str], roles: set[str]) -> Response:
        if not roles & LIST_ROLES:
            return _forbidden()
        wanted = query.get("clientId")
        search = (query.get("search") or "").strip().lower() == "true"
        clients = sorted(self._directory.clients(), key=lambda c: c.client_id)
        if wanted is not None:
            if search:
                clients = [c for c in clients if wanted.lower() in c.client_id.lower()]
            else:
                clients = [c for c in clients if c.client_id == wanted]
        first = int(query.get("first") or 0)
        size = int(query.get("max") or DEFAULT_MAX)
        if first < 0 or size < 0:
            raise ValueError("first/max")
        if not roles & VIEW_ROLES:
            return Response.json(200, [])  # query-clients alone: allowed, and shown nothing
        page = clients[first : first + size]
        return Response.json(200, [self.representation(c) for c in page])

    def _create(self, body: bytes, roles: set[str], location: str) -> Response:
        if not roles & MANAGE_ROLES:
            return _forbidden()
        rep = _json_object(body)
        if rep is None:
            return _error(400, "invalid client representation")
        client_id = rep.get("clientId")
        if not isinstance(client_id, str) or not client_id:
            return _error(400, "clientId is required")
        if self._directory.client(client_id) is not None:
            return Response.json(409, {"errorMessage": f"Client {client_id} already exists"})
        try:
            jwks = _uploaded_jwks(rep)
        except ValueError as exc:
            return _error(400, str(exc))
        key_auth = rep.get("clientAuthenticatorType") == "client-jwt"
        secret = rep.get("secret") if not key_auth else None
        if not key_auth and not isinstance(secret, str):
            return _error(400, "the DevIdP needs a secret for a client-secret client")
        self._admin.add_client(
            client_id,
            secret,
            name=rep.get("name") if isinstance(rep.get("name"), str) else None,
            jwks=jwks if key_auth else None,
            service_account=bool(rep.get("serviceAccountsEnabled", False)),
        )
        if rep.get("enabled") is False:
            self._admin.set_client_enabled(client_id, False)
        created = self._directory.client(client_id)
        assert created is not None
        return Response(201, b"", headers={"Location": f"{location}/{created.internal_id}"})

    def _update(self, client: Client, body: bytes) -> Response:
        rep = _json_object(body)
        if rep is None:
            return _error(400, "invalid client representation")
        if rep.get("clientId", client.client_id) != client.client_id:
            return _error(400, "the DevIdP does not rename clients")
        try:
            jwks = _uploaded_jwks(rep)
        except ValueError as exc:
            return _error(400, str(exc))
        if jwks is not None:
            self._admin.set_client_keys(client.client_id, jwks)
        if isinstance(rep.get("enabled"), bool):
            self._admin.set_client_enabled(client.client_id, rep["enabled"])
        if isinstance(rep.get("name"), str):
            self._directory.update_client(client.client_id, name=rep["name"])
        return Response(204, b"")


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _uploaded_jwks(rep: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JWK Set of the `jwks.string` attribute, if the representation carries one."""
    attributes = rep.get("attributes")
    if not isinstance(attributes, dict) or "jwks.string" not in attributes:
        return None
    try:
        jwks = json.loads(attributes["jwks.string"])
    except (TypeError, ValueError) as exc:
        raise ValueError("jwks.string is not a JSON JWK Set") from exc
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError("jwks.string is not a JSON JWK Set")  # noqa: TRY004 (a 400, not a bug)
    return jwks
