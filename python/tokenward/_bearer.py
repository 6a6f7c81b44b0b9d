"""The bearer layer, free of any web framework: what `tokenward.fastapi`,
`tokenward.middleware` and `tokenward.smartem` share.

- reading a request: the `Authorization` header (RFC 6750 section 2.1, strictly) and the path,
  straight from the ASGI scope; exempt-path matching on the path the app routes; the identity a
  request already proved, kept in its state;
- refusing one: `refusal(exception)` gives the status, detail and headers of every refusal
  (401 with the RFC 6750 challenge, 403, 503 with `Retry-After`, 500) from `RefusalTexts`,
  data keyed by `InvalidToken.code`. Which failure gets which status is decided here and
  nowhere else;
- `Lazy`: a value made once on first use, under a lock;
- `loggable`: a claim value made safe for a log line (control characters escaped).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, NamedTuple, TypeAlias, TypeVar

from ._native import _LogThrottle
from .errors import InvalidToken, KeySetUnavailable, TokenwardError

__all__ = [
    "B64TOKEN",
    "INVALID_TOKEN_TEXTS",
    "REFUSED",
    "SMARTEM_TEXTS",
    "TOKENWARD_TEXTS",
    "WS_POLICY_VIOLATION",
    "EmptyToken",
    "Identity",
    "InvalidRequest",
    "Lazy",
    "MalformedToken",
    "NoCredentials",
    "NotAllowlisted",
    "NotConfigured",
    "Refusable",
    "Refusal",
    "RefusalTexts",
    "Refused",
    "authorization_header",
    "bad_request",
    "bearer_token",
    "challenge",
    "is_exempt",
    "loggable",
    "parse_authorization",
    "recalled_identity",
    "refusal",
    "remember_identity",
    "request_path",
    "route_path",
    "unauthorized",
    "unavailable",
]

T = TypeVar("T")


# ---- why a request is refused (besides InvalidToken and KeySetUnavailable) ---------------------


class Refused(Exception):
    """A refusal the bearer layer makes itself; `refusal` answers it."""


class NoCredentials(Refused):
    """No bearer credentials: no `Authorization` header (`kind` "missing") or another scheme
    (`kind` "not_bearer"). RFC 6750 section 3.1: the challenge carries no `error`."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class EmptyToken(Refused):
    """`Bearer` with no token after it."""

    kind = "empty"


class MalformedToken(Refused):
    """`Bearer` and spaces, then something that is not an RFC 6750 b64token (a control
    character, a space inside, non-ASCII, ...): refused as InvalidToken code `malformed` would
    be, without handing the verifier a string no token can be."""

    kind = "malformed"
    code = "malformed"


class InvalidRequest(Refused):
    """RFC 6750 section 3.1 `invalid_request` (HTTP 400): the request carries more than one
    `Authorization` header. One layer may read the first and another (a proxy, a logger) the
    last, so neither is trusted."""

    kind = "invalid_request"


class NotAllowlisted(Refused):
    """A verified user whose email is not on the allowlist."""

    def __init__(self, user: object, email: object) -> None:
        super().__init__("not on the email allowlist")
        self.user = user
        self.email = email


class NotConfigured(Refused):
    """The verifier cannot be made (a setting is missing or wrong); the cause is its error."""

    def __init__(self, cause: TokenwardError) -> None:
        super().__init__(str(cause))
        self.__cause__ = cause


#: Every exception `refusal` answers (for `except`); anything else is a bug and propagates.
REFUSED: Final = (Refused, InvalidToken, KeySetUnavailable)
Refusable: TypeAlias = Refused | InvalidToken | KeySetUnavailable


# ---- the Authorization header --------------------------------------------------------------


#: `Bearer`, one or more spaces (0x20 only), an RFC 6750 b64token: the only credentials taken.
#: re.ASCII: under Unicode rules IGNORECASE lets KELVIN SIGN match [A-Za-z] and `k`.
_CREDENTIALS: Final = re.compile(r"(?i:bearer) +([A-Za-z0-9\-._~+/]+=*)", re.ASCII)
#: RFC 6750 section 2.1 b64token alone (for `ForwardedBearer` too).
B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*", re.ASCII)


def bearer_token(value: str | None) -> str:
    """The token of an `Authorization` header value; raises `NoCredentials`, `EmptyToken` or
    `MalformedToken`.

    RFC 6750 section 2.1: `Bearer` (any case), one or more spaces, a b64token. A value that
    does not start with `Bearer` and a space (another scheme, or `Bearer` followed by a tab,
    NBSP, NEL or any other character) is not bearer credentials. A bare `Bearer` counts as an
    empty bearer token: HTTP servers strip trailing whitespace, so `Bearer ` arrives as
    `Bearer`."""
    if value is not None:
        # The hot path: one precompiled fullmatch, no allocation but the match.
        match = _CREDENTIALS.fullmatch(value)
        if match is not None:
            return match.group(1)
        # Optional whitespace around a field value is not part of it (RFC 9110 section 5.5);
        # only SP and HTAB are that whitespace, not str.strip()'s Unicode set.
        value = value.strip(" \t")
    if not value:
        raise NoCredentials("missing")
    scheme, _, rest = value.partition(" ")
    if not scheme.isascii() or scheme.lower() != "bearer":
        raise NoCredentials("not_bearer")
    token = rest.lstrip(" ")
    if not token:
        raise EmptyToken()
    if B64TOKEN.fullmatch(token) is None:
        raise MalformedToken()
    return token


def parse_authorization(value: str | None) -> tuple[str, str | None]:
    """Classify an `Authorization` header value: ("missing", None), ("not_bearer", None),
    ("empty", None), ("malformed", None) or ("bearer", token), by the rules of
    `bearer_token`."""
    try:
        return ("bearer", bearer_token(value))
    except (NoCredentials, EmptyToken, MalformedToken) as exc:
        return (exc.kind, None)


def authorization_header(scope: Mapping[str, Any]) -> str | None:
    """The request's `Authorization` header, read straight from the ASGI scope (whose header
    names are lower-case); None without one. Raises `InvalidRequest` when there are two or
    more, whatever they say."""
    header: str | None = None
    # The whole list is read (no early return) so that a second header is always seen.
    for name, value in scope["headers"]:
        if name == b"authorization":
            if header is not None:
                raise InvalidRequest("more than one Authorization header")
            header = value.decode("latin-1")
    return header


# ---- the path ------------------------------------------------------------------------------


def request_path(scope: Mapping[str, Any]) -> str:
    """`request.url.path` without building the URL (Starlette escapes these three in it)."""
    path: str = scope["path"]
    return path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


def route_path(scope: Mapping[str, Any]) -> str:
    """The path the app routes: `scope["path"]` with the app's `root_path` taken off, as
    Starlette's router takes it off (`starlette._utils.get_route_path`, which a test keeps this
    in step with). `root_path` is set by `uvicorn --root-path`, `FastAPI(root_path=...)` and
    every `Mount` on the way in; it is server configuration, never request data. The prefix
    counts only as whole path segments: under `/api`, `/apix/health` stays `/apix/health`."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if len(path) == len(root_path):
        return ""
    if path[len(root_path)] == "/":
        return path[len(root_path) :]
    return path


def is_exempt(scope: Mapping[str, Any], exempt_paths: frozenset[str]) -> bool:
    """Whether the request's path is one of `exempt_paths`: an exact match on the path the app
    routes (`route_path`: percent-decoded by the server, below any `root_path` or mount, not
    normalised, no query). So an exempt path reaches exactly the route of that path, behind any
    prefix, and no spelling of another path does. No exempt paths, the common case of a
    middleware, costs no path at all."""
    return bool(exempt_paths) and route_path(scope) in exempt_paths


# ---- the identity a request proved -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified bearer token: its claims and the raw token (left out of repr())."""

    claims: dict[str, Any]
    token: str = field(repr=False)

    def __iter__(self) -> Iterator[Any]:
        # Unpacks as `claims, token`, like the tuple it replaces.
        return iter((self.claims, self.token))


#: Where a request's verified identities are kept: `scope["state"][_STATE_KEY][id(holder)]`
#: (what Starlette's `request.state` reads), so that a middleware and the dependencies after it,
#: or several dependencies of one request, verify once.
_STATE_KEY = "_tokenward_identities"


def recalled_identity(scope: Mapping[str, Any], holder: object) -> Identity | None:
    """The identity `holder` (an authenticator) verified earlier in this request, if any."""
    # get() and None checks rather than get(key, {}): no dict is made for a request without.
    state: dict[str, Any] | None = scope.get("state")
    identities: dict[int, Identity] | None = None if state is None else state.get(_STATE_KEY)
    return None if identities is None else identities.get(id(holder))


def remember_identity(scope: MutableMapping[str, Any], holder: object, identity: Identity) -> None:
    state: dict[str, Any] | None = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    identities: dict[int, Identity] | None = state.get(_STATE_KEY)
    if identities is None:
        identities = state[_STATE_KEY] = {}
    identities[id(holder)] = identity


# ---- refusals ------------------------------------------------------------------------------

#: The 401 text of each `InvalidToken.code` (the codes of the core's `error::Code`), one row per
#: code: tokenward's RFC 6750 `error_description` (also the `detail`), and SmartEM's `detail`
#: (None: SmartEM's catch-all "Invalid token"). A code not listed gets the catch-all text.
INVALID_TOKEN_TEXTS: Final[Mapping[str, tuple[str, str | None]]] = {
    "malformed": ("The token is malformed", None),
    "too_large": ("The token is too large", None),
    "bad_signature": ("The token signature is invalid", None),
    "alg_not_allowed": ("The token signing algorithm is not allowed", None),
    "unknown_kid": ("The token signing key is unknown", "Cannot resolve signing key"),
    "expired": ("The token has expired", "Token expired"),
    "not_yet_valid": ("The token is not valid yet", None),
    "bad_issuer": ("The token issuer is not trusted", None),
    "bad_audience": ("The token audience is not accepted", None),
    "azp_not_allowed": (
        "The token was issued to a client that is not allowed",
        "Token azp not permitted",
    ),
    "wrong_token_type": ("The token is not an access token", None),
    "missing_claim": ("The token lacks a required claim", None),
    "bad_claim": ("The token has an invalid claim", None),
    "lifetime_too_long": ("The token lifetime exceeds the maximum permitted", None),
    # SmartEM had no revocation: its catch-all text, as for any other rejection it never named.
    "revoked": ("The token has been revoked", None),
}


@dataclass(frozen=True)
class RefusalTexts:
    """What an authenticator's refusals say (the `detail`s; no token data, header-safe).
    `invalid_request`: the 400 for a request with more than one `Authorization` header.

    `invalid_token` is read at each refusal, so a change to the mapping counts.
    `error_attributes`: whether a 401 for a presented token carries RFC 6750's `error` and
    `error_description` (SmartEM's answers never did). `rejected_log_level`: how loudly a
    rejected token is logged."""

    no_credentials: str
    empty_token: str
    invalid_token: Mapping[str, str]
    other_invalid_token: str
    keys_unavailable: str
    not_configured: str
    not_allowlisted: str
    invalid_request: str = "The request has more than one Authorization header"
    error_attributes: bool = True
    rejected_log_level: int = logging.INFO


#: tokenward's own answers (`tokenward.fastapi`, `tokenward.middleware`).
TOKENWARD_TEXTS: Final = RefusalTexts(
    no_credentials="Not authenticated",
    empty_token="The bearer token is empty",
    invalid_token={code: texts[0] for code, texts in INVALID_TOKEN_TEXTS.items()},
    other_invalid_token="The token is invalid",
    keys_unavailable="Token signing keys are unavailable; try again later",
    not_configured="Authentication is not configured",
    # Fred's UI keys on this detail.
    not_allowlisted="user_not_whitelisted",
)

#: SmartEM Decisions' answers, word for word (`tokenward.smartem.verify_token`).
SMARTEM_TEXTS: Final = RefusalTexts(
    no_credentials="Missing or malformed Authorization header",
    empty_token="Empty bearer token",
    invalid_token={code: texts[1] for code, texts in INVALID_TOKEN_TEXTS.items() if texts[1]},
    other_invalid_token="Invalid token",
    keys_unavailable="Signing keys unavailable",
    not_configured="Authentication is not configured",
    not_allowlisted="user_not_whitelisted",
    invalid_request="Multiple Authorization headers",
    error_attributes=False,
    rejected_log_level=logging.WARNING,
)


#: Fred's answers (`tokenward.fred`, as `fred_core.security.oidc` words them). Fred words a
#: failed key lookup (a malformed token, an unknown kid) apart from other rejections.
FRED_TEXTS: Final = RefusalTexts(
    no_credentials="No authentication token provided",
    empty_token="No authentication token provided",
    invalid_token={
        "expired": "Token has expired",
        "lifetime_too_long": "Token lifetime exceeds the maximum permitted duration",
        "malformed": "Invalid token signature",
        "too_large": "Invalid token signature",
        "unknown_kid": "Invalid token signature",
        "missing_claim": "Invalid token claims",
        # Fred had no revocation; a signed-out session's token is told apart from a bad one.
        "revoked": "Token has been revoked",
    },
    other_invalid_token="Invalid token",
    keys_unavailable="Token signing keys are unavailable; try again later",
    not_configured="Authentication is not configured",
    not_allowlisted="user_not_whitelisted",
    rejected_log_level=logging.WARNING,
)

#: Fred's text for a token whose `exp` is before its `iat` (a `bad_claim` of its own there).
FRED_INVERTED_LIFETIME: Final = "Token has invalid iat/exp claims"


class Refusal(NamedTuple):
    """An answer refusing a request; `HTTPException(*refusal)` raises it in FastAPI."""

    status: int
    detail: str
    headers: dict[str, str] | None


def _quote(value: str) -> str:
    # RFC 6750 allows %x20-21 / %x23-5B / %x5D-7E in error_description: drop the rest.
    return "".join(c for c in value if 0x20 <= ord(c) <= 0x7E and c not in '"\\')


def challenge(realm: str | None, error: str | None = None, description: str | None = None) -> str:
    """The `WWW-Authenticate` value of a 401 (RFC 6750 section 3)."""
    params = []
    if realm is not None:
        params.append(f'realm="{_quote(realm)}"')
    if error is not None:
        params.append(f'error="{error}"')
    if description is not None:
        params.append(f'error_description="{_quote(description)}"')
    return "Bearer " + ", ".join(params) if params else "Bearer"


def unauthorized(
    detail: str, realm: str | None = None, error: str | None = None, description: str | None = None
) -> Refusal:
    """A 401 with the RFC 6750 challenge (no `error` when no credentials were sent)."""
    return Refusal(401, detail, {"WWW-Authenticate": challenge(realm, error, description)})


def bad_request(detail: str, realm: str | None = None, error_attributes: bool = True) -> Refusal:
    """RFC 6750 section 3.1 `invalid_request`: a 400, with the challenge naming the error."""
    if error_attributes:
        return Refusal(
            400, detail, {"WWW-Authenticate": challenge(realm, "invalid_request", detail)}
        )
    return Refusal(400, detail, {"WWW-Authenticate": challenge(realm)})


def unavailable(detail: str, retry_after: int) -> Refusal:
    """A 503 telling the client when to try again: no signing keys can be had right now, and a
    401 would make it throw away a token that may well be fine."""
    return Refusal(503, detail, {"Retry-After": str(retry_after)})


#: WebSocket close code for a refused handshake (RFC 6455 section 7.4.1: policy violation).
WS_POLICY_VIOLATION: Final = 1008

_logger = logging.getLogger("tokenward.bearer")

#: An outage refuses every request: one warning per interval, with the count left out (each
#: `Authenticator` has its own).
_KEYS_UNAVAILABLE_LOG: Final = _LogThrottle()

# ---- log lines -------------------------------------------------------------------------------

#: What a log line must not carry raw: C0 controls (CR and LF above all), DEL, C1 controls
#: (NEL among them), the Unicode line and paragraph separators (line breaks to many viewers)
#: and the bidirectional overrides and isolates (which reorder what a reader sees).
_UNLOGGABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


#: repr()'s short forms, so a claim reads the same whether logged alone or inside a list.
_SHORT_ESCAPES: Final = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def loggable(value: object) -> str:
    """A claim value for a log line: a string as it is, with the characters of `_UNLOGGABLE`
    written as `\\t`, `\\n`, `\\r`, `\\xNN` or `\\uNNNN` (as repr() writes them), so a
    signed claim cannot forge or hide a log line; any other value as its repr(), escaped the
    same way. Every claim tokenward logs passes here."""
    text = value if isinstance(value, str) else repr(value)
    # search() first: the common clean value costs no substitution and no new string.
    if _UNLOGGABLE.search(text) is None:
        return text
    return _UNLOGGABLE.sub(_escape, text)


def refusal(
    exc: Refusable,
    texts: RefusalTexts = TOKENWARD_TEXTS,
    *,
    realm: str | None = None,
    retry_after: int = 30,
    logger: logging.Logger = _logger,
    outage_log: _LogThrottle = _KEYS_UNAVAILABLE_LOG,
) -> Refusal:
    """The answer to a request refused with `exc` (one of `REFUSED`), logged on `logger`:
    401 for no, an empty, a malformed or a rejected token, 400 (`invalid_request`) for more
    than one `Authorization` header, 403 for a user not on the allowlist, 503 with
    `Retry-After` when no signing keys can be had (logged at most once per `outage_log`
    interval, with the count left out), 500 when authentication is not configured.
    """
    if isinstance(exc, InvalidToken):
        logger.log(texts.rejected_log_level, "Bearer token rejected (%s): %s", exc.code, exc)
        detail = texts.invalid_token.get(exc.code, texts.other_invalid_token)
    elif isinstance(exc, EmptyToken):
        detail = texts.empty_token
    elif isinstance(exc, MalformedToken):
        logger.log(texts.rejected_log_level, "Bearer token rejected (malformed): not a b64token")
        detail = texts.invalid_token.get(exc.code, texts.other_invalid_token)
    elif isinstance(exc, InvalidRequest):
        logger.log(texts.rejected_log_level, "Request refused (invalid_request): %s", exc)
        return bad_request(texts.invalid_request, realm, texts.error_attributes)
    elif isinstance(exc, NoCredentials):
        return unauthorized(texts.no_credentials, realm)
    elif isinstance(exc, KeySetUnavailable):
        suppressed = outage_log.admit()
        if suppressed is not None:
            logger.warning(
                "No signing keys available, answering 503: %s%s",
                exc,
                _LogThrottle.suffix(suppressed),
            )
        return unavailable(texts.keys_unavailable, retry_after)
    elif isinstance(exc, NotAllowlisted):
        logger.warning(
            "User not on the email allowlist: user=%s email=%s",
            loggable(exc.user),
            loggable(exc.email),
        )
        return Refusal(403, texts.not_allowlisted, None)
    elif isinstance(exc, NotConfigured):
        logger.error("Authentication is not configured: %s", exc)
        return Refusal(500, texts.not_configured, None)
    else:
        raise TypeError(f"not a refusal: {type(exc).__name__}") from exc
    if texts.error_attributes:
        return unauthorized(detail, realm, "invalid_token", detail)
    return unauthorized(detail, realm)


# ---- made once, on first use -----------------------------------------------------------------


class Lazy(Generic[T]):
    """`holder.<name>`, made by `make` on first use: once, under a lock, so the threads of a
    first burst of requests make one between them.

    The value lives in that plain attribute (an instance attribute, or a module global with the
    module as holder), so a hot path reads it without a call, and a test may swap it."""

    __slots__ = ("_holder", "_lock", "_make", "_name")

    def __init__(self, holder: object, name: str, make: Callable[[], T]) -> None:
        self._holder = holder
        self._name = name
        self._make = make
        self._lock = threading.Lock()

    def get(self) -> T:
        value: T | None = getattr(self._holder, self._name)
        if value is None:
            with self._lock:
                value = getattr(self._holder, self._name)
                if value is None:
                    value = self._make()
                    setattr(self._holder, self._name, value)
        return value

    def set(self, value: T | None) -> None:
        """Use `value` from now on (None: make one anew on the next `get`)."""
        with self._lock:
            setattr(self._holder, self._name, value)
