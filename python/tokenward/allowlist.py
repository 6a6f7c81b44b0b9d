"""An email allowlist kept in a file, re-read when the file changes.

The file holds one email address a line. Blank lines and lines starting with `#` are ignored,
as is anything after a `#` that follows whitespace (`alice@example.org  # team lead`).

Matching: the token's `email` claim must be a string equal to a listed entry, compared
case-insensitively in ASCII only (A-Z equal a-z; every other character must be the very same
code point). No Unicode case mapping or normalisation is applied, and the claim is not
stripped: `"\\u212a".lower() == "k"` (KELVIN SIGN), so `str.lower()` or NFKC would let
`\\u212aate@example.org` in as `kate@example.org`; here it matches nothing. An entry with
non-ASCII letters matches only the same letters in the same case.

`email_verified`: by default it is not looked at (a token whose `email_verified` is false
passes when its email is listed: the IdP vouches for the token, and the realm decides whether
users may set an unverified address). `EmailAllowlist(path, require_verified_email=True)` (or
`Authenticator(require_verified_email=True)`, or `$TOKENWARD_ALLOWLIST_REQUIRE_VERIFIED=true`
for `from_env`) passes only a listed email whose token says `"email_verified": true` (the
JSON boolean; a missing claim or the string "true" does not count). It has no effect while the
allowlist is off.

State, decided afresh whenever the file changes:

- no path configured, the file absent, or no entries in it (empty, comments only): **off**,
  every authenticated user passes;
- the path exists but cannot be read (permissions, a directory, not a regular file, not
  UTF-8): **off**, with one WARNING on logger `tokenward.allowlist` per change;
- otherwise **on**: a user whose email is not listed (or not verified, when that is required)
  is refused (`tokenward.fastapi` answers
  403 with detail `user_not_whitelisted`).

Each check costs one `os.stat()`: the file is read again only when its
(mtime_ns, size, inode, device) signature changes, so edits, truncation and replacement by
rename are all picked up on the next request. Two edits within the file system's timestamp
resolution that leave the size unchanged can go unnoticed until the next change.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ALLOWLIST_ENV", "REQUIRE_VERIFIED_ENV", "EmailAllowlist", "parse_allowlist"]

logger = logging.getLogger("tokenward.allowlist")

#: The environment variable naming the allowlist file.
ALLOWLIST_ENV = "TOKENWARD_ALLOWLIST_FILE"

#: The environment variable that, set to true, makes `from_env` require `email_verified`.
REQUIRE_VERIFIED_ENV = "TOKENWARD_ALLOWLIST_REQUIRE_VERIFIED"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})

_INLINE_COMMENT = re.compile(r"\s#")

_Signature = tuple[object, ...]


#: A-Z to a-z and nothing else: str.lower() maps non-ASCII letters onto ASCII ones.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _normalize(email: str) -> str:
    """The form an entry and a claim are compared in: ASCII case folded, nothing else."""
    return email.translate(_ASCII_LOWER)


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    # Guessing could switch a check off: refuse, as the Keycloak flags do.
    from .errors import ConfigError

    raise ConfigError(f"{name} must be true or false, not {raw!r}", setting=name)


def parse_allowlist(text: str, *, inline_comments: bool = True) -> frozenset[str]:
    """The normalized entries of an allowlist file's text. `inline_comments=False` is the
    literal mode (`tokenward.fred`, as Fred parses): only whole-line comments are dropped, so
    `a@x.com  # note` is one entry, which no email matches."""
    entries: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _INLINE_COMMENT.search(line) if inline_comments else None
        if match is not None:
            line = line[: match.start()]
        # The file's own layout (indentation, trailing blanks) is not part of an entry.
        entry = _normalize(line.strip())
        if entry:
            entries.add(entry)
    return frozenset(entries)


@dataclass(frozen=True)
class _State:
    signature: _Signature | None
    entries: frozenset[str] | None  # None: the allowlist is off


_UNLOADED = _State(signature=None, entries=None)


class EmailAllowlist:
    """An allowlist file (see the module docs). Safe to share between threads and requests."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        require_verified_email: bool = False,
        inline_comments: bool = True,
    ) -> None:
        self._path = os.fspath(path) if path is not None and os.fspath(path) != "" else None
        self.require_verified_email = bool(require_verified_email)
        self.inline_comments = bool(inline_comments)
        self._state = _UNLOADED
        self._lock = threading.Lock()

    @classmethod
    def from_env(
        cls, variable: str = ALLOWLIST_ENV, *, require_verified_email: bool | None = None
    ) -> EmailAllowlist:
        """The allowlist named by `$TOKENWARD_ALLOWLIST_FILE` (off when unset or empty).
        `require_verified_email` None reads `$TOKENWARD_ALLOWLIST_REQUIRE_VERIFIED` (true/false,
        default false; another value is a `ConfigError`)."""
        if require_verified_email is None:
            require_verified_email = _flag(REQUIRE_VERIFIED_ENV)
        return cls(
            os.environ.get(variable, "").strip() or None,
            require_verified_email=require_verified_email,
        )

    @property
    def path(self) -> str | None:
        return self._path

    def __repr__(self) -> str:
        if self.require_verified_email:
            return f"EmailAllowlist({self._path!r}, require_verified_email=True)"
        return f"EmailAllowlist({self._path!r})"

    # ---- queries ---------------------------------------------------------------------------

    def entries(self) -> frozenset[str] | None:
        """The current entries, or None when the allowlist is off."""
        if self._path is None:
            return None
        signature = self._signature(self._path)
        state = self._state
        if state.signature != signature:
            state = self._reload(signature)
        return state.entries

    @property
    def enabled(self) -> bool:
        return self.entries() is not None

    def allows(self, email: object) -> bool:
        """Whether a user with this `email` claim may pass: always when off; when on, only a
        listed (string) email. `email_verified` is not looked at here: see `permits`."""
        entries = self.entries()
        if entries is None:
            return True
        if not isinstance(email, str):
            return False
        return _normalize(email) in entries

    def permits(self, claims: Mapping[str, Any]) -> bool:
        """Whether the user of these verified claims may pass: `allows(claims["email"])`, and,
        with `require_verified_email`, `claims["email_verified"] is True`. What
        `tokenward.fastapi.Authenticator` asks."""
        entries = self.entries()
        if entries is None:
            return True
        email = claims.get("email")
        if not isinstance(email, str) or _normalize(email) not in entries:
            return False
        return not self.require_verified_email or claims.get("email_verified") is True

    # ---- loading ---------------------------------------------------------------------------

    @staticmethod
    def _signature(path: str) -> _Signature:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return ("absent",)
        except OSError as exc:
            return ("stat-error", exc.errno)
        return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev, st.st_mode)

    def _reload(self, signature: _Signature) -> _State:
        with self._lock:
            if self._state.signature == signature:
                return self._state
            path = self._path
            assert path is not None
            entries = self._load(path, signature, self.inline_comments)
            previous = self._state
            state = _State(signature, entries)
            self._state = state
        if previous.entries != entries:
            if entries is None:
                logger.info("Email allowlist %s is off", path)
            else:
                logger.info("Email allowlist %s is on with %d entries", path, len(entries))
        return state

    @staticmethod
    def _load(path: str, signature: _Signature, inline_comments: bool) -> frozenset[str] | None:
        if signature == ("absent",):
            logger.debug("Email allowlist %s does not exist", path)
            return None
        if signature[0] == "stat-error":
            logger.warning("Email allowlist %s cannot be read (stat failed); allowlist off", path)
            return None
        mode = signature[-1]
        assert isinstance(mode, int)
        if not stat.S_ISREG(mode):
            logger.warning("Email allowlist %s is not a regular file; allowlist off", path)
            return None
        try:
            with open(path, encoding="utf-8-sig") as handle:
                text = handle.read()
        except FileNotFoundError:
            # Removed between stat and open: the next check sees the new signature.
            return None
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning(
                "Email allowlist %s cannot be read (%s); allowlist off", path, type(exc).__name__
            )
            return None
        entries = parse_allowlist(text, inline_comments=inline_comments)
        return entries or None
