"""JWT-assertion client authentication for the DevIdP's token endpoint: `private_key_jwt` and
`client_secret_jwt` (RFC 7523 section 2.2, OIDC Core section 9). The DevIdP installs
`ClientAssertionAuth` as its `client_assertion_verifier`.

- private_key_jwt: the signature, `aud` and `exp` are checked by tokenward's own `Verifier`,
  against the client's registered public keys, which the DevIdP serves at
  `DevIdP.client_jwks_uri(client_id)` (or the client's own `jwks_uri`, like Keycloak's
  "Use JWKS URL"). `aud` may be the token endpoint or the issuer, as Keycloak accepts.
- client_secret_jwt: HS256/384/512 with the client secret, checked here with `hmac` (the
  `Verifier` refuses HS* by design, and must keep doing so).

Then, for both: `iss` == `sub` == the client id (and the form's `client_id`, if sent), and the
`jti` is not reused while the assertion could still be valid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote

from tokenward import InvalidToken, KeySetUnavailable, Verifier

from ._realm import Client, ClientAssertion, OAuthError
from ._server import Response

#: Seconds an assertion's `exp` (and `nbf`/`iat`) may be off, like the Verifier's default.
LEEWAY = 60
#: Where the DevIdP publishes a client's registered keys, below the issuer.
CLIENT_JWKS_PATH = "/tokenward/clients/{client_id}/jwks"

_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
#: Private members of RSA, EC, OKP and oct JWKs: never published.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _rejected(why: str) -> OAuthError:
    return OAuthError(401, "invalid_client", f"client assertion rejected: {why}")


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _segments(assertion: str) -> tuple[dict[str, Any], dict[str, Any], str, bytes]:
    """(header, claims, signing input, signature) of a compact JWS, unverified."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise _rejected("not a compact JWS")
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (binascii.Error, ValueError) as exc:
        raise _rejected("malformed") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _rejected("malformed")
    return header, claims, f"{parts[0]}.{parts[1]}", signature


def public_jwks(keys: Any) -> dict[str, Any]:
    """A JWKS document from what `add_client(jwks=...)` accepts: a JWKS dict, one JWK, a list of
    JWKs, or an object with `public_jwk()` (a `SigningKey`). Private members are dropped."""
    if hasattr(keys, "public_jwk"):
        jwks: list[Any] = [keys.public_jwk()]
    elif isinstance(keys, Mapping) and "keys" in keys:
        jwks = list(keys["keys"])
    elif isinstance(keys, Mapping):
        jwks = [keys]
    elif isinstance(keys, Sequence) and not isinstance(keys, (str, bytes)):
        jwks = [k.public_jwk() if hasattr(k, "public_jwk") else k for k in keys]
    else:
        raise TypeError("jwks must be a JWKS dict, a JWK dict, a list of them, or a SigningKey")
    if not all(isinstance(k, Mapping) for k in jwks):
        raise TypeError("every JWK must be a dict")
    return {"keys": [{n: v for n, v in k.items() if n not in _PRIVATE_MEMBERS} for k in jwks]}


class ClientAssertionAuth:
    """The DevIdP's `ClientAssertionVerifier`, plus the registry of clients' public keys."""

    methods: Sequence[str] = ("private_key_jwt", "client_secret_jwt")

    def __init__(self, issuer: Callable[[], str], http_timeout: float = 5.0) -> None:
        self._issuer = issuer
        self._http_timeout = http_timeout
        self._lock = threading.Lock()
        self._documents: dict[str, dict[str, Any]] = {}
        self._jwks_uris: dict[str, str] = {}
        self._verifiers: dict[str, Verifier] = {}
        self._seen: dict[tuple[str, str], float] = {}

    # ---- registry --------------------------------------------------------------------------

    def jwks_uri(self, client_id: str) -> str:
        """Where the DevIdP serves the keys registered for `client_id`."""
        return self._issuer() + CLIENT_JWKS_PATH.format(client_id=quote(client_id, safe=""))

    def register(self, client_id: str, jwks: Any = None, jwks_uri: str | None = None) -> None:
        """Set (or, with neither, clear) the public keys `client_id` signs assertions with."""
        document = public_jwks(jwks) if jwks is not None else None
        with self._lock:
            self._documents.pop(client_id, None)
            self._jwks_uris.pop(client_id, None)
            # New keys, new verifier: the old one would keep serving the old key set.
            self._verifiers.pop(client_id, None)
            if document is not None:
                self._documents[client_id] = document
            if jwks_uri is not None:
                self._jwks_uris[client_id] = jwks_uri

    def document(self, client_id: str) -> dict[str, Any] | None:
        """The public JWKS uploaded for `client_id` (a copy), or None."""
        with self._lock:
            document = self._documents.get(client_id)
        return json.loads(json.dumps(document)) if document is not None else None

    def has_keys(self, client_id: str) -> bool:
        with self._lock:
            return client_id in self._documents or client_id in self._jwks_uris

    def serve(self, issuer_path: str, path: str) -> Response | None:
        """The answer for a GET of a client JWKS path (`issuer_path` is the issuer's path), or
        None when `path` is not one."""
        prefix, _, suffix = CLIENT_JWKS_PATH.partition("{client_id}")
        head = issuer_path + prefix
        if not (path.startswith(head) and path.endswith(suffix)):
            return None
        client_id = unquote(path[len(head) : len(path) - len(suffix)])
        with self._lock:
            document = self._documents.get(client_id)
        if document is None:
            return Response.json(404, {"error": "no keys registered for this client"})
        return Response.json(200, document, {"Cache-Control": "no-cache"})

    # ---- verification ----------------------------------------------------------------------

    def __call__(self, assertion: ClientAssertion) -> Client:
        header, claims, signing_input, signature = _segments(assertion.assertion)
        client_id = assertion.client_id or claims.get("sub")
        if not isinstance(client_id, str) or not client_id:
            raise _rejected("no client id in the form or the assertion's sub")
        client = assertion.lookup(client_id)
        if client is None:
            raise _rejected("unknown client")
        alg = header.get("alg")
        if isinstance(alg, str) and alg.upper().startswith("HS"):
            self._check_secret_jwt(client, alg, signing_input, signature, claims, assertion)
        else:
            claims = self._check_private_key_jwt(client, assertion)
        self._check_identity_and_jti(client, claims, assertion)
        return client

    def _verifier(self, client_id: str, audiences: Sequence[str]) -> Verifier:
        with self._lock:
            verifier = self._verifiers.get(client_id)
            if verifier is not None:
                return verifier
            if client_id in self._jwks_uris:
                uri = self._jwks_uris[client_id]
            elif client_id in self._documents:
                uri = self.jwks_uri(client_id)
            else:
                raise _rejected("the client has no registered keys")
            verifier = Verifier(
                self._issuer(),
                jwks_uri=uri,
                audience=list(audiences),
                verify_issuer=False,
                token_types=None,
                required_claims=("exp", "iss", "sub", "jti"),
                cache_size=0,
                leeway=LEEWAY,
                http_timeout=self._http_timeout,
            )
            self._verifiers[client_id] = verifier
            return verifier

    def _check_private_key_jwt(self, client: Client, assertion: ClientAssertion) -> dict[str, Any]:
        verifier = self._verifier(client.client_id, assertion.audiences)
        try:
            return verifier.verify(assertion.assertion)
        except InvalidToken as exc:
            raise _rejected(exc.code) from exc
        except KeySetUnavailable as exc:
            raise _rejected("cannot load the client's public keys") from exc

    def _check_secret_jwt(
        self,
        client: Client,
        alg: str,
        signing_input: str,
        signature: bytes,
        claims: dict[str, Any],
        assertion: ClientAssertion,
    ) -> None:
        digest = _HMAC.get(alg)
        if digest is None:
            raise _rejected("alg_not_allowed")
        if client.secret is None:
            raise _rejected("the client has no secret")
        expected = hmac.new(client.secret.encode(), signing_input.encode("ascii"), digest).digest()
        if not hmac.compare_digest(expected, signature):
            raise _rejected("bad_signature")
        now = time.time()
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise _rejected("missing_claim")
        if exp + LEEWAY <= now:
            raise _rejected("expired")
        for early in ("nbf", "iat"):
            value = claims.get(early)
            if isinstance(value, (int, float)) and value > now + LEEWAY:
                raise _rejected("not_yet_valid")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if not any(a in assertion.audiences for a in auds if isinstance(a, str)):
            raise _rejected("bad_audience")

    def _check_identity_and_jti(
        self, client: Client, claims: Mapping[str, Any], assertion: ClientAssertion
    ) -> None:
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise _rejected("iss and sub must both be the client id")
        if assertion.client_id is not None and assertion.client_id != client.client_id:
            raise _rejected("client_id does not match the assertion")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _rejected("missing_claim")
        now = time.time()
        exp = float(claims["exp"])
        with self._lock:
            for key, until in list(self._seen.items()):
                if until + LEEWAY < now:
                    del self._seen[key]
            key = (client.client_id, jti)
            if key in self._seen:
                raise _rejected("token reuse detected (jti)")
            self._seen[key] = exp
