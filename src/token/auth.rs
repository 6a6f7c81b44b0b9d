//! Client authentication at the token endpoint: the four methods, the JWT assertions of
//! private_key_jwt and client_secret_jwt, and scrubbing the secret out of any text we emit.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::HeaderValue;
use serde_json::json;
use url::form_urlencoded;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::sign::SigningKey;

/// How the client proves its identity to the token endpoint (RFC 6749 2.3, OIDC Core 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// HTTP Basic authentication with the id and secret.
    ClientSecretBasic,
    /// A JWT assertion signed with the client's private key.
    PrivateKeyJwt,
    /// A JWT assertion signed (HS256) with the client secret.
    ClientSecretJwt,
}

impl AuthMethod {
    /// The method's registered name (`token_endpoint_auth_method`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::ClientSecretJwt => "client_secret_jwt",
        }
    }
}

impl FromStr for AuthMethod {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "client_secret_post" => Ok(AuthMethod::ClientSecretPost),
            "client_secret_basic" => Ok(AuthMethod::ClientSecretBasic),
            "private_key_jwt" => Ok(AuthMethod::PrivateKeyJwt),
            "client_secret_jwt" => Ok(AuthMethod::ClientSecretJwt),
            other => Err(Error::config(
                "auth_method",
                format!(
                    "{:?} is not one of client_secret_post, client_secret_basic, \
                     private_key_jwt, client_secret_jwt",
                    other.chars().take(40).collect::<String>()
                ),
            )),
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(super) const CLIENT_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Assertions are single-use proofs; a short life limits what a captured one is worth.
pub(super) const ASSERTION_LIFETIME_SECS: u64 = 60;

pub(crate) enum Credentials {
    SecretPost(Zeroizing<String>),
    SecretBasic(Zeroizing<String>),
    PrivateKeyJwt(SigningKey),
    SecretJwt(Zeroizing<String>),
}

pub(crate) struct ClientAuth {
    client_id: String,
    credentials: Credentials,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClientAuth(client_id={:?}, method={})",
            self.client_id,
            self.method()
        )
    }
}

/// What one token request carries to authenticate: form parameters and maybe a header.
/// Both hold credentials, so both are wiped when dropped.
pub(super) struct AuthParts {
    pub form: Vec<(&'static str, Zeroizing<String>)>,
    pub authorization: Option<HeaderValue>,
}

impl ClientAuth {
    pub(crate) fn new(client_id: String, credentials: Credentials) -> Self {
        ClientAuth {
            client_id,
            credentials,
        }
    }

    pub(super) fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(super) fn method(&self) -> AuthMethod {
        match self.credentials {
            Credentials::SecretPost(_) => AuthMethod::ClientSecretPost,
            Credentials::SecretBasic(_) => AuthMethod::ClientSecretBasic,
            Credentials::PrivateKeyJwt(_) => AuthMethod::PrivateKeyJwt,
            Credentials::SecretJwt(_) => AuthMethod::ClientSecretJwt,
        }
    }

    /// The algorithm of the client assertion, for the JWT methods.
    pub(super) fn assertion_alg(&self) -> Option<&'static str> {
        match &self.credentials {
            Credentials::PrivateKeyJwt(key) => Some(key.alg_name()),
            Credentials::SecretJwt(_) => Some("HS256"),
            _ => None,
        }
    }

    /// The key id the private_key_jwt assertion's header carries.
    pub(super) fn key_id(&self) -> Option<&str> {
        match &self.credentials {
            Credentials::PrivateKeyJwt(key) => Some(key.kid()),
            _ => None,
        }
    }

    /// Fresh authentication for one request to `token_url` (a new assertion every time: the
    /// server refuses a reused jti).
    pub(super) fn parts(&self, token_url: &str) -> Result<AuthParts> {
        let id = || Zeroizing::new(self.client_id.clone());
        let assertion = |jwt: Zeroizing<String>| AuthParts {
            form: vec![
                ("client_id", id()),
                (
                    "client_assertion_type",
                    Zeroizing::new(CLIENT_ASSERTION_TYPE.into()),
                ),
                ("client_assertion", jwt),
            ],
            authorization: None,
        };
        Ok(match &self.credentials {
            Credentials::SecretPost(secret) => AuthParts {
                form: vec![("client_id", id()), ("client_secret", secret.clone())],
                authorization: None,
            },
            Credentials::SecretBasic(secret) => AuthParts {
                form: Vec::new(),
                authorization: Some(basic_header(&self.client_id, secret)),
            },
            Credentials::PrivateKeyJwt(key) => {
                let claims = assertion_claims(&self.client_id, token_url);
                assertion(Zeroizing::new(key.sign(&claims, None)?))
            }
            Credentials::SecretJwt(secret) => {
                let claims = assertion_claims(&self.client_id, token_url);
                let key = EncodingKey::from_secret(secret.as_bytes());
                let mut header = Header::new(Algorithm::HS256);
                header.typ = Some("JWT".into());
                let claims: serde_json::Value =
                    serde_json::from_slice(&claims).expect("assertion claims are JSON");
                let jwt = jsonwebtoken::encode(&header, &claims, &key).map_err(|_| {
                    Error::config("client_secret", "cannot sign the client assertion")
                })?;
                assertion(Zeroizing::new(jwt))
            }
        })
    }

    /// `text` with the client secret cut out, for messages built from what a server sent back
    /// (a misconfigured proxy or IdP may echo the request).
    pub(crate) fn redact(&self, text: &str) -> String {
        let secret = match &self.credentials {
            Credentials::SecretPost(s)
            | Credentials::SecretBasic(s)
            | Credentials::SecretJwt(s) => s,
            Credentials::PrivateKeyJwt(_) => return text.to_string(),
        };
        let mut out = text.to_string();
        let encoded: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let needles = [secret.as_str(), encoded.as_str()];
        let leaks = |s: &str| needles.iter().any(|n| n.len() >= 4 && s.contains(n));
        for needle in needles {
            if needle.len() >= 4 && out.contains(needle) {
                out = out.replace(needle, REDACTED);
            }
        }
        // The marker and the text beside it can spell the secret again: a secret that is a
        // part of "[redacted]", or begins or ends like it ("[red", "ted]x" in "ted]xx"; found
        // by fuzz/redact). Then no part of the text is kept.
        if leaks(&out) {
            out = if leaks(REDACTED) {
                String::new()
            } else {
                REDACTED.to_string()
            };
        }
        out
    }
}

/// What a secret is replaced with in a text.
const REDACTED: &str = "[redacted]";

/// RFC 6749 2.3.1: id and secret are form-urlencoded before they are joined and base64-encoded.
fn basic_header(client_id: &str, secret: &str) -> HeaderValue {
    let mut pair = Zeroizing::new(String::new());
    pair.extend(form_urlencoded::byte_serialize(client_id.as_bytes()));
    pair.push(':');
    pair.extend(form_urlencoded::byte_serialize(secret.as_bytes()));
    let value = Zeroizing::new(format!("Basic {}", STANDARD.encode(pair.as_bytes())));
    let mut header =
        HeaderValue::from_str(&value).expect("base64 and ASCII are valid header characters");
    // Keeps the credential out of reqwest's and hyper's Debug output.
    header.set_sensitive(true);
    header
}

fn assertion_claims(client_id: &str, token_url: &str) -> Vec<u8> {
    let now = crate::clock::unix_seconds();
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "jti": random_id(),
        "iat": now,
        "exp": now + ASSERTION_LIFETIME_SECS,
    });
    serde_json::to_vec(&claims).expect("a JSON value always serialises")
}

/// 128 random bits, base64url.
pub(super) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn decode(segment: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    fn form(parts: &AuthParts, name: &str) -> Option<String> {
        parts
            .form
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }

    #[test]
    fn secret_post_and_basic() {
        let post = ClientAuth::new(
            "agent".into(),
            Credentials::SecretPost(Zeroizing::new("s".into())),
        );
        let parts = post.parts("http://idp/token").unwrap();
        assert_eq!(form(&parts, "client_id").as_deref(), Some("agent"));
        assert_eq!(form(&parts, "client_secret").as_deref(), Some("s"));
        assert!(parts.authorization.is_none());

        let basic = ClientAuth::new(
            "my agent".into(),
            Credentials::SecretBasic(Zeroizing::new("p:ss&=".into())),
        );
        let parts = basic.parts("http://idp/token").unwrap();
        assert!(parts.form.is_empty());
        let header = parts.authorization.unwrap();
        assert!(header.is_sensitive());
        let raw = header
            .to_str()
            .unwrap()
            .strip_prefix("Basic ")
            .unwrap()
            .to_string();
        let pair = String::from_utf8(STANDARD.decode(raw).unwrap()).unwrap();
        assert_eq!(pair, "my+agent:p%3Ass%26%3D");
    }

    #[test]
    fn private_key_jwt_assertion() {
        let key = SigningKey::generate("ES256", Some("k1".into())).unwrap();
        let auth = ClientAuth::new("agent".into(), Credentials::PrivateKeyJwt(key));
        let a = auth.parts("http://idp/token").unwrap();
        let b = auth.parts("http://idp/token").unwrap();
        assert_eq!(
            form(&a, "client_assertion_type").as_deref(),
            Some(CLIENT_ASSERTION_TYPE)
        );
        let jwt = form(&a, "client_assertion").unwrap();
        let segments: Vec<&str> = jwt.split('.').collect();
        let header = decode(segments[0]);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "k1");
        let claims = decode(segments[1]);
        assert_eq!(claims["iss"], "agent");
        assert_eq!(claims["sub"], "agent");
        assert_eq!(claims["aud"], "http://idp/token");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            ASSERTION_LIFETIME_SECS
        );
        let other = decode(
            form(&b, "client_assertion")
                .unwrap()
                .split('.')
                .nth(1)
                .unwrap(),
        );
        assert_ne!(
            claims["jti"], other["jti"],
            "every assertion has a fresh jti"
        );
    }

    #[test]
    fn client_secret_jwt_is_hs256_over_the_secret() {
        let auth = ClientAuth::new(
            "agent".into(),
            Credentials::SecretJwt(Zeroizing::new("sekrit".into())),
        );
        let jwt = form(&auth.parts("http://idp/token").unwrap(), "client_assertion").unwrap();
        let (input, signature) = jwt.rsplit_once('.').unwrap();
        assert_eq!(decode(input.split('.').next().unwrap())["alg"], "HS256");
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"sekrit");
        let expected = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.decode(signature).unwrap(),
            expected.as_ref()
        );
    }

    #[test]
    fn redacts_the_secret_and_hides_it_from_debug() {
        let auth = ClientAuth::new(
            "agent".into(),
            Credentials::SecretPost(Zeroizing::new("a b&c".into())),
        );
        assert_eq!(
            auth.redact("echo: a b&c / a+b%26c"),
            "echo: [redacted] / [redacted]"
        );
        assert!(!format!("{auth:?}").contains("a b&c"));
    }

    /// Found by fuzz/redact: the marker, or the marker and its neighbours, spelled the secret.
    #[test]
    fn the_marker_never_spells_the_secret() {
        for (secret, text) in [
            ("[red", "ab[red"),
            ("ted]x", "ted]xx"),
            ("dact", "a dact b"),
            ("[redacted]", "[redacted]"),
        ] {
            let auth = ClientAuth::new(
                "agent".into(),
                Credentials::SecretPost(Zeroizing::new(secret.into())),
            );
            let out = auth.redact(text);
            assert!(!out.contains(secret), "{secret:?} in {out:?}");
        }
    }
}
