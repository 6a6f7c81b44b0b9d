"""Fred's email whitelist functions over `tokenward.allowlist.EmailAllowlist` in literal mode.

The file is `$TOKENWARD_ALLOWLIST_FILE` (Fred keeps a `users.txt` beside its module; point the
variable at it), or the path given to `set_whitelist_path`. Fred's parsing: blank lines and
lines starting with `#` are skipped, and nothing else is: `a@x.com  # note` is a literal entry.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ..allowlist import ALLOWLIST_ENV, EmailAllowlist, _normalize, parse_allowlist
from ._user import KeycloakUser

__all__ = [
    "is_email_whitelisted",
    "is_user_whitelisted",
    "is_whitelist_active",
    "retrieve_authorized_users",
    "set_whitelist_path",
]


def _env_path() -> Path | None:
    raw = os.environ.get(ALLOWLIST_ENV, "").strip()
    return Path(raw) if raw else None


#: The whitelist file, read at every check (so a test or a deployment may repoint it).
_WHITELIST_PATH: Path | None = _env_path()
_WHITELIST_CACHE_KEY = str(_WHITELIST_PATH)


class _OneAllowlist:
    """The `EmailAllowlist` of the current `_WHITELIST_PATH` (which re-reads on change)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: EmailAllowlist | None = None

    def get(self, path: Path | None) -> EmailAllowlist:
        with self._lock:
            current = self._current
            wanted = os.fspath(path) if path is not None else None
            if current is None or current.path != wanted:
                current = EmailAllowlist(path, inline_comments=False)
                self._current = current
            return current

    def clear(self) -> None:
        with self._lock:
            self._current = None


_WHITELIST_CACHE = _OneAllowlist()


def set_whitelist_path(path: str | os.PathLike[str] | None) -> None:
    """Use this file as the whitelist (None: none, the whitelist is off)."""
    global _WHITELIST_PATH, _WHITELIST_CACHE_KEY
    _WHITELIST_PATH = Path(path) if path is not None else None
    _WHITELIST_CACHE_KEY = str(_WHITELIST_PATH)


def current_allowlist() -> EmailAllowlist:
    """The module's allowlist, as `FredSecurity` consults it by default."""
    return _WHITELIST_CACHE.get(_WHITELIST_PATH)


def _normalize_email(value: str) -> str:
    # Fred strips and lower-cases; the case folding here is ASCII only (tokenward.allowlist).
    return _normalize(value.strip())


def _parse_whitelist(raw: str) -> frozenset[str]:
    return parse_allowlist(raw, inline_comments=False)


def retrieve_authorized_users() -> frozenset[str]:
    """The whitelist's entries; empty when it is off."""
    return current_allowlist().entries() or frozenset()


def is_whitelist_active() -> bool:
    """Whether a whitelist file exists, can be read and has at least one entry."""
    return current_allowlist().enabled


def is_email_whitelisted(email: str | None) -> bool:
    """Whether `email` is listed: a membership test, so False when the whitelist is off
    (unlike `EmailAllowlist.allows`, which lets everyone through then)."""
    normalized = _normalize_email(email or "")
    if not normalized:
        return False
    return normalized in retrieve_authorized_users()


def is_user_whitelisted(user: KeycloakUser) -> bool:
    return is_email_whitelisted(user.email)
