"""The DevIdP's key ring: which signing keys exist, which are published, which is current."""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any

from tokenward._native import SigningKey

logger = logging.getLogger("tokenward.testing")

#: The algorithms `SigningKey` can generate (and the DevIdP can therefore sign and publish).
SUPPORTED_ALGORITHMS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "EdDSA",
)


def new_kid() -> str:
    """A random key id shaped like Keycloak's (43 url-safe characters)."""
    return secrets.token_urlsafe(32)


class KeyRing:
    """Published signing keys, in publication order, and the current key of each algorithm.

    The *primary* algorithm (RS256, like a Keycloak realm's default) always has a current key;
    other algorithms get one on first use. Every method is thread-safe.
    """

    def __init__(self, primary_alg: str = "RS256") -> None:
        self._lock = threading.RLock()
        self._keys: dict[str, SigningKey] = {}  # kid -> key, publication order
        self._current: dict[str, str] = {}  # alg -> kid
        self.primary_alg = primary_alg
        self.add(primary_alg)

    def __repr__(self) -> str:
        with self._lock:
            return f"KeyRing(kids={list(self._keys)!r}, current={self._current!r})"

    @property
    def kids(self) -> list[str]:
        """The published key ids, oldest first."""
        with self._lock:
            return list(self._keys)

    def get(self, kid: str) -> SigningKey | None:
        """The published key with this id, or None."""
        with self._lock:
            return self._keys.get(kid)

    def add(self, alg: str) -> SigningKey:
        """Generate and publish a key of `alg`; it becomes current only if `alg` had none."""
        key = SigningKey.generate(alg, new_kid())
        with self._lock:
            self._keys[key.kid] = key
            self._current.setdefault(alg, key.kid)
        logger.debug("DevIdP key added: alg=%s kid=%s", alg, key.kid)
        return key

    def current(self, alg: str | None = None) -> SigningKey:
        """The current key of `alg` (default: the primary one), created and published if none."""
        alg = alg or self.primary_alg
        with self._lock:
            kid = self._current.get(alg)
            if kid is not None:
                return self._keys[kid]
            return self.add(alg)

    def rotate(self, keep_old: bool = True) -> SigningKey:
        """A new key of the primary algorithm becomes current; the old one stays published
        unless `keep_old` is false."""
        with self._lock:
            old = self._current.get(self.primary_alg)
            key = SigningKey.generate(self.primary_alg, new_kid())
            self._keys[key.kid] = key
            self._current[self.primary_alg] = key.kid
            if old is not None and not keep_old:
                del self._keys[old]
        logger.debug("DevIdP keys rotated: new kid=%s, old kid=%s kept=%s", key.kid, old, keep_old)
        return key

    def remove(self, kid: str) -> None:
        """Unpublish a key. If it was current, the newest remaining key of its algorithm
        becomes current (or, when none is left, a new one is made on next use)."""
        with self._lock:
            key = self._keys.pop(kid)  # KeyError for an unknown kid
            if self._current.get(key.alg) == kid:
                del self._current[key.alg]
                same_alg = [k for k, v in self._keys.items() if v.alg == key.alg]
                if same_alg:
                    self._current[key.alg] = same_alg[-1]
        logger.debug("DevIdP key removed: kid=%s", kid)

    def public_jwks(self) -> list[dict[str, Any]]:
        """The public JWKs of the published keys, oldest first."""
        with self._lock:
            keys = list(self._keys.values())
        return [key.public_jwk() for key in keys]
