"""Type stubs for the Rust extension `tokenward._native`.

Exceptions are not defined here: the extension raises the classes of `tokenward.errors`.
"""

from typing import Any, Sequence

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
    def sign(self, claims_json: str, header_json: str | None = None) -> str:
        """A compact JWS over `claims_json` (bytes as given). The header is
        {"alg": self.alg, "typ": "JWT", "kid": self.kid} updated with the members of
        `header_json`; a member whose value is null is removed. The signature is always made
        with this key and its own alg, whatever the header then says (so tests can lie)."""
