"""Fred's `FRED_*` environment variables, with Fred's defaults, read into one settings object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["FredSettings"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}", setting=name)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}", setting=name) from None


@dataclass(frozen=True)
class FredSettings:
    """The toggles of Fred's `oidc` module. Defaults are Fred's: issuer and audience not
    checked, no clock skew, a one-hour lifetime ceiling, the token cache on (512 entries)."""

    strict_issuer: bool = False
    strict_audience: bool = False
    clock_skew: int = 0
    cache_enabled: bool = True
    cache_size: int = 512
    cache_ttl: int = 60
    max_lifetime: int = 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FredSettings:
        """`FRED_STRICT_ISSUER`, `FRED_STRICT_AUDIENCE`, `FRED_JWT_CLOCK_SKEW`,
        `FRED_JWT_CACHE_ENABLED`, `FRED_JWT_CACHE_SIZE`, `FRED_JWT_CACHE_TTL`,
        `FRED_JWT_MAX_LIFETIME_SECONDS`; a value that is not a boolean/integer is a
        `ConfigError` naming the variable."""
        env = os.environ if env is None else env
        return cls(
            strict_issuer=_flag(env, "FRED_STRICT_ISSUER", False),
            strict_audience=_flag(env, "FRED_STRICT_AUDIENCE", False),
            clock_skew=_int(env, "FRED_JWT_CLOCK_SKEW", 0),
            cache_enabled=_flag(env, "FRED_JWT_CACHE_ENABLED", True),
            cache_size=_int(env, "FRED_JWT_CACHE_SIZE", 512),
            cache_ttl=_int(env, "FRED_JWT_CACHE_TTL", 60),
            max_lifetime=_int(env, "FRED_JWT_MAX_LIFETIME_SECONDS", 3600),
        )
