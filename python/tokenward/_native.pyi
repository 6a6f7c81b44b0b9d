"""Type stubs for the Rust extension `tokenward._native`.

Exceptions are not defined here: the extension raises the classes of `tokenward.errors`.
"""

from collections.abc import Awaitable, Sequence
from typing import Any

__version__: str

class Verifier:
    def __init__(
        self,
        issuer: str,
        *,
        jwks_uri: str | None = None,
        audience: str | Sequence[str] | None = None,
        allowed_azp: Sequence[str] | None = None,
        algorithms: Sequence[str] | None = None,
        leeway: int = 60,
        verify_issuer: bool = True,
        required_claims: Sequence[str] = ("exp",),
        token_types: Sequence[str] | None = ("Bearer",),
        max_token_bytes: int = 16384,
        cache_size: int = 10_000,
        jwks_ttl: int = 300,
        jwks_cooldown: int = 30,
        jwks_max_stale: int = 86400,
        http_timeout: float = 5.0,
        ca_bundle: str | None = None,
    ) -> None: ...
    @classmethod
    def from_env(cls) -> Verifier: ...
    @property
    def issuer(self) -> str: ...
    def verify(self, token: str | bytes) -> dict[str, Any]: ...
    async def verify_async(self, token: str | bytes) -> dict[str, Any]: ...
    def stats(self) -> dict[str, int]: ...
    def refresh_keys(self) -> None:
        """Fetch the JWKS now (blocking); raises KeySetUnavailable when it cannot."""

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

class TokenClient:
    """An OAuth2 client-credentials client with one cached token (see docs/token-client.md).

    repr() and str() show the client id, auth method and token URL, never a credential."""

    def __init__(
        self,
        token_url: str | None = None,
        *,
        issuer: str | None = None,
        client_id: str,
        client_secret: str | bytes | None = None,
        private_key: str | bytes | None = None,
        key_id: str | None = None,
        auth_method: str | None = None,
        scope: str | Sequence[str] | None = None,
        audience: str | None = None,
        refresh_margin: float = 30,
        timeout: float = 10,
        signing_alg: str | None = None,
        ca_bundle: str | None = None,
    ) -> None:
        """`auth_method`: "client_secret_post", "client_secret_basic", "private_key_jwt" or
        "client_secret_jwt"; by default private_key_jwt when `private_key` (a PEM) is given,
        else client_secret_post. `signing_alg` picks the private_key_jwt algorithm (default:
        RS256 for RSA keys, ES256/ES384 for EC keys, EdDSA for Ed25519)."""
    @classmethod
    def from_env(cls, **overrides: Any) -> TokenClient: ...
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
    async def get_token_async(self) -> str: ...
    def invalidate(self, token: str | None = None) -> bool:
        """Drop the cached token; with `token`, only if it is still the cached one."""
    def stats(self) -> dict[str, int]:
        """token_requests, token_errors, cache_hits, refreshes_ahead, stale_served,
        invalidations."""
    def _token_now(self) -> str | None: ...
    def _get_token_fetching(self) -> Awaitable[str]: ...

def token_client_env_settings(require_credentials: bool = True) -> dict[str, Any]: ...
