"""Enrol, rotate, list, disable and delete per-workstation agent clients (docs/agents.md)."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._native import SigningKey
from ..errors import ConfigError
from ._files import create_private, read_env, render_env, replace_private
from ._http import AgentError
from ._keycloak import (
    AdminClients,
    Registration,
    agent_representation,
    registered_jwks,
    with_jwks,
)

if TYPE_CHECKING:
    from ..token_client import TokenClient

logger = logging.getLogger("tokenward.agents")

#: The key types an agent may choose, by their CLI names, and the JOSE algorithm of each.
KEY_TYPES: dict[str, str] = {"ec-p256": "ES256", "rsa-2048": "RS256", "ed25519": "EdDSA"}
DEFAULT_KEY_TYPE = "ec-p256"
DEFAULT_PREFIX = "SmartEM_Agent_"
CONFIG_NAME = "agent.env"
#: The registration file's keys (client registration only).
REGISTRATION_URI = "REGISTRATION_CLIENT_URI"
REGISTRATION_TOKEN = "REGISTRATION_ACCESS_TOKEN"
_NATURAL_ALGS = ("ES256", "RS256", "EdDSA", "ES384")


def default_client_id(prefix: str = DEFAULT_PREFIX, host: str | None = None) -> str:
    """`SmartEM_Agent_<host>`: the short host name, with anything but letters, digits, `-` and
    `_` turned into `_`."""
    name = (host or socket.gethostname()).split(".")[0]
    return prefix + (re.sub(r"[^A-Za-z0-9_-]", "_", name) or "host")


@dataclass(frozen=True)
class Enrolment:
    """What `enrol` made. No secret in it: the key stays in its file."""

    client_id: str
    kid: str
    #: The RFC 7638 SHA-256 thumbprint of the public key (also its kid).
    fingerprint: str
    alg: str
    key_file: Path
    config_file: Path
    #: The file with the registration access token (client registration only).
    registration_file: Path | None

    def summary(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "kid": self.kid,
            "fingerprint": self.fingerprint,
            "alg": self.alg,
            "key_file": str(self.key_file),
            "config_file": str(self.config_file),
            "registration_file": str(self.registration_file) if self.registration_file else None,
        }


@dataclass(frozen=True)
class Rotation:
    client_id: str
    old_kid: str
    new_kid: str
    old_key_file: Path
    new_key_file: Path
    #: The kids registered now (both, until `finish_rotation`).
    registered_kids: tuple[str, ...]


@dataclass(frozen=True)
class Agent:
    """One agent client as the Admin API lists it."""

    client_id: str
    id: str
    enabled: bool
    kids: tuple[str, ...]


def _key_file_for(directory: Path, client_id: str, kid: str) -> Path:
    return directory / f"{client_id}-{kid[:12]}.pem"


def _new_key(alg: str) -> SigningKey:
    return SigningKey.generate(alg)  # kid: the RFC 7638 thumbprint


def load_key(path: Path) -> SigningKey:
    """The agent's key as the token client loads it: by its natural algorithm, kid = thumbprint."""
    try:
        pem = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"AGENT_PRIVATE_KEY_FILE: cannot read {path}: {exc.strerror}",
            setting="AGENT_PRIVATE_KEY_FILE",
        ) from None
    for alg in _NATURAL_ALGS:
        try:
            return SigningKey.from_pem(pem, alg)
        except ConfigError:
            continue
    raise ConfigError(
        f"AGENT_PRIVATE_KEY_FILE: {path} is not a supported private key",
        setting="AGENT_PRIVATE_KEY_FILE",
    )


def _issuer(url: str, realm: str) -> str:
    from .._native import realm_issuer

    return realm_issuer(url, realm)


def enrol(
    keycloak_url: str,
    directory: str | Path,
    *,
    realm: str = "dls",
    client_id: str | None = None,
    key_type: str = DEFAULT_KEY_TYPE,
    initial_access_token: str | None = None,
    operator: TokenClient | None = None,
    timeout: float = 10.0,
    ca_bundle: str | None = None,
) -> Enrolment:
    """Enrol this workstation: make a key pair, register a client for it, write its config.

    Exactly one of `initial_access_token` (client registration, the workstation on its own) and
    `operator` (a `TokenClient` of an admin service account with `manage-clients`) says how the
    client is made. Files, all owner-only and never overwritten, in `directory`: the private
    key (`<client_id>-<kid>.pem`), `agent.env` (KEYCLOAK_URL, KEYCLOAK_REALM,
    KEYCLOAK_CLIENT_ID, AGENT_PRIVATE_KEY_FILE) and, with registration, `<client_id>.registration`
    (the registration access token, needed to rotate the key later). The key is written before
    the client is registered (a client is never made for a key that could not be kept) and
    deleted again when the registration is refused."""
    if (initial_access_token is None) == (operator is None):
        raise ConfigError(
            "give exactly one of initial_access_token and operator", setting="initial_access_token"
        )
    if key_type not in KEY_TYPES:
        raise ConfigError(f"key_type must be one of {', '.join(KEY_TYPES)}", setting="key_type")
    directory = Path(directory)
    client_id = client_id or default_client_id()
    config_file = directory / CONFIG_NAME
    registration_file = directory / f"{client_id}.registration"
    for existing in (config_file, registration_file):
        if existing.exists():
            raise ConfigError(
                f"{existing} already exists; refusing to overwrite it", setting="directory"
            )
    alg = KEY_TYPES[key_type]
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = _new_key(alg)
    key_file = _key_file_for(directory, client_id, key.kid)
    create_private(key_file, key.private_pem(), "key_file")
    rep = agent_representation(client_id, {"keys": [key.public_jwk()]}, alg)
    try:
        kept_registration = _register(
            keycloak_url,
            realm,
            rep,
            initial_access_token,
            operator,
            registration_file,
            timeout,
            ca_bundle,
        )
    except BaseException:
        key_file.unlink(missing_ok=True)  # no client holds it: a stray private key helps nobody
        raise
    create_private(
        config_file,
        render_env(
            {
                "KEYCLOAK_URL": keycloak_url.rstrip("/"),
                "KEYCLOAK_REALM": realm,
                "KEYCLOAK_CLIENT_ID": client_id,
                "AGENT_PRIVATE_KEY_FILE": str(key_file.resolve()),
            }
        ),
        "config_file",
    )
    logger.info("agent %s enrolled, key %s", client_id, key.kid)
    return Enrolment(client_id, key.kid, key.kid, alg, key_file, config_file, kept_registration)


def _register(
    keycloak_url: str,
    realm: str,
    rep: dict[str, Any],
    initial_access_token: str | None,
    operator: TokenClient | None,
    registration_file: Path,
    timeout: float,
    ca_bundle: str | None,
) -> Path | None:
    """Make the client; with registration, keep its registration access token. Returns the
    registration file, if any."""
    if operator is not None:
        AdminClients(keycloak_url, realm, operator, timeout, ca_bundle).create(rep)
        return None
    assert initial_access_token is not None
    registration = Registration(_issuer(keycloak_url, realm), timeout, ca_bundle)
    registered = registration.register(rep, initial_access_token)
    create_private(
        registration_file,
        render_env(
            {
                REGISTRATION_URI: registration.client_uri(rep["clientId"]),
                REGISTRATION_TOKEN: registered.registration_access_token,
            }
        ),
        "registration_file",
    )
    return registration_file


@dataclass(frozen=True)
class _Config:
    path: Path
    values: dict[str, str]

    @property
    def url(self) -> str:
        return self._need("KEYCLOAK_URL")

    @property
    def realm(self) -> str:
        return self.values.get("KEYCLOAK_REALM") or "dls"

    @property
    def client_id(self) -> str:
        return self._need("KEYCLOAK_CLIENT_ID")

    @property
    def key_file(self) -> Path:
        return Path(self._need("AGENT_PRIVATE_KEY_FILE"))

    @property
    def registration_file(self) -> Path:
        return self.path.parent / f"{self.client_id}.registration"

    def _need(self, key: str) -> str:
        value = self.values.get(key)
        if not value:
            raise ConfigError(f"{key} is not set in {self.path}", setting=key)
        return value


def _read_config(path: str | Path) -> _Config:
    path = Path(path)
    return _Config(path, read_env(path, "config_file"))


class _Keys:
    """Reads and writes the client's registered JWK Set, by whichever way it was made."""

    def __init__(
        self, config: _Config, operator: TokenClient | None, timeout: float, ca_bundle: str | None
    ) -> None:
        self._config = config
        self._operator = operator
        self._timeout = timeout
        self._ca_bundle = ca_bundle

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Apply `change(jwks) -> jwks` to the registered keys; the new set."""
        config = self._config
        if self._operator is not None:
            admin = AdminClients(
                config.url, config.realm, self._operator, self._timeout, self._ca_bundle
            )
            rep = admin.find(config.client_id)
            jwks = change(registered_jwks(rep))
            admin.update(str(rep["id"]), with_jwks(rep, jwks))
            return jwks
        registration = Registration(
            _issuer(config.url, config.realm), self._timeout, self._ca_bundle
        )
        stored = read_env(config.registration_file, "registration_file")
        token = stored.get(REGISTRATION_TOKEN)
        if not token:
            raise ConfigError(
                f"no {REGISTRATION_TOKEN} in {config.registration_file}: rotate as an operator",
                setting="registration_file",
            )
        current = registration.get(config.client_id, token)
        jwks = change(registered_jwks(current.representation))
        updated = registration.update(
            config.client_id,
            current.registration_access_token,
            with_jwks(current.representation, jwks),
        )
        # Keycloak has just invalidated the old token: keep the new one before anything else.
        replace_private(
            config.registration_file,
            render_env({**stored, REGISTRATION_TOKEN: updated.registration_access_token}),
            "registration_file",
        )
        return registered_jwks(updated.representation)


def rotate_key(
    config_file: str | Path,
    *,
    key_type: str | None = None,
    operator: TokenClient | None = None,
    timeout: float = 10.0,
    ca_bundle: str | None = None,
) -> Rotation:
    """Stage a new key: generate it (same type unless `key_type`), register it beside the old
    one (Keycloak picks the key by the assertion's kid, so both work from here on), then point
    the config at it. The old key stays registered and on disk until `finish_rotation`, so an
    agent still signing with it keeps getting tokens until it has switched (restarted, or made
    a new `TokenClient` from the config)."""
    config = _read_config(config_file)
    old_file = config.key_file
    old = load_key(old_file)
    if key_type is not None and key_type not in KEY_TYPES:
        raise ConfigError(f"key_type must be one of {', '.join(KEY_TYPES)}", setting="key_type")
    alg = KEY_TYPES[key_type] if key_type else old.alg
    new = _new_key(alg)
    new_file = _key_file_for(old_file.parent, config.client_id, new.kid)
    create_private(new_file, new.private_pem(), "key_file")

    def add(jwks: dict[str, Any]) -> dict[str, Any]:
        keys = [k for k in jwks["keys"] if k.get("kid") != new.kid]
        if not any(k.get("kid") == old.kid for k in keys):
            keys.append(old.public_jwk())
        return {"keys": [*keys, new.public_jwk()]}

    registered = _Keys(config, operator, timeout, ca_bundle).update(add)
    replace_private(
        config.path,
        render_env({**config.values, "AGENT_PRIVATE_KEY_FILE": str(new_file.resolve())}),
        "config_file",
    )
    logger.info("agent %s: key %s staged beside %s", config.client_id, new.kid, old.kid)
    kids = tuple(str(k.get("kid")) for k in registered["keys"])
    return Rotation(config.client_id, old.kid, new.kid, old_file, new_file, kids)


def finish_rotation(
    config_file: str | Path,
    *,
    operator: TokenClient | None = None,
    remove_old_key_files: bool = True,
    timeout: float = 10.0,
    ca_bundle: str | None = None,
) -> tuple[str, ...]:
    """Unregister every key but the one the config points at, and delete the other key files of
    this client beside it. Returns the kids removed. Call it once every process of the agent
    uses the new key."""
    config = _read_config(config_file)
    current = load_key(config.key_file)
    removed: list[str] = []

    def keep_current(jwks: dict[str, Any]) -> dict[str, Any]:
        removed.extend(str(k.get("kid")) for k in jwks["keys"] if k.get("kid") != current.kid)
        return {"keys": [current.public_jwk()]}

    _Keys(config, operator, timeout, ca_bundle).update(keep_current)
    if remove_old_key_files:
        for path in config.key_file.parent.glob(f"{config.client_id}-*.pem"):
            if path.resolve() != config.key_file.resolve():
                path.unlink(missing_ok=True)
    logger.info("agent %s: only key %s registered now", config.client_id, current.kid)
    return tuple(removed)


def _admin(
    url: str, realm: str, operator: TokenClient, timeout: float, ca_bundle: str | None
) -> AdminClients:
    return AdminClients(url, realm, operator, timeout, ca_bundle)


def list_agents(
    keycloak_url: str,
    operator: TokenClient,
    *,
    realm: str = "dls",
    prefix: str = DEFAULT_PREFIX,
    timeout: float = 10.0,
    ca_bundle: str | None = None,
) -> list[Agent]:
    """The clients whose id starts with `prefix` (needs `view-clients`)."""
    reps = _admin(keycloak_url, realm, operator, timeout, ca_bundle).search(prefix)
    return [
        Agent(
            client_id=str(rep.get("clientId")),
            id=str(rep.get("id")),
            enabled=bool(rep.get("enabled", True)),
            kids=tuple(str(k.get("kid")) for k in registered_jwks(rep)["keys"]),
        )
        for rep in reps
    ]


def set_agent_enabled(
    keycloak_url: str,
    operator: TokenClient,
    client_id: str,
    enabled: bool,
    *,
    realm: str = "dls",
    timeout: float = 10.0,
    ca_bundle: str | None = None,
) -> None:
    """Keycloak's Enabled switch (needs `manage-clients`): a disabled agent's next token
    request is refused (`invalid_client`); tokens it already holds live until they expire."""
    admin = _admin(keycloak_url, realm, operator, timeout, ca_bundle)
    rep = admin.find(client_id)
    admin.update(str(rep["id"]), {"enabled": bool(enabled)})
    logger.info("agent %s %s", client_id, "enabled" if enabled else "disabled")


def delete_agent(
    keycloak_url: str,
    operator: TokenClient,
    client_id: str,
    *,
    realm: str = "dls",
    timeout: float = 10.0,
    ca_bundle: str | None = None,
) -> None:
    """Delete the agent's client (needs `manage-clients`)."""
    admin = _admin(keycloak_url, realm, operator, timeout, ca_bundle)
    rep = admin.find(client_id)
    admin.delete(str(rep["id"]))
    logger.info("agent %s deleted", client_id)


__all__ = [
    "Agent",
    "AgentError",
    "Enrolment",
    "Rotation",
    "default_client_id",
    "delete_agent",
    "enrol",
    "finish_rotation",
    "list_agents",
    "load_key",
    "rotate_key",
    "set_agent_enabled",
]
