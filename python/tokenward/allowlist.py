"""An email allowlist kept in a file, re-read when the file changes.

The file holds one email address a line. Blank lines and lines starting with `#` are ignored,
as is anything after a `#` that follows whitespace (`alice@example.org  # team lead`). Entries
and the token's `email` claim are compared after `strip().lower()`.

State, decided afresh whenever the file changes:

- no path configured, the file absent, or no entries in it (empty, comments only): **off**,
  every authenticated user passes;
- the path exists but cannot be read (permissions, a directory, not a regular file, not
  UTF-8): **off**, with one WARNING on logger `tokenward.allowlist` per change;
- otherwise **on**: a user whose email is not listed is refused (`tokenward.fastapi` answers
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
from dataclasses import dataclass

__all__ = ["ALLOWLIST_ENV", "EmailAllowlist", "parse_allowlist"]

logger = logging.getLogger("tokenward.allowlist")

#: The environment variable naming the allowlist file.
ALLOWLIST_ENV = "TOKENWARD_ALLOWLIST_FILE"

_INLINE_COMMENT = re.compile(r"\s#")

_Signature = tuple[object, ...]


def _normalize(email: str) -> str:
    return email.strip().lower()


def parse_allowlist(text: str) -> frozenset[str]:
    """The normalized entries of an allowlist file's text."""
    entries: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _INLINE_COMMENT.search(line)
        if match is not None:
            line = line[: match.start()]
        entry = _normalize(line)
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

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self._path = os.fspath(path) if path is not None and os.fspath(path) != "" else None
        self._state = _UNLOADED
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, variable: str = ALLOWLIST_ENV) -> EmailAllowlist:
        """The allowlist named by `$TOKENWARD_ALLOWLIST_FILE` (off when unset or empty)."""
        return cls(os.environ.get(variable, "").strip() or None)

    @property
    def path(self) -> str | None:
        return self._path

    def __repr__(self) -> str:
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
        listed (string) email."""
        entries = self.entries()
        if entries is None:
            return True
        if not isinstance(email, str):
            return False
        return _normalize(email) in entries

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
            entries = self._load(path, signature)
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
    def _load(path: str, signature: _Signature) -> frozenset[str] | None:
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
        entries = parse_allowlist(text)
        return entries or None
