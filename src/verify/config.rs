//! Verifier settings: defaults, validation (errors name the setting), and the environment.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};

use crate::error::{Error, Result};
use crate::http::{self, HttpConfig};
use crate::jwks::{JwksPolicy, KeySetLocation};

use super::azp::AzpAllowlist;
use super::policy::Policy;
use super::report_only::ReportOnly;

pub(crate) const ASYMMETRIC_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// `revocation_horizon`'s default: a day, longer than any access token Keycloak issues by default.
pub(super) const DEFAULT_REVOCATION_HORIZON: i64 = 86_400;

/// Mirrors the keyword arguments of the Python `Verifier`.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The trusted issuer (`iss`), an http(s) URL; also where discovery starts.
    pub issuer: String,
    /// The key set's URL; else found through the issuer's discovery document.
    pub jwks_uri: Option<String>,
    /// Accepted audiences (`aud`); empty: not checked.
    pub audience: Vec<String>,
    /// Accepted authorized parties (`azp`): exact names, or prefixes ending in `*`
    /// (`SmartEM_Agent_*`); None: any.
    pub allowed_azp: Option<Vec<String>>,
    /// Accepted header algorithms; None: every asymmetric one.
    pub algorithms: Option<Vec<String>>,
    /// Seconds of clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: i64,
    /// Whether `iss` must equal `issuer`.
    pub verify_issuer: bool,
    /// Claims a token must carry.
    pub required_claims: Vec<String>,
    /// Accepted `typ` values, when the token has one; None: any.
    pub token_types: Option<Vec<String>>,
    /// Longest accepted `exp - iat`, in seconds; None: no ceiling. Tokens without `iat` are
    /// not checked (require `iat` in `required_claims` to refuse them).
    pub max_lifetime: Option<i64>,
    /// Longer tokens are refused unread.
    pub max_token_bytes: i64,
    /// Verified tokens remembered; 0: no cache.
    pub cache_size: i64,
    /// Seconds a key set is fresh when the server sends no `max-age`.
    pub jwks_ttl: f64,
    /// Seconds between refetches for unknown kids; one inside them waits for the next (at
    /// most 5 s).
    pub jwks_cooldown: f64,
    /// Seconds past expiry a key set is still served while the IdP is down.
    pub jwks_max_stale: f64,
    /// Seconds allowed for one request to the IdP.
    pub http_timeout: f64,
    /// Extra CA certificates (PEM) trusted beside the system's.
    pub ca_bundle: Option<PathBuf>,
    /// A key set or discovery document longer than this is refused while it is read.
    pub max_response_bytes: i64,
    /// Checks reported instead of enforced ("audience", "issuer"); empty: all enforced.
    pub report_only: Vec<String>,
    /// An http(s) proxy for every request (None: `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`).
    pub proxy: Option<String>,
    /// Headers added to every request.
    pub headers: Vec<(String, String)>,
    /// Where revocations are shared: None (this process only), or a `redis://`/`rediss://` URL.
    pub revocations: Option<String>,
    /// Seconds a revocation is kept when `max_lifetime` is not set: the longest lifetime of a
    /// token it must still refuse.
    pub revocation_horizon: i64,
}

impl VerifierConfig {
    /// The defaults for `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        VerifierConfig {
            issuer: issuer.into(),
            jwks_uri: None,
            audience: Vec::new(),
            allowed_azp: None,
            algorithms: None,
            leeway: 60,
            verify_issuer: true,
            required_claims: vec!["exp".into()],
            token_types: Some(vec!["Bearer".into()]),
            max_lifetime: None,
            max_token_bytes: 16384,
            cache_size: 10_000,
            jwks_ttl: 300.0,
            jwks_cooldown: 5.0,
            jwks_max_stale: 86400.0,
            http_timeout: 5.0,
            ca_bundle: None,
            max_response_bytes: http::DEFAULT_MAX_RESPONSE_BYTES as i64,
            report_only: Vec::new(),
            proxy: None,
            headers: Vec::new(),
            revocations: None,
            revocation_horizon: DEFAULT_REVOCATION_HORIZON,
        }
    }

    /// SmartEM's Keycloak variables (`crate::keycloak`): KEYCLOAK_URL (required),
    /// KEYCLOAK_REALM (default "dls"), KEYCLOAK_VERIFY_ISS (default true), KEYCLOAK_ALLOWED_AZP
    /// and KEYCLOAK_AUDIENCE (comma lists), KEYCLOAK_JWKS_URL. `var` looks one variable up.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        crate::keycloak::verifier_config(var)
    }

    pub(super) fn validate(self) -> Result<Checked> {
        let issuer = self.issuer.trim().to_string();
        if issuer.is_empty() {
            return Err(Error::config("issuer", "must not be empty"));
        }
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(Error::config("issuer", "must be an http(s) URL"));
        }
        if let Some(uri) = &self.jwks_uri {
            if !(uri.starts_with("https://") || uri.starts_with("http://")) {
                return Err(Error::config("jwks_uri", "must be an http(s) URL"));
            }
        }
        let algorithms = match &self.algorithms {
            None => ASYMMETRIC_ALGORITHMS.to_vec(),
            Some(names) if names.is_empty() => {
                return Err(Error::config(
                    "algorithms",
                    "must name at least one algorithm",
                ))
            }
            Some(names) => names
                .iter()
                .map(|name| match name.parse::<Algorithm>() {
                    Ok(a) if a.family() != AlgorithmFamily::Hmac => Ok(a),
                    Ok(_) => Err(Error::config(
                        "algorithms",
                        format!("{name} is symmetric; only asymmetric algorithms are allowed"),
                    )),
                    Err(_) => Err(Error::config(
                        "algorithms",
                        format!("unknown algorithm {name:?}"),
                    )),
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let non_negative = |name: &str, v: i64| {
            u64::try_from(v).map_err(|_| Error::config(name, "must not be negative"))
        };
        let seconds = |name: &str, v: f64, min: f64| {
            if v.is_finite() && v >= min {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(Error::config(
                    name,
                    format!("must be a number of seconds >= {min}"),
                ))
            }
        };
        let leeway = non_negative("leeway", self.leeway)?;
        let max_token_bytes = non_negative("max_token_bytes", self.max_token_bytes)?;
        if max_token_bytes == 0 {
            return Err(Error::config(
                "max_token_bytes",
                "must be greater than zero",
            ));
        }
        let max_lifetime = match self.max_lifetime {
            Some(v) if v <= 0 => {
                return Err(Error::config(
                    "max_lifetime",
                    "must be a positive number of seconds, or None",
                ))
            }
            v => v.map(|v| v as u64),
        };
        let cache_size = non_negative("cache_size", self.cache_size)?;
        if self.revocation_horizon <= 0 {
            return Err(Error::config(
                "revocation_horizon",
                "must be a positive number of seconds",
            ));
        }
        // A revoked rule must outlive every token it matches: issued by then, valid for at
        // most the lifetime ceiling (or the horizon), plus the leeway on `exp`.
        let revocation_horizon = max_lifetime
            .unwrap_or(self.revocation_horizon as u64)
            .saturating_add(leeway);
        if self.audience.iter().any(|a| a.is_empty()) {
            return Err(Error::config("audience", "must not contain empty strings"));
        }
        let allowed_azp = self
            .allowed_azp
            .as_deref()
            .map(AzpAllowlist::parse)
            .transpose()?;
        let policy = Policy {
            issuer: issuer.trim_end_matches('/').to_string(),
            verify_issuer: self.verify_issuer,
            audience: self.audience,
            allowed_azp,
            leeway,
            required_claims: self.required_claims,
            token_types: self.token_types,
            max_lifetime,
        };
        Ok(Checked {
            revocations: self.revocations,
            revocation_horizon,
            report_only: ReportOnly::new(&self.report_only, &policy)?,
            policy,
            algorithms,
            max_token_bytes: max_token_bytes as usize,
            cache_size: cache_size as usize,
            jwks_uri: KeySetLocation {
                jwks_uri: self.jwks_uri,
                verify_issuer: self.verify_issuer,
            },
            jwks_policy: JwksPolicy {
                default_ttl: seconds("jwks_ttl", self.jwks_ttl, 1.0)?,
                cooldown: seconds("jwks_cooldown", self.jwks_cooldown, 0.0)?,
                max_stale: seconds("jwks_max_stale", self.jwks_max_stale, 0.0)?,
            },
            http: HttpConfig {
                timeout: seconds("http_timeout", self.http_timeout, 0.001)?,
                ca_bundle: self.ca_bundle,
                max_response_bytes: http::max_response_bytes(self.max_response_bytes)?,
                proxy: self.proxy,
                headers: self.headers,
            },
        })
    }
}

pub(super) struct Checked {
    pub revocations: Option<String>,
    pub revocation_horizon: u64,
    pub policy: Policy,
    pub report_only: Option<ReportOnly>,
    pub algorithms: Vec<Algorithm>,
    pub max_token_bytes: usize,
    pub cache_size: usize,
    pub jwks_uri: KeySetLocation,
    pub jwks_policy: JwksPolicy,
    pub http: HttpConfig,
}
