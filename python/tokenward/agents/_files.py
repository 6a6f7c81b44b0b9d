"""The agent's files: the private key and the config, owner-only, and never overwritten by
accident.

A new file is created with O_CREAT | O_EXCL and mode 0600, so an existing key is never replaced
and the file is never readable by others, not even for a moment. A file that must change (the
config after a rotation, the registration file whose token Keycloak rotates) is written to a new
owner-only file beside it and renamed over the old one, so a reader sees the old or the new
content, never half of either.

On Windows the mode sets only the read-only flag: the file gets the ACL of its directory, so
keep the agent's directory under the user's profile (or give it an ACL for the agent's account
alone); O_EXCL works there as everywhere.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from ..errors import ConfigError

OWNER_ONLY = 0o600
_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def _binary() -> int:
    return getattr(os, "O_BINARY", 0)


def create_private(path: Path, text: str, setting: str) -> None:
    """Write `text` to a new owner-only file; ConfigError naming `setting` if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _binary(), OWNER_ONLY)
    except FileExistsError:
        raise ConfigError(
            f"{setting}: {path} already exists; refusing to overwrite it", setting=setting
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{setting}: cannot create {path}: {exc.strerror}", setting=setting
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def replace_private(path: Path, text: str, setting: str) -> None:
    """Replace `path` with `text` at once, the new file owner-only too."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    create_private(temporary, text, setting)
    try:
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(
            f"{setting}: cannot replace {path}: {exc.strerror}", setting=setting
        ) from None


def render_env(values: dict[str, str]) -> str:
    """KEY=VALUE lines; a value with a space, a quote, `#` or `=` is double-quoted."""
    lines = []
    for key, value in values.items():
        if re.search(r"[\s\"'#=\\]", value):
            value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def read_env(path: Path, setting: str) -> dict[str, str]:
    """The KEY=VALUE lines of an agent file (as `render_env` writes them; `#` lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{setting}: cannot read {path}: {exc.strerror}", setting=setting
        ) from None
    values: dict[str, str] = {}
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        match = _LINE.match(raw)
        if match is None:
            continue
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        values[key] = value
    return values
