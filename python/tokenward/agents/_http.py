"""JSON over HTTP for the agent tooling, with the standard library (tokenward needs no HTTP
package). The bearer token of a call never appears in an error: the errors name the URL, the
status and Keycloak's `error`/`error_description` (or `errorMessage`), nothing else."""

from __future__ import annotations

import json
import logging
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..errors import TokenwardError

logger = logging.getLogger("tokenward.agents")


class AgentError(TokenwardError):
    """Keycloak refused an enrolment or management call, or could not be reached.

    `status` is the HTTP status (None when there was no answer), `error` Keycloak's error code
    when it sent one (`invalid_token`, `invalid_client_metadata`, ...)."""

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None):
        super().__init__(message)
        self.status = status
        self.error = error

    @property
    def unreachable(self) -> bool:
        return self.status is None or self.status >= 500


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    document: Any


def _describe(document: Any) -> tuple[str | None, str]:
    if not isinstance(document, dict):
        return None, ""
    error = document.get("error")
    description = document.get("error_description") or document.get("errorMessage") or ""
    code = error if isinstance(error, str) else None
    text = " ".join(str(part) for part in (code, description) if part)
    return code, text[:300]


def call(
    method: str,
    url: str,
    *,
    bearer: str | None = None,
    body: Any = None,
    timeout: float = 10.0,
    ca_bundle: str | None = None,
    what: str,
    expect: tuple[int, ...] = (200,),
) -> Answer:
    """One JSON exchange; a status outside `expect` raises AgentError naming `what`."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if bearer is not None:
        request.add_header("Authorization", f"Bearer {bearer}")
    context = ssl.create_default_context(cafile=ca_bundle) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, dict(exc.headers), exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AgentError(f"{what}: cannot reach {url}: {reason}") from None
    try:
        document = json.loads(raw) if raw.strip() else None
    except ValueError:
        document = None
    if status not in expect:
        code, text = _describe(document)
        raise AgentError(
            f"{what}: {method} {url} answered {status}" + (f": {text}" if text else ""),
            status=status,
            error=code,
        )
    logger.debug("%s: %s %s -> %s", what, method, url, status)
    return Answer(status, headers, document)
