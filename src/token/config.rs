//! Token client settings: defaults, validation (errors name the setting), and the environment.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::http::{self, HttpConfig};
use crate::sign::SigningKey;

use super::auth::{AuthMethod, ClientAuth, Credentials};
use super::shared::{self, SealKey, SharedSettings};

/// Mirrors the keyword arguments of the Python `TokenClient`.
#[derive(Clone)]
pub struct TokenClientConfig {
    /// The token endpoint; else found through `issuer`'s discovery document.
    pub token_url: Option<String>,
    /// The issuer whose discovery document names the token endpoint.
    pub issuer: Option<String>,
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret, for the client_secret_* methods.
    pub client_secret: Option<Zeroizing<String>>,
    /// A PEM private key, for private_key_jwt.
    pub private_key: Option<Zeroizing<String>>,
    /// The private_key_jwt assertion's `kid`; by default the key's JWK thumbprint.
    pub key_id: Option<String>,
    /// The assertion's algorithm; by default the natural one of the key (RS256, ES256, ES384,
    /// EdDSA).
    pub signing_alg: Option<String>,
    /// None: private_key_jwt when a private key is given, else client_secret_post.
    pub auth_method: Option<AuthMethod>,
    /// The `scope` parameter, space-separated.
    pub scope: Option<String>,
    /// The `audience` parameter.
    pub audience: Option<String>,
    /// Seconds before expiry from which a cached token is no longer handed out.
    pub refresh_margin: f64,
    /// Seconds allowed for one request.
    pub timeout: f64,
    /// Extra CA certificates (PEM) trusted beside the system's.
    pub ca_bundle: Option<PathBuf>,
    /// A token response or discovery document longer than this is refused while it is read.
    pub max_response_bytes: i64,
    /// An http(s) proxy for every request (None: `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`).
    pub proxy: Option<String>,
    /// Headers added to every request.
    pub headers: Vec<(String, String)>,
    /// A redis:// or rediss:// URL: the token is shared by every process using it.
    pub shared_cache: Option<String>,
    /// The shared cache's key (32 bytes, base64); None: `TOKENWARD_SHARED_CACHE_KEY`.
    pub shared_cache_key: Option<Zeroizing<String>>,
    /// How many exchanged tokens (`exchange`) are kept; the least recently used go first.
    pub exchange_cache_size: i64,
}

impl fmt::Debug for TokenClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let given = |o: bool| if o { "<set>" } else { "None" };
        f.debug_struct("TokenClientConfig")
            .field("token_url", &self.token_url)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &given(self.client_secret.is_some()))
            .field("private_key", &given(self.private_key.is_some()))
            .field("key_id", &self.key_id)
            .field("signing_alg", &self.signing_alg)
            .field("auth_method", &self.auth_method)
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .field("refresh_margin", &self.refresh_margin)
            .field("timeout", &self.timeout)
            .field("ca_bundle", &self.ca_bundle)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("exchange_cache_size", &self.exchange_cache_size)
            .field("proxy", &self.proxy.as_ref().map(|_| "<set>"))
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            // A Redis URL may carry a password.
            .field("shared_cache", &given(self.shared_cache.is_some()))
            .field("shared_cache_key", &given(self.shared_cache_key.is_some()))
            .finish()
    }
}

impl TokenClientConfig {
    /// The defaults for `client_id`; a token URL (or issuer) and a credential must be added.
    pub fn new(client_id: impl Into<String>) -> Self {
        TokenClientConfig {
            token_url: None,
            issuer: None,
            client_id: client_id.into(),
            client_secret: None,
            private_key: None,
            key_id: None,
            signing_alg: None,
            auth_method: None,
            scope: None,
            audience: None,
            refresh_margin: 30.0,
            timeout: 10.0,
            ca_bundle: None,
            max_response_bytes: http::DEFAULT_MAX_RESPONSE_BYTES as i64,
            proxy: None,
            headers: Vec::new(),
            shared_cache: None,
            shared_cache_key: None,
            exchange_cache_size: super::EXCHANGE_CACHE_SIZE as i64,
        }
    }

    /// SmartEM's agent variables (`crate::keycloak`): KEYCLOAK_URL (required), KEYCLOAK_REALM
    /// (default "dls"), AGENT_CLIENT_ID or KEYCLOAK_CLIENT_ID, AGENT_CLIENT_SECRET or
    /// KEYCLOAK_CLIENT_SECRET, and AGENT_PRIVATE_KEY_FILE (a PEM; selects private_key_jwt).
    /// `require_credentials: false` skips the secret check, for callers that pass the
    /// credential themselves. `TOKENWARD_SHARED_CACHE` (a Redis URL) sets `shared_cache`.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        require_credentials: bool,
    ) -> Result<Self> {
        let mut config = crate::keycloak::token_client_config(&var, require_credentials)?;
        config.shared_cache = var(shared::URL_VAR).filter(|v| !v.trim().is_empty());
        Ok(config)
    }

    pub(super) fn validate(self) -> Result<Checked> {
        let client_id = self.client_id.trim().to_string();
        if client_id.is_empty() {
            return Err(Error::config("client_id", "must not be empty"));
        }
        let url = |setting: &str, value: Option<String>| -> Result<Option<String>> {
            match value.map(|v| v.trim().to_string()) {
                None => Ok(None),
                Some(v) if v.starts_with("https://") || v.starts_with("http://") => {
                    Ok(Some(v.trim_end_matches('/').to_string()))
                }
                Some(_) => Err(Error::config(setting, "must be an http(s) URL")),
            }
        };
        let token_url = url("token_url", self.token_url)?;
        let issuer = url("issuer", self.issuer)?;
        if token_url.is_none() && issuer.is_none() {
            return Err(Error::config("token_url", "give token_url or issuer"));
        }
        let seconds = |name: &str, v: f64, positive: bool| {
            if v.is_finite() && (v > 0.0 || (!positive && v == 0.0)) && v < 1e9 {
                Ok(Duration::from_secs_f64(v))
            } else if positive {
                Err(Error::config(name, "must be a number of seconds > 0"))
            } else {
                Err(Error::config(name, "must be a number of seconds >= 0"))
            }
        };
        let refresh_margin = seconds("refresh_margin", self.refresh_margin, false)?;
        let timeout = seconds("timeout", self.timeout, true)?;
        let method = self.auth_method.unwrap_or(if self.private_key.is_some() {
            AuthMethod::PrivateKeyJwt
        } else {
            AuthMethod::ClientSecretPost
        });
        if self.private_key.is_some() && method != AuthMethod::PrivateKeyJwt {
            return Err(Error::config(
                "private_key",
                format!("is only used by private_key_jwt, not {method}"),
            ));
        }
        let secret = || {
            self.client_secret
                .clone()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::config("client_secret", format!("is required by {method}")))
        };
        let credentials = match method {
            AuthMethod::ClientSecretPost => Credentials::SecretPost(secret()?),
            AuthMethod::ClientSecretBasic => Credentials::SecretBasic(secret()?),
            AuthMethod::ClientSecretJwt => Credentials::SecretJwt(secret()?),
            AuthMethod::PrivateKeyJwt => {
                let pem = self.private_key.as_ref().ok_or_else(|| {
                    Error::config("private_key", "is required by private_key_jwt")
                })?;
                Credentials::PrivateKeyJwt(load_key(
                    pem,
                    self.signing_alg.as_deref(),
                    self.key_id.clone(),
                )?)
            }
        };
        let exchange_cache_size = usize::try_from(self.exchange_cache_size)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                Error::config("exchange_cache_size", "must be a number of tokens > 0")
            })?;
        let nonempty =
            |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let shared = match nonempty(self.shared_cache) {
            None => None,
            Some(url) => Some(shared_settings(&url, self.shared_cache_key)?),
        };
        Ok(Checked {
            token_url,
            issuer,
            auth: ClientAuth::new(client_id, credentials),
            scope: nonempty(self.scope),
            audience: nonempty(self.audience),
            refresh_margin,
            exchange_cache_size,
            http: HttpConfig {
                timeout,
                ca_bundle: self.ca_bundle,
                max_response_bytes: http::max_response_bytes(self.max_response_bytes)?,
                proxy: self.proxy,
                headers: self.headers,
            },
            shared,
        })
    }
}

/// The Redis client and sealing key of `shared_cache`. Errors name the setting and never
/// repeat the URL (it may carry a password) or the key.
fn shared_settings(url: &str, key: Option<Zeroizing<String>>) -> Result<SharedSettings> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(Error::config(
            "shared_cache",
            "must be a redis:// or rediss:// URL",
        ));
    }
    let client = redis::Client::open(url)
        .map_err(|_| Error::config("shared_cache", "is not a valid Redis URL"))?;
    let key = key
        .or_else(|| std::env::var(shared::KEY_VAR).ok().map(Zeroizing::new))
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| {
            Error::config(
                shared::KEY_VAR,
                "is not set: shared_cache needs a key to encrypt the token it stores (32 bytes, \
                 base64: `openssl rand -base64 32`)",
            )
        })?;
    let key = SealKey::from_base64(&key).ok_or_else(|| {
        Error::config(
            shared::KEY_VAR,
            "must be 32 bytes in base64 (`openssl rand -base64 32`)",
        )
    })?;
    Ok(SharedSettings { client, key })
}

/// Assertion algorithms tried, in order, when none is named: the natural one of each key type.
const NATURAL_ALGORITHMS: [&str; 4] = ["RS256", "ES256", "ES384", "EdDSA"];

fn load_key(pem: &str, alg: Option<&str>, kid: Option<String>) -> Result<SigningKey> {
    if pem.trim_start().starts_with('{') {
        return SigningKey::from_jwk(pem, alg, kid);
    }
    if let Some(alg) = alg {
        return SigningKey::from_pem(pem, alg, kid).map_err(|e| match e {
            Error::Config { setting, message } if setting == "alg" => {
                Error::config("signing_alg", message)
            }
            other => other,
        });
    }
    NATURAL_ALGORITHMS
        .iter()
        .find_map(|alg| SigningKey::from_pem(pem, alg, kid.clone()).ok())
        .ok_or_else(|| {
            Error::config(
                "private_key",
                "not a PEM private key (RSA, EC P-256/P-384 or Ed25519, PKCS#8 or PKCS#1)",
            )
        })
}

/// Validated settings.
pub(super) struct Checked {
    pub token_url: Option<String>,
    pub issuer: Option<String>,
    pub auth: ClientAuth,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub refresh_margin: Duration,
    pub exchange_cache_size: usize,
    pub http: HttpConfig,
    pub shared: Option<SharedSettings>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(e: Error) -> String {
        match e {
            Error::Config { setting, .. } => setting,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn validation_names_the_setting() {
        let base = || {
            let mut c = TokenClientConfig::new("agent");
            c.token_url = Some("http://idp/token".into());
            c.client_secret = Some(Zeroizing::new("s".into()));
            c
        };
        assert!(base().validate().is_ok());
        let mut c = base();
        c.token_url = None;
        assert_eq!(setting(c.validate().err().unwrap()), "token_url");
        for size in [0, -1] {
            let mut c = base();
            c.exchange_cache_size = size;
            assert_eq!(setting(c.validate().err().unwrap()), "exchange_cache_size");
        }
        let mut c = base();
        c.client_secret = None;
        assert_eq!(setting(c.validate().err().unwrap()), "client_secret");
        let mut c = base();
        c.timeout = 0.0;
        assert_eq!(setting(c.validate().err().unwrap()), "timeout");
        let mut c = base();
        c.refresh_margin = -1.0;
        assert_eq!(setting(c.validate().err().unwrap()), "refresh_margin");
        for bad in [0, -1] {
            let mut c = base();
            c.max_response_bytes = bad;
            assert_eq!(setting(c.validate().err().unwrap()), "max_response_bytes");
        }
        let mut c = base();
        c.auth_method = Some(AuthMethod::PrivateKeyJwt);
        assert_eq!(setting(c.validate().err().unwrap()), "private_key");
        let mut c = base();
        c.private_key = Some(Zeroizing::new("-----BEGIN PRIVATE KEY-----".into()));
        assert_eq!(setting(c.validate().err().unwrap()), "private_key");
        assert_eq!(
            setting("nope".parse::<AuthMethod>().unwrap_err()),
            "auth_method"
        );
    }

    #[test]
    fn a_private_key_selects_private_key_jwt_and_its_natural_alg() {
        for (alg, expected) in [
            ("RS256", "RS256"),
            ("PS256", "RS256"),
            ("ES256", "ES256"),
            ("EdDSA", "EdDSA"),
        ] {
            let key = SigningKey::generate(alg, None).unwrap();
            let mut c = TokenClientConfig::new("agent");
            c.token_url = Some("http://idp/token".into());
            c.private_key = Some(Zeroizing::new(key.private_pem().to_string()));
            let checked = c.validate().unwrap();
            assert_eq!(checked.auth.method(), AuthMethod::PrivateKeyJwt);
            assert_eq!(checked.auth.assertion_alg(), Some(expected));
        }
        let key = SigningKey::generate("RS256", None).unwrap();
        let mut c = TokenClientConfig::new("agent");
        c.token_url = Some("http://idp/token".into());
        c.private_key = Some(Zeroizing::new(key.private_pem().to_string()));
        c.signing_alg = Some("PS256".into());
        assert_eq!(
            c.clone().validate().unwrap().auth.assertion_alg(),
            Some("PS256")
        );
        c.signing_alg = Some("HS256".into());
        assert_eq!(setting(c.validate().err().unwrap()), "signing_alg");
    }

    #[test]
    fn shared_cache_needs_a_redis_url_and_a_32_byte_key() {
        let base = |url: &str, key: Option<&str>| {
            let mut c = TokenClientConfig::new("agent");
            c.token_url = Some("http://idp/token".into());
            c.client_secret = Some(Zeroizing::new("s".into()));
            c.shared_cache = Some(url.into());
            c.shared_cache_key = key.map(|k| Zeroizing::new(k.into()));
            c
        };
        let key = "a2V5LWZvci10aGUtYmVuY2gtb25seS0zMi1ieXRlcyE=";
        assert!(base("redis://127.0.0.1:6379/0", Some(key))
            .validate()
            .is_ok());
        assert!(base("rediss://:pw@cache.example:6380", Some(key))
            .validate()
            .is_ok());
        let e = base("http://127.0.0.1", Some(key))
            .validate()
            .err()
            .unwrap();
        assert_eq!(setting(e), "shared_cache");
        let e = base("redis://:hunter2@[::1", Some(key))
            .validate()
            .err()
            .unwrap();
        assert!(!e.to_string().contains("hunter2"));
        assert_eq!(setting(e), "shared_cache");
        let e = base("redis://127.0.0.1", Some("c2hvcnQ="))
            .validate()
            .err()
            .unwrap();
        assert!(!e.to_string().contains("c2hvcnQ="));
        assert_eq!(setting(e), "TOKENWARD_SHARED_CACHE_KEY");
        let mut c = base("redis://127.0.0.1", Some(key));
        c.shared_cache = Some("  ".into());
        assert!(
            c.validate().unwrap().shared.is_none(),
            "blank is no shared cache"
        );
    }

    #[test]
    fn debug_never_shows_credentials() {
        let mut c = TokenClientConfig::new("agent");
        c.client_secret = Some(Zeroizing::new("hunter2-secret".into()));
        c.private_key = Some(Zeroizing::new("PEM-MATERIAL".into()));
        c.shared_cache = Some("redis://:redis-password@cache:6379".into());
        let text = format!("{c:?}");
        assert!(!text.contains("hunter2") && !text.contains("PEM-MATERIAL"));
        assert!(!text.contains("redis-password"));
    }
}
