"""Type stubs for the Rust extension `tokenward._native` (src/python/).

Exactly what the extension defines, checked by `make lint` (`python -m mypy.stubtest
tokenward._native`). `verify_async` and `get_token_async` are not here: they belong to the Python
subclasses `tokenward.Verifier` and `tokenward.TokenClient`.

Exceptions are not defined here either: the extension raises the classes of `tokenward.errors`.
"""

import os
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeAlias, TypedDict, final

from typing_extensions import NotRequired, Self, Unpack, disjoint_base

__version__: str
__all__ = [
    "SigningKey",
    "TokenClient",
    "Verifier",
    "_LogThrottle",
    "__version__",
    "_advance_clock",
    "_log_burst",
    "_reset_clock",
    "_review_jwks",
    "issuer_paths",
    "realm_issuer",
]

_Path: TypeAlias = str | os.PathLike[str]
_Strings: TypeAlias = str | Sequence[str]
_Credential: TypeAlias = str | bytes | dict[str, Any]

class _VerifierSettings(TypedDict, total=False):
    """The keyword arguments of `Verifier.from_env`: those of the constructor."""

    issuer: str
    jwks_uri: str | None
    audience: _Strings | None
    allowed_azp: _Strings | None
    algorithms: _Strings | None
    leeway: int
    verify_issuer: bool
    required_claims: _Strings | None
    token_types: Sequence[str] | None
    max_lifetime: int | None
    max_token_bytes: int
    cache_size: int
    jwks_ttl: float
    jwks_cooldown: float
    jwks_max_stale: float
    http_timeout: float
    ca_bundle: _Path | None
    max_response_bytes: int
    report_only: _Strings | None
    proxy: str | None
    headers: Mapping[str, str] | None
    revocations: str | None
    revocation_horizon: int

class _VerifierHealth(TypedDict):
    """`Verifier.health()`: the key set's state, read without I/O."""

    ready: bool
    keys: int
    key_set_age: float | None
    stale: bool
    last_error: str | None
    last_success: float | None
    revocations: _RevocationsHealth

class _RevocationsHealth(TypedDict):
    """`Verifier.health()["revocations"]`. `shared`: through Redis; `connected`: Redis
    reachable now (None when not shared); `entries`: rules held; `pending`: revocations made
    here that Redis has not had yet; `last_error`: why Redis was last unreachable."""

    shared: bool
    connected: bool | None
    entries: int
    pending: int
    last_error: str | None

class _SharedCacheHealth(TypedDict):
    """`TokenClient.health()["shared_cache"]`: the last shared-cache round's outcome."""

    connected: bool
    last_error: str | None

class _TokenClientHealth(TypedDict):
    """`TokenClient.health()`: the cached token's state, read without I/O."""

    ready: bool
    expires_in: float | None
    last_error: str | None
    last_success: float | None
    shared_cache: NotRequired[_SharedCacheHealth]

@disjoint_base
class Verifier:
    """Verifies bearer JWTs offline against an issuer's JWKS."""

    def __new__(
        cls,
        issuer: str,
        *,
        jwks_uri: str | None = None,
        audience: _Strings | None = None,
        allowed_azp: _Strings | None = None,
        algorithms: _Strings | None = None,
        leeway: int = 60,
        verify_issuer: bool = True,
        required_claims: _Strings | None = None,
        token_types: Sequence[str] | None = ...,
        max_lifetime: int | None = None,
        max_token_bytes: int = 16384,
        cache_size: int = 10000,
        jwks_ttl: float = 300.0,
        jwks_cooldown: float = 5.0,
        jwks_max_stale: float = 86400.0,
        http_timeout: float = 5.0,
        ca_bundle: _Path | None = None,
        max_response_bytes: int = 1048576,
        report_only: _Strings | None = None,
        proxy: str | None = None,
        headers: Mapping[str, str] | None = None,
        revocations: str | None = None,
        revocation_horizon: int = 86400,
    ) -> Self:
        """`revocations`: None (this process only) or a redis:// / rediss:// URL shared by
        every replica; `revocation_horizon`: seconds a revocation is kept when `max_lifetime` is
        not set. `required_claims=None` means ("exp",); `token_types` defaults to ("Bearer",), and
        None skips the `typ` check. `report_only`: "audience" and/or "issuer", checks whose
        failures are accepted, counted and logged instead of refused (a rollout mode)."""
    @classmethod
    def from_env(cls, **overrides: Unpack[_VerifierSettings]) -> Self:
        """A verifier configured from KEYCLOAK_URL, KEYCLOAK_REALM (default "dls"),
        KEYCLOAK_VERIFY_ISS, KEYCLOAK_ALLOWED_AZP, KEYCLOAK_AUDIENCE and KEYCLOAK_JWKS_URL; the
        keyword arguments win. Returns an instance of `cls`."""
    @property
    def issuer(self) -> str: ...
    def verify(self, token: str | bytes) -> dict[str, Any]:
        """The claims as a fresh dict. Blocks (without the GIL) only when keys must be fetched."""
    def _verify_now(self, token: str | bytes) -> dict[str, Any] | None:
        """The claims, or None when a key fetch is needed first. Never touches the network."""
    def _verify_fetching(self, token: str | bytes) -> Awaitable[dict[str, Any]]:
        """An awaitable for the full verify, key fetches included."""
    def refresh_keys(self) -> None:
        """Fetch the JWKS now (blocking); raises KeySetUnavailable when it cannot."""
    def health(self) -> _VerifierHealth:
        """The key set's state for readiness probes; no I/O. `ready`: a usable key set is held;
        `stale`: it is past its freshness (refetches fail) and still served."""
    def revoke(
        self,
        *,
        sid: str | None = None,
        sub: str | None = None,
        azp: str | None = None,
        jti: str | None = None,
        not_before: float | None = None,
    ) -> None:
        """Refuse (code "revoked") tokens of this session, subject or client issued up to now
        (with `not_before`, for sub/azp: issued before it), or the token with this jti."""
    def _logout_verifier(self, client_id: str) -> Verifier:
        """A verifier of this issuer's back-channel logout tokens for `client_id` (same keys)."""
    def _first_use_async(self, jti: str, expires: int) -> Awaitable[bool]:
        """True the first time this logout token id is seen (until `expires`)."""
    def warm(self) -> None:
        """Fetch the JWKS now (blocking) unless a usable one is held; raises KeySetUnavailable."""
    def warm_async(self) -> Awaitable[None]:
        """An awaitable for `warm`."""
    def stats(self) -> dict[str, int]: ...

@final
class SigningKey:
    """A private signing key (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA).

    Used by the DevIdP and for private_key_jwt client authentication. repr() never shows key
    material."""

    @staticmethod
    def generate(alg: str = "RS256", kid: str | None = None) -> SigningKey: ...
    @staticmethod
    def from_pem(pem: str | bytes, alg: str, kid: str | None = None) -> SigningKey: ...
    @property
    def kid(self) -> str: ...
    @property
    def alg(self) -> str: ...
    def public_jwk(self) -> dict[str, Any]:
        """{"kty", "kid", "alg", "use": "sig", and n/e, or crv/x/y, or crv/x}."""
    def private_pem(self) -> str:
        """PKCS#8 PEM of the private key."""
    def private_jwk(self) -> dict[str, Any]:
        """The private key as a JWK (public members, kid and alg included)."""
    def sign(self, claims_json: str, header_json: str | None = None) -> str:
        """A compact JWS over `claims_json` (bytes as given). The header is
        {"alg": self.alg, "typ": "JWT", "kid": self.kid} updated with the members of
        `header_json`; a member whose value is null is removed. The signature is always made
        with this key and its own alg, whatever the header then says (so tests can lie)."""

class _TokenClientSettings(TypedDict, total=False):
    """The keyword arguments of `TokenClient.from_env`: those of the constructor."""

    token_url: str | None
    issuer: str | None
    client_id: str
    client_secret: _Credential | None
    private_key: _Credential | None
    key_id: str | None
    auth_method: str | None
    scope: _Strings | None
    audience: str | None
    refresh_margin: float
    timeout: float
    signing_alg: str | None
    ca_bundle: _Path | None
    max_response_bytes: int
    proxy: str | None
    headers: Mapping[str, str] | None
    shared_cache: str | None
    exchange_cache_size: int

@disjoint_base
class TokenClient:
    """An OAuth2 client-credentials client with one cached token (see docs/token-client.md).

    repr() and str() show the client id, auth method and token URL, never a credential."""

    def __new__(
        cls,
        token_url: str | None = None,
        *,
        issuer: str | None = None,
        client_id: str,
        client_secret: _Credential | None = None,
        private_key: _Credential | None = None,
        key_id: str | None = None,
        auth_method: str | None = None,
        scope: _Strings | None = None,
        audience: str | None = None,
        refresh_margin: float = 30.0,
        timeout: float = 10.0,
        signing_alg: str | None = None,
        ca_bundle: _Path | None = None,
        max_response_bytes: int = 1048576,
        proxy: str | None = None,
        headers: Mapping[str, str] | None = None,
        shared_cache: str | None = None,
        exchange_cache_size: int = 1024,
    ) -> Self:
        """`auth_method`: "client_secret_post", "client_secret_basic", "private_key_jwt" or
        "client_secret_jwt"; by default private_key_jwt when `private_key` (a PEM, or a JWK
        dict) is given, else client_secret_post. `signing_alg` picks the private_key_jwt
        algorithm (default: RS256 for RSA keys, ES256/ES384 for EC keys, EdDSA for Ed25519).
        `shared_cache` (a redis:// or rediss:// URL) shares the token with every process using
        that Redis, sealed with the key in TOKENWARD_SHARED_CACHE_KEY.

        `exchange_cache_size` bounds the tokens `exchange` keeps (the least recently used go
        first); it must be > 0."""
    @classmethod
    def from_env(cls, **overrides: Unpack[_TokenClientSettings]) -> Self:
        """A client configured from KEYCLOAK_URL, KEYCLOAK_REALM (default "dls"),
        AGENT_CLIENT_ID or KEYCLOAK_CLIENT_ID, AGENT_CLIENT_SECRET or KEYCLOAK_CLIENT_SECRET,
        and AGENT_PRIVATE_KEY_FILE (a PEM key: private_key_jwt); the keyword arguments win, and
        a credential given replaces the environment's. TOKENWARD_SHARED_CACHE sets
        `shared_cache`. Raises ConfigError naming a missing variable. Returns an instance of
        `cls`."""
    @property
    def client_id(self) -> str: ...
    @property
    def auth_method(self) -> str: ...
    @property
    def token_url(self) -> str | None:
        """The token endpoint; None until discovery has found it (when built from `issuer`)."""
    @property
    def key_id(self) -> str | None: ...
    @property
    def signing_alg(self) -> str | None: ...
    def get_token(self) -> str:
        """A valid access token; blocks (without the GIL) only when one must be fetched.
        Raises TokenRequestError when none can be had."""
    def _token_now(self) -> str | None:
        """The cached token when it is usable now, else None. Never touches the network."""
    def _get_token_fetching(self) -> Awaitable[str]:
        """An awaitable for `get_token`."""
    def exchange(
        self,
        subject_token: str,
        *,
        audience: _Strings | None = None,
        scope: _Strings | None = None,
        requested_token_type: str | None = None,
    ) -> str:
        """`subject_token` (a caller's access token) exchanged for a token for `audience`
        (RFC 8693, Keycloak's standard token exchange), authenticating as for `get_token`.
        Cached per (subject token, audience, scope, requested_token_type) until the issued
        token's expiry less the refresh margin; one request at a time per exchange. Raises
        TokenRequestError (`.error` is the IdP's code, e.g. access_denied) when refused."""
    def _exchange_now(
        self,
        subject_token: str,
        *,
        audience: _Strings | None = None,
        scope: _Strings | None = None,
        requested_token_type: str | None = None,
    ) -> str | None:
        """The cached answer for this exchange (a held refusal is raised), else None."""
    def _exchange_async(
        self,
        subject_token: str,
        *,
        audience: _Strings | None = None,
        scope: _Strings | None = None,
        requested_token_type: str | None = None,
    ) -> Awaitable[str]:
        """An awaitable for `exchange`."""
    def invalidate(self, token: str | None = None) -> bool:
        """Drop the cached token; with `token`, only if it is still the cached one."""
    def health(self) -> _TokenClientHealth:
        """The cached token's state for readiness probes; no I/O. `ready`: a token valid now
        is held."""
    def warm(self) -> None:
        """Get a token now (blocking) unless a valid one is held; raises TokenRequestError."""
    def warm_async(self) -> Awaitable[None]:
        """An awaitable for `warm`."""
    def stats(self) -> dict[str, int]:
        """token_requests, token_errors, cache_hits, exchange_hits, refreshes_ahead,
        stale_served, invalidations."""

def _advance_clock(seconds: float) -> None:
    """Moves the clock the verifier and caches read forward by `seconds` (tests only)."""

def _reset_clock() -> None:
    """Back to the real time (tests only)."""

def _review_jwks(body: bytes) -> list[tuple[int, str | None, str | None]]:
    """(index, kid, skip reason or None) for each key of a JWKS document, as the verifier sees
    them; ValueError when the document itself is unusable."""

@final
class _LogThrottle:
    """At most one log line per `interval` seconds; `admit()` says how many were left out."""

    def __new__(cls, interval: float = 10.0) -> Self: ...
    def admit(self) -> int | None:
        """The lines left out since the last one when a line may be written now, else None."""
    @staticmethod
    def suffix(suppressed: int) -> str:
        """ " (N more like it since the last line)" for a count, "" for 0."""

def _log_burst(level: str, count: int) -> None:
    """`count` Rust log records at `level` on `tokenward.python.logging` (tests and benchmarks)."""

def realm_issuer(url: str, realm: str) -> str:
    """The issuer URL of `realm` on the Keycloak at `url` (a trailing `/` on `url` is ignored)."""

def issuer_paths() -> dict[str, str]:
    """The paths below an issuer that a Keycloak realm serves: "discovery" (the OpenID
    configuration), "jwks" and "token" (the fallbacks when discovery fails)."""
