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

    /// `text` with the client secret cut out, for messages not built from a request's answer
    /// (a transport error names the URL, never the body we sent).
    pub(crate) fn redact(&self, text: &str) -> String {
        self.redactor(None, None).redact(text)
    }

    /// What to cut out of anything built from the answer to the request that carried `parts`:
    /// the secret (as typed, form-encoded and percent-encoded), the Basic credentials, and that
    /// request's client assertion with its signature on its own (a client_secret_jwt signature
    /// is an HMAC of the secret: enough to guess it offline), and `also` (a token exchange's
    /// subject token).
    pub(super) fn redactor(&self, parts: Option<&AuthParts>, also: Option<&str>) -> Redactor {
        let mut needles: Vec<Zeroizing<String>> = Vec::new();
        needles.extend(also.map(|text| Zeroizing::new(text.to_owned())));
        match &self.credentials {
            Credentials::SecretPost(s)
            | Credentials::SecretBasic(s)
            | Credentials::SecretJwt(s) => {
                needles.push(s.clone());
                needles.push(Zeroizing::new(
                    form_urlencoded::byte_serialize(s.as_bytes()).collect(),
                ));
                needles.push(Zeroizing::new(
                    form_urlencoded::byte_serialize(s.as_bytes())
                        .collect::<String>()
                        .replace('+', "%20"),
                ));
            }
            Credentials::PrivateKeyJwt(_) => {}
        }
        if let Some(parts) = parts {
            for (name, value) in &parts.form {
                if *name == "client_assertion" {
                    needles.push(value.clone());
                    if let Some((_, signature)) = value.rsplit_once('.') {
                        needles.push(Zeroizing::new(signature.to_string()));
                    }
                }
            }
            if let Some(header) = &parts.authorization {
                let value = header.to_str().unwrap_or_default();
                if let Some(credentials) = value.strip_prefix("Basic ") {
                    needles.push(Zeroizing::new(credentials.to_string()));
                }
            }
        }
        needles.retain(|n| !n.is_empty());
        Redactor::new(needles)
    }
}

/// Cuts credentials out of text a server sent back (a misconfigured proxy or IdP may echo the
/// request). Built per request, since each assertion is new; wiped on drop.
///
/// Not only whole credentials: any run of [`WINDOW`] bytes that occurs in one is cut, so a
/// credential the server itself truncated, or that a cut of ours would have split, leaves at
/// most `WINDOW - 1` bytes of it behind. Credentials shorter than a window are cut whole.
pub(crate) struct Redactor {
    /// Every `WINDOW`-byte run of the longer credentials, as integers, sorted.
    windows: Zeroizing<Vec<u64>>,
    /// The credentials shorter than a window.
    short: Vec<Zeroizing<String>>,
}

/// How many bytes of a credential in a row are enough to cut.
pub(super) const WINDOW: usize = 8;
/// What a redacted run becomes.
const MASK: &str = "[redacted]";
/// The whole text, when masking alone cannot make it safe (a credential spelled with the mask).
const WITHHELD: &str = "(text withheld: it repeated a credential)";

fn window_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; WINDOW];
    word.copy_from_slice(&bytes[at..at + WINDOW]);
    u64::from_le_bytes(word)
}

impl Redactor {
    fn new(needles: Vec<Zeroizing<String>>) -> Self {
        let mut windows = Zeroizing::new(Vec::new());
        let mut short = Vec::new();
        // A credential with control characters in it is also looked for without them, as
        // `field` drops them from the text.
        let stripped: Vec<Zeroizing<String>> = needles
            .iter()
            .filter(|n| n.chars().any(char::is_control))
            .map(|n| Zeroizing::new(n.chars().filter(|c| !c.is_control()).collect()))
            .filter(|n: &Zeroizing<String>| !n.is_empty())
            .collect();
        for needle in needles.into_iter().chain(stripped) {
            let bytes = needle.as_bytes();
            if bytes.len() < WINDOW {
                short.push(needle);
            } else {
                windows.extend((0..=bytes.len() - WINDOW).map(|at| window_at(bytes, at)));
            }
        }
        windows.sort_unstable();
        windows.dedup();
        Redactor { windows, short }
    }

    /// Redacts nothing: for answers that were never given a credential (tests).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn none() -> Self {
        Redactor::new(Vec::new())
    }

    /// One pass: every byte of `text` that lies in a credential's run, or None if there is none.
    fn hits(&self, text: &str) -> Option<Vec<bool>> {
        let bytes = text.as_bytes();
        let mut hit = vec![false; bytes.len()];
        let mut any = false;
        for needle in &self.short {
            for (at, _) in text.match_indices(needle.as_str()) {
                hit[at..at + needle.len()].fill(true);
                any = true;
            }
        }
        if !self.windows.is_empty() && bytes.len() >= WINDOW {
            for at in 0..=bytes.len() - WINDOW {
                if self.windows.binary_search(&window_at(bytes, at)).is_ok() {
                    hit[at..at + WINDOW].fill(true);
                    any = true;
                }
            }
        }
        any.then_some(hit)
    }

    /// `text` with each run of hit characters replaced by the mask.
    fn masked(text: &str, hit: &[bool]) -> String {
        let mut out = String::with_capacity(text.len());
        let mut in_run = false;
        for (at, c) in text.char_indices() {
            if hit[at..at + c.len_utf8()].iter().any(|h| *h) {
                if !in_run {
                    out.push_str(MASK);
                }
                in_run = true;
            } else {
                out.push(c);
                in_run = false;
            }
        }
        out
    }

    /// `text` without any credential. Masking can join text around a mask into a credential's
    /// run again (a secret with "d]" in it), so it repeats until nothing is found, and gives up
    /// on the text altogether if that does not settle.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for _ in 0..3 {
            match self.hits(&out) {
                None => return out,
                Some(hit) => out = Self::masked(&out, &hit),
            }
        }
        if self.hits(&out).is_none() {
            out
        } else if self.hits(WITHHELD).is_none() {
            WITHHELD.to_string()
        } else {
            String::new()
        }
    }

    /// A field of the server's answer, fit to repeat: control characters dropped (so none can
    /// split a credential apart), then credentials cut out (before any truncation, so no part
    /// of one survives a cut), then at most `max` characters.
    pub(super) fn field(&self, text: &str, max: usize) -> String {
        let clean: String = text.chars().filter(|c| !c.is_control()).collect();
        self.redact(&clean).chars().take(max).collect()
    }
}

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
            auth.redact("echo: a b&c / a+b%26c / a%20b%26c"),
            "echo: [redacted] / [redacted] / [redacted]"
        );
        assert!(!format!("{auth:?}").contains("a b&c"));
    }

    #[test]
    fn redacts_the_assertion_and_the_basic_credentials_of_the_request() {
        let jwt = ClientAuth::new(
            "agent".into(),
            Credentials::SecretJwt(Zeroizing::new("sekrit-value".into())),
        );
        let parts = jwt.parts("http://idp/token").unwrap();
        let assertion = form(&parts, "client_assertion").unwrap();
        let signature = assertion.rsplit_once('.').unwrap().1.to_string();
        let redactor = jwt.redactor(Some(&parts), None);
        let text = redactor.redact(&format!("got {assertion}; sig {signature}; sekrit-value"));
        assert_eq!(text, "got [redacted]; sig [redacted]; [redacted]");

        let basic = ClientAuth::new(
            "agent".into(),
            Credentials::SecretBasic(Zeroizing::new("pw-1234".into())),
        );
        let parts = basic.parts("http://idp/token").unwrap();
        let header = parts.authorization.clone().unwrap();
        let echoed = header.to_str().unwrap().to_string();
        let text = basic
            .redactor(Some(&parts), None)
            .redact(&format!("you sent {echoed}"));
        assert_eq!(text, "you sent Basic [redacted]");
    }

    #[test]
    fn redaction_comes_before_truncation_and_survives_control_characters() {
        let auth = ClientAuth::new(
            "agent".into(),
            Credentials::SecretPost(Zeroizing::new("0123456789abcdef".into())),
        );
        let r = auth.redactor(None, None);
        // The secret straddles the cut at 20 characters: not even its first half stays.
        let text = r.field(&"x".repeat(12), 20);
        assert_eq!(text, "x".repeat(12));
        let straddling = format!("{}0123456789abcdef tail", "x".repeat(12));
        let cut = r.field(&straddling, 20);
        assert!(!cut.contains("01234567"), "{cut}");
        assert!(cut.starts_with("xxxxxxxxxxxx[redact"));
        // Control characters inside the echo do not hide it.
        assert_eq!(r.field("0123456789\nabc\u{7}def", 200), "[redacted]");
    }

    #[test]
    fn a_piece_of_a_credential_is_cut_too() {
        let auth = ClientAuth::new(
            "agent".into(),
            Credentials::SecretPost(Zeroizing::new("ünïcode-0123456789-secret".into())),
        );
        let r = auth.redactor(None, None);
        // The server cut the echo itself: 8 bytes in a row are enough to be cut.
        assert_eq!(r.redact("echo: 3456789-sec!"), "echo: [redacted]!");
        assert_eq!(r.redact("echo: ünïcode-"), "echo: [redacted]");
        // Fewer than 8 bytes of it in a row is just text.
        assert_eq!(r.redact("ode-012 and 4567"), "ode-012 and 4567");
    }

    #[test]
    fn a_secret_the_mask_helps_to_spell_is_still_never_shown() {
        for secret in ["dact", "d]tail", "[redacted]x", "e", "xd"] {
            let auth = ClientAuth::new(
                "agent".into(),
                Credentials::SecretPost(Zeroizing::new(secret.into())),
            );
            let r = auth.redactor(None, None);
            for text in [
                secret.to_string(),
                format!("{secret}tail"),
                format!("a{secret}{secret}b [redacted] d]tail"),
            ] {
                let out = r.field(&text, 200);
                assert!(!out.contains(secret), "{secret:?} in {out:?}");
            }
        }
    }
}
