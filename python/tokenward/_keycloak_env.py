"""Checks on the Keycloak conventions' settings that the core's readers cannot make: a variable
whose name is one typo away from a known one (the core reads only the names it knows, so a typo
is silently "unset"), and a `KEYCLOAK_URL` that already names a realm.

The variables themselves are read in Rust (`src/keycloak.rs`); this module only looks at their
names, and at `KEYCLOAK_URL` to detect a realm path in it. No framework and no HTTP library is
imported here: the agent side uses it too.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from collections.abc import Collection, Iterable, Mapping
from urllib.parse import urlsplit

from ._native import realm_issuer
from .errors import ConfigError

__all__ = [
    "KNOWN_VARIABLES",
    "KeycloakConfigError",
    "check_environment",
    "close_to_known",
    "refuse_realm_in_url",
    "warn_typos",
]

logger = logging.getLogger("tokenward.keycloak")

#: Every variable the core's Keycloak readers know (`src/keycloak.rs`; a test keeps the two in
#: step, since the names cannot be asked of the extension).
KNOWN_VARIABLES: frozenset[str] = frozenset(
    {
        "KEYCLOAK_URL",
        "KEYCLOAK_REALM",
        "KEYCLOAK_VERIFY_ISS",
        "KEYCLOAK_ALLOWED_AZP",
        "KEYCLOAK_AUDIENCE",
        "KEYCLOAK_JWKS_URL",
        "KEYCLOAK_CLIENT_ID",
        "KEYCLOAK_CLIENT_SECRET",
        "AGENT_CLIENT_ID",
        "AGENT_CLIENT_SECRET",
        "AGENT_PRIVATE_KEY_FILE",
    }
)

#: The prefixes of the names looked at: other variables are none of our business.
_PREFIXES = ("KEYCLOAK_", "AGENT_")

#: How alike (difflib's ratio) a name must be to a known one to count as its typo. 0.9 catches a
#: swapped, missing or extra letter (KEYCLOAK_RELAM, KEYCLOAK_ALLOWED_AZPS: 0.93, 0.98) and
#: leaves alone the variables of Keycloak's own container that share the prefix
#: (KEYCLOAK_USER 0.88, KEYCLOAK_ADMIN 0.84).
_CUTOFF = 0.9

#: The realm part of an issuer URL as the core builds it ("/realms/"), asked of the core so the
#: shape is spelled in one place.
_REALM_MARKER = realm_issuer("", "")


class KeycloakConfigError(ConfigError, RuntimeError):
    """A Keycloak setting is missing or wrong; `setting` names it, `path` the file it came
    from (None: the environment or the code).

    A `tokenward.ConfigError` (so a `ValueError`, which is what SmartEM's
    `load_keycloak_config` raised) and a `RuntimeError` (what SmartEM's backend raised without
    `KEYCLOAK_URL`), so handlers written for either keep working."""

    def __init__(self, message: str, *, setting: str | None = None, path: str | None = None):
        super().__init__(message, setting=setting)
        self.path = path


def close_to_known(name: str, known: Collection[str] = KNOWN_VARIABLES) -> str | None:
    """The known name that `name` (not itself known) is most likely a typo of, or None."""
    if name in known:
        return None
    if name.upper() in known:
        # Names are case-sensitive outside Windows: `Keycloak_Url` is not read.
        return name.upper()
    matches = difflib.get_close_matches(name.upper(), list(known), n=1, cutoff=_CUTOFF)
    return matches[0] if matches else None


#: (where, name) pairs already warned about: each typo is reported once per process, however
#: often the configuration is read again (an unconfigured backend retries on every request).
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def warn_typos(names: Iterable[str], where: str, known: Collection[str] = KNOWN_VARIABLES) -> None:
    """Log a WARNING, once per process for each, for the `KEYCLOAK_*`/`AGENT_*` names in
    `names` that are not known but close to a known one. `where` names their source (a file,
    "the environment") in the message."""
    for name in sorted(set(names)):
        if not name.upper().startswith(_PREFIXES):
            continue
        suggestion = close_to_known(name, known)
        if suggestion is None:
            continue
        with _warned_lock:
            if (where, name) in _warned:
                continue
            _warned.add((where, name))
        logger.warning(
            "%s sets %s, which tokenward does not read: did you mean %s?",
            where,
            name,
            suggestion,
        )


def refuse_realm_in_url(url: str, setting: str, path: str | None = None) -> None:
    """Raise `KeycloakConfigError` when `url` (the value of `setting`) already contains a
    realm path: the realm is appended to it (giving `.../realms/dls/realms/dls`, and 404s that
    name no variable). Refused rather than accepted, because the rest of a SmartEM deployment
    reads the same variable as the bare base URL, and a realm in it could silently disagree
    with `KEYCLOAK_REALM`."""
    parts = urlsplit(url.strip())
    # On the path only, with a slash after it, so `https://realms.example` and a bare
    # `.../realms` are both seen for what they are.
    found = (parts.path.rstrip("/") + "/").find(_REALM_MARKER)
    if found < 0:
        return
    base = parts._replace(path=parts.path[:found], query="", fragment="").geturl()
    realm = parts.path[found + len(_REALM_MARKER) :].strip("/").split("/")[0]
    where = f" in {path}" if path else ""
    raise KeycloakConfigError(
        f"{setting}{where} is {url.strip()!r}, which already contains a realm path; set "
        f"{setting} to the Keycloak base URL ({base!r}) and KEYCLOAK_REALM to the realm"
        + (f" ({realm!r})" if realm else ""),
        setting=setting,
        path=path,
    )


def check_environment(environ: Mapping[str, str] | None = None, *, url_used: bool) -> None:
    """What the core's environment readers are about to read: warn about typos of known names,
    and (when `KEYCLOAK_URL` is used, not overridden) refuse one that names a realm."""
    env = os.environ if environ is None else environ
    warn_typos(env, "the environment")
    if url_used:
        url = env.get("KEYCLOAK_URL", "").strip()
        if url:
            refuse_realm_in_url(url, "KEYCLOAK_URL")
