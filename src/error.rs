//! The one error type of the core. The Python bindings map each variant to one exception class.

use std::fmt;

/// Why a token was rejected. The strings are part of the public API (`InvalidToken.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Malformed,
    TooLarge,
    BadSignature,
    AlgNotAllowed,
    UnknownKid,
    Expired,
    NotYetValid,
    BadIssuer,
    BadAudience,
    AzpNotAllowed,
    WrongTokenType,
    MissingClaim,
    BadClaim,
}

impl Code {
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
    pub description: String,
    /// Whether trying again later may succeed (network errors, 5xx, 429).
    pub retryable: bool,
}

/// Messages never contain a token, a secret or key material: callers log them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{detail}")]
    InvalidToken { code: Code, detail: String },
    #[error("signing keys unavailable: {0}")]
    KeySetUnavailable(String),
    #[error("token request failed: {}", .0.description)]
    TokenRequest(TokenRequestFailure),
    #[error("invalid setting {setting}: {message}")]
    Config { setting: String, message: String },
}

impl Error {
    pub fn invalid(code: Code, detail: impl Into<String>) -> Self {
        Error::InvalidToken {
            code,
            detail: detail.into(),
        }
    }

    pub fn config(setting: impl Into<String>, message: impl Into<String>) -> Self {
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

pub type Result<T, E = Error> = std::result::Result<T, E>;
