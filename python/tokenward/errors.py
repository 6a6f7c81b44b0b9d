"""The exceptions tokenward raises. The native extension raises these very classes."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ExpiredToken",
    "InvalidToken",
    "KeySetUnavailable",
    "StreamError",
    "TokenRequestError",
    "TokenwardError",
]


class TokenwardError(Exception):
    """Base class of every tokenward error."""


class InvalidToken(TokenwardError):
    """The token was rejected. `code` is a stable string ("expired", "bad_signature", ...).

    The message never contains the token."""

    def __init__(self, message: str, code: str = "malformed") -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (str(self), self.code))


class ExpiredToken(InvalidToken):
    """The token's `exp` has passed (beyond the leeway)."""

    def __init__(self, message: str, code: str = "expired") -> None:
        super().__init__(message, code)


class KeySetUnavailable(TokenwardError):
    """No usable signing keys and the JWKS cannot be fetched: answer 503, not 401."""


class TokenRequestError(TokenwardError):
    """The token endpoint failed.

    `status` is the HTTP status (None when it never answered), `error` the OAuth2 error code
    ("invalid_client", ...), `retryable` whether trying again later may help, and `transport`,
    when no answer came, how the request failed: "connect" (no connection could be made),
    "connect_timeout", "timeout" (connected, no answer in time) or "dropped" (the connection
    broke before the answer was complete)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        retryable: bool = False,
        transport: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.retryable = retryable
        self.transport = transport

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (
            _rebuild_token_request_error,
            (str(self), self.status, self.error, self.retryable, self.transport),
        )


def _rebuild_token_request_error(
    message: str,
    status: int | None,
    error: str | None,
    retryable: bool,
    transport: str | None = None,
) -> TokenRequestError:
    return TokenRequestError(
        message, status=status, error=error, retryable=retryable, transport=transport
    )


class ConfigError(TokenwardError, ValueError):
    """A setting is missing or wrong; `setting` names it."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class StreamError(TokenwardError):
    """An event stream could not be (re)opened: `attempts` opens in a row failed, or one failed
    in a way another try cannot mend (a 403, a 404, a body that is not an event stream).

    `status` is the last HTTP status (None when no answer came), `last_event_id` where the
    stream stood, for a caller that resumes it later. The message never contains a token."""

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        status: int | None = None,
        last_event_id: str = "",
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status = status
        self.last_event_id = last_event_id

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_rebuild_stream_error, (str(self), self.attempts, self.status, self.last_event_id))


def _rebuild_stream_error(
    message: str, attempts: int, status: int | None, last_event_id: str
) -> StreamError:
    return StreamError(message, attempts=attempts, status=status, last_event_id=last_event_id)
