//! The one error type of the core. The Python bindings map each variant to one exception class.

use std::fmt;

/// Why a token was rejected. The strings are part of the public API (`InvalidToken.code`).
/// New codes may come with new checks: match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// Not a compact JWS we accept (shape, base64url, JSON, header parameters).
    Malformed,
    /// Longer than `max_token_bytes`.
    TooLarge,
    /// Unsigned, or the signature does not verify.
    BadSignature,
    /// The header's `alg` is not allowed, or does not match its key.
    AlgNotAllowed,
    /// No published key has the token's `kid`.
    UnknownKid,
    /// Past `exp` (plus leeway).
    Expired,
    /// Before `nbf`, or `iat` in the future (beyond leeway).
    NotYetValid,
    /// `iss` is not the trusted issuer.
    BadIssuer,
    /// `aud` names none of the accepted audiences.
    BadAudience,
    /// `azp` is not an allowed authorized party.
    AzpNotAllowed,
    /// `typ` is not an accepted token type.
    WrongTokenType,
    /// A required claim is absent.
    MissingClaim,
    /// A registered claim has the wrong type, or `exp` is before `iat`.
    BadClaim,
    /// `exp - iat` exceeds `max_lifetime`.
    LifetimeTooLong,
    /// Its session, subject, client or id was revoked (`Verifier::revoke`).
    Revoked,
}

impl Code {
    /// The code's name, as `InvalidToken.code` carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Malformed => "malformed",
            Code::TooLarge => "too_large",
            Code::BadSignature => "bad_signature",
            Code::AlgNotAllowed => "alg_not_allowed",
            Code::UnknownKid => "unknown_kid",
            Code::Expired => "expired",
            Code::NotYetValid => "not_yet_valid",
            Code::BadIssuer => "bad_issuer",
            Code::BadAudience => "bad_audience",
            Code::AzpNotAllowed => "azp_not_allowed",
            Code::WrongTokenType => "wrong_token_type",
            Code::MissingClaim => "missing_claim",
            Code::BadClaim => "bad_claim",
            Code::LifetimeTooLong => "lifetime_too_long",
            Code::Revoked => "revoked",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call to a token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequestFailure {
    /// HTTP status, when the endpoint answered at all.
    pub status: Option<u16>,
    /// The OAuth2 `error` member, when the body had one.
    pub error: Option<String>,
    /// What happened, for a log line (never the secret, even if the server echoed it).
    pub description: String,
    /// Whether trying again later may succeed (network errors, 5xx, 429).
    pub retryable: bool,
    /// How the request failed when no answer came (None when the endpoint answered).
    pub transport: Option<Transport>,
}

/// How a request failed before any answer came: what a caller mapping failures onto its own
/// exception classes (SmartEM's `requests.ConnectTimeout`, `ConnectionError`, `Timeout`) needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// No connection could be made (refused, reset, DNS, TLS).
    Connect,
    /// The connection was not made within the timeout.
    ConnectTimeout,
    /// Connected, but the answer did not come (or finish) within the timeout.
    Timeout,
    /// Connected, then the connection broke before the answer was complete.
    Dropped,
}

impl Transport {
    /// The name the Python API gives it (`TokenRequestError.transport`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Connect => "connect",
            Transport::ConnectTimeout => "connect_timeout",
            Transport::Timeout => "timeout",
            Transport::Dropped => "dropped",
        }
    }
}

/// Messages never contain a token, a secret or key material: callers log them. New variants
/// may come: match with a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is refused (a 401 for the caller's client).
    #[error("{detail}")]
    InvalidToken {
        /// Why, as a stable code.
        code: Code,
        /// Why, in words.
        detail: String,
    },
    /// No key set to check the token against: the IdP is unreachable and nothing usable is
    /// cached (a 503, not the token's fault).
    #[error("signing keys unavailable: {0}")]
    KeySetUnavailable(String),
    /// The token endpoint did not issue a token.
    #[error("token request failed: {}", .0.description)]
    TokenRequest(TokenRequestFailure),
    /// A setting is unusable.
    #[error("invalid setting {setting}: {message}")]
    Config {
        /// The setting's name, as the caller spelled it (keyword argument or variable).
        setting: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    pub(crate) fn invalid(code: Code, detail: impl Into<String>) -> Self {
        Error::InvalidToken {
            code,
            detail: detail.into(),
        }
    }

    pub(crate) fn config(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            setting: setting.into(),
            message: message.into(),
        }
    }

    /// The rejection code, for an invalid token.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::InvalidToken { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
