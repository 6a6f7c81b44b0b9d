"""The keys and tokens every comparison shares: one DevIdP realm with an RS256-2048, an ES256 and
an EdDSA key, and one Keycloak-shaped user access token signed with each."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from jwt import PyJWK
from tokenward.testing import DevIdP

ALGORITHMS: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
REALM = "bench"
AZP = "SmartEM_User"
LEEWAY = 60

#: What a Keycloak user access token carries beyond DevIdP's defaults (about 1.1 KB signed).
EXTRA_CLAIMS: dict[str, Any] = {
    "sid": "5c1e2f7a-0d9b-4c3e-8a41-7b6d2e9f0a13",
    "acr": "1",
    "allowed-origins": ["http://localhost:3000"],
    "realm_access": {
        "roles": ["default-roles-dls", "offline_access", "uma_authorization", "smartem-user"]
    },
    "resource_access": {
        "account": {"roles": ["manage-account", "manage-account-links", "view-profile"]}
    },
    "name": "Alice Example",
    "given_name": "Alice",
    "family_name": "Example",
    "email": "alice@example.org",
    "groups": ["/viewers", "/facility/m12"],
}


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass(frozen=True)
class Signed:
    """One token and everything a verifier needs to check it."""

    alg: str
    token: str
    kid: str
    jwk: dict[str, Any]
    public_key: Any  # a `cryptography` public key object
    signing_input: bytes
    signature: bytes  # the raw JWS signature (r || s for ECDSA)


class Realm:
    """A running DevIdP with one key per algorithm and one token per key."""

    def __init__(self) -> None:
        self.idp = DevIdP(realm=REALM, jwks_max_age=3600).start()
        kids = {"RS256": self.idp.current_kid}
        for alg in ALGORITHMS[1:]:
            kids[alg] = self.idp.add_key(alg)
        jwks = {k["kid"]: k for k in self.idp.jwks()["keys"]}
        self.tokens: dict[str, Signed] = {}
        for alg in ALGORITHMS:
            token = self.idp.mint(
                sub="0b6e4c2a-6f0e-4a53-9b3c-2f4f1a8d9e10",
                azp=AZP,
                expires_in=3600,
                alg=alg,
                kid=kids[alg],
                preferred_username="alice",
                **EXTRA_CLAIMS,
            )
            header_b64, payload_b64, signature_b64 = token.split(".")
            header = json.loads(_b64(header_b64))
            assert header["alg"] == alg and header["kid"] == kids[alg], header
            jwk = jwks[kids[alg]]
            self.tokens[alg] = Signed(
                alg=alg,
                token=token,
                kid=kids[alg],
                jwk=jwk,
                public_key=PyJWK(jwk, algorithm=alg).key,
                signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
                signature=_b64(signature_b64),
            )

    @property
    def issuer(self) -> str:
        return self.idp.issuer

    @property
    def jwks_uri(self) -> str:
        return self.idp.jwks_uri

    def close(self) -> None:
        self.idp.close()
