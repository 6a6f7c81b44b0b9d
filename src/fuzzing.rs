//! The entry points of the fuzz targets in `fuzz/` (cargo feature `fuzzing`), and nothing else:
//! not part of the API, hidden from the docs, absent from a normal build.
//!
//! Each entry point takes the fuzzer's bytes, calls one internal function and asserts the
//! target's property; a failed assertion is a panic, which libFuzzer reports as a crash. Every
//! target also holds the property that matters at the Python boundary: no input panics (a Rust
//! panic must never reach Python as a crash), and none takes unbounded time or memory (the
//! Makefile runs libFuzzer with `-timeout` and `-rss_limit_mb`).
//!
//! The input formats are plain enough for hand-made seeds (`fuzz/corpus/<target>/`):
//!
//! | entry point      | internal function                  | input                             |
//! |------------------|------------------------------------|-----------------------------------|
//! | [`jws`]          | `verify::jws::split`, `decode_payload`, `VerifyingKey::verify` | a compact JWS |
//! | [`jwks`]         | `jwks::parse_jwks`                 | a JWK set document                |
//! | [`policy`]       | `verify::policy::Policy::check`    | a claims object (JSON)            |
//! | [`token_response`] | `token::endpoint::classify`      | `STATUS\n` (3 digits), then the body; without it, 200 |
//! | [`redact`]       | `token::auth::ClientAuth::redact`  | the secret, `\n`, then the text   |
//!
//! When redaction changes (for example to cover the client assertion too), only [`redact`] and
//! [`Redaction`] here follow it.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use url::form_urlencoded;
use zeroize::Zeroizing;

use crate::jwks::{parse_jwks, KeySet};
use crate::token::auth::{ClientAuth, Credentials, Redactor};
use crate::token::endpoint::classify;
use crate::verify::azp::AzpAllowlist;
use crate::verify::jws;
use crate::verify::policy::Policy;
use crate::verify::ASYMMETRIC_ALGORITHMS;
use crate::SigningKey;

/// The longest error text a target accepts: error texts end up in logs and in
/// `InvalidToken.detail`, so none may repeat an unbounded part of the input.
const MAX_ERROR_TEXT: usize = 400;

fn error_text_is_bounded(e: &crate::Error) {
    let text = e.to_string();
    assert!(
        text.chars().count() <= MAX_ERROR_TEXT,
        "an error text of {} characters",
        text.chars().count()
    );
}

/// One key of each family, made once per process: the JWS target checks signatures with them.
fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let keys: Vec<Value> = [("RS256", "rsa"), ("ES256", "ec"), ("EdDSA", "ed")]
            .into_iter()
            .map(|(alg, kid)| {
                let key = SigningKey::generate(alg, Some(kid.into())).expect("key generation");
                key.public_jwk().clone()
            })
            .collect();
        let doc = serde_json::to_vec(&serde_json::json!({ "keys": keys })).expect("JSON");
        parse_jwks(&doc).expect("our own key set parses")
    })
}

/// The JWS splitter and header check, the payload parser, and the signature check under the
/// token's `kid`. Property: no panic; a token that splits has the shape the verifier relies on;
/// error texts are bounded.
pub fn jws(data: &[u8]) {
    // The verifier is handed a `str` (Python passes one); other bytes never reach it.
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    for allowed in [ASYMMETRIC_ALGORITHMS, &[Algorithm::RS256]] {
        let parts = match jws::split(token, allowed) {
            Ok(parts) => parts,
            Err(e) => {
                error_text_is_bounded(&e);
                continue;
            }
        };
        assert!(allowed.contains(&parts.header.alg));
        assert!(!parts.payload.is_empty() && !parts.signature.is_empty());
        assert_eq!(
            format!("{}.{}", parts.signing_input, parts.signature),
            token,
            "the signing input and the signature make up the whole token"
        );
        assert!(parts.signing_input.ends_with(parts.payload));
        if let Err(e) = jws::decode_payload(parts.payload) {
            error_text_is_bounded(&e);
        }
        if let Some(key) = keys().get(parts.header.kid.as_deref()) {
            // Fresh keys, so nothing the fuzzer makes can carry a valid signature.
            let verified = key.verify(
                parts.header.alg,
                parts.signing_input.as_bytes(),
                parts.signature,
            );
            assert!(
                !verified,
                "a signature made without the private key verified"
            );
        }
    }
}

/// The JWK set parser. Property: no panic; every key it keeps takes the algorithm it names.
pub fn jwks(data: &[u8]) {
    if let Ok(set) = parse_jwks(data) {
        for (kid, key) in &set.keys {
            assert_eq!(kid, &key.kid);
            if let Some(alg) = key.alg {
                assert!(
                    key.kind.accepts(alg),
                    "{key:?} kept with an alg it cannot take"
                );
            }
        }
    }
}

/// The policies the claims target checks every input against: the defaults with SmartEM's
/// settings, everything optional switched off, and a strict one with no leeway.
fn policies() -> &'static [Policy] {
    static POLICIES: OnceLock<Vec<Policy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let strings = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let azp = |names: &[&str]| AzpAllowlist::parse(&strings(names)).expect("valid patterns");
        vec![
            Policy {
                issuer: "https://auth.example.org/realms/dls".into(),
                verify_issuer: true,
                audience: Vec::new(),
                allowed_azp: Some(azp(&["SmartEM_User", "smartem-agent", "SmartEM_Agent_*"])),
                leeway: 60,
                required_claims: strings(&["exp"]),
                token_types: Some(strings(&["Bearer"])),
                max_lifetime: None,
            },
            Policy {
                issuer: "https://auth.example.org/realms/dls".into(),
                verify_issuer: false,
                audience: Vec::new(),
                allowed_azp: None,
                leeway: 0,
                required_claims: Vec::new(),
                token_types: None,
                max_lifetime: None,
            },
            Policy {
                issuer: "http://127.0.0.1:8080/realms/test".into(),
                verify_issuer: true,
                audience: strings(&["api", "account"]),
                allowed_azp: Some(azp(&["svc"])),
                leeway: 0,
                required_claims: strings(&["exp", "sub", "iat"]),
                token_types: Some(strings(&["Bearer", "DPoP"])),
                max_lifetime: Some(300),
            },
        ]
    })
}

/// Times the claims target checks at: the epoch, a realistic now, and far beyond any `exp`.
const NOWS: [u64; 3] = [0, 1_750_000_000, u64::MAX];

/// A claim as an exact integer, when it is one (the policy reads numbers as f64).
fn integer(claims: &Map<String, Value>, name: &str) -> Option<i128> {
    let value = claims.get(name)?;
    value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from))
}

/// The claims policy over arbitrary JSON, read by the verifier's own parser (which refuses
/// duplicate members). Property: no panic, and a token that passes satisfies every rule of
/// docs/architecture.md, "Verification policy", checked here independently of `Policy::check`
/// (with exact integer arithmetic where the times are integers).
pub fn policy(data: &[u8]) {
    let Ok(claims) = jws::decode_payload(&URL_SAFE_NO_PAD.encode(data)) else {
        return;
    };
    for policy in policies() {
        for now in NOWS {
            match policy.check(&claims, now) {
                Err(e) => {
                    assert!(e.code().is_some(), "a policy failure without a code: {e}");
                    error_text_is_bounded(&e);
                }
                Ok(()) => holds(policy, &claims, now),
            }
        }
    }
}

fn holds(policy: &Policy, claims: &Map<String, Value>, now: u64) {
    let str_claim = |name: &str| claims.get(name).and_then(Value::as_str);
    for name in &policy.required_claims {
        assert!(claims.contains_key(name), "passed without {name}");
    }
    for name in ["exp", "nbf", "iat"] {
        assert!(
            claims.get(name).is_none_or(Value::is_number),
            "passed with a {name} that is not a number"
        );
    }
    let (now, leeway) = (i128::from(now), i128::from(policy.leeway));
    // Below 2^53 the policy's f64 arithmetic is exact, so it must agree with ours.
    let exact = |t: i128| t.abs() < 1 << 53 && now < 1 << 53;
    if let Some(exp) = integer(claims, "exp").filter(|t| exact(*t)) {
        assert!(now < exp + leeway, "passed when expired");
    }
    for name in ["nbf", "iat"] {
        if let Some(t) = integer(claims, name).filter(|t| exact(*t)) {
            assert!(t <= now + leeway, "passed with {name} in the future");
        }
    }
    for name in ["sub", "jti"] {
        assert!(claims.get(name).is_none_or(Value::is_string));
    }
    if policy.verify_issuer {
        assert_eq!(str_claim("iss"), Some(policy.issuer.as_str()));
    }
    if !policy.audience.is_empty() {
        let ours = |v: &Value| {
            v.as_str()
                .is_some_and(|a| policy.audience.iter().any(|o| o == a))
        };
        let matched = match claims.get("aud") {
            Some(Value::Array(items)) => items.iter().any(ours),
            Some(other) => ours(other),
            None => false,
        };
        assert!(matched, "passed without our audience");
    }
    if let Some(allowed) = &policy.allowed_azp {
        assert!(str_claim("azp").is_some_and(|azp| allowed.allows(azp)));
    }
    if let (Some(types), Some(typ)) = (&policy.token_types, claims.get("typ")) {
        assert!(typ.as_str().is_some_and(|t| types.iter().any(|a| a == t)));
    }
}

/// The token endpoint's answer, classified. Property: no panic; a token is non-empty with a
/// finite positive lifetime, if any; a failure names the status, repeats an `error` only when it
/// is a short printable OAuth code, and its description is one bounded line with no control
/// character (it goes to a log line as it is).
pub fn token_response(data: &[u8]) {
    let (status, body) = match data {
        [a, b, c, b'\n', body @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            let status = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
            (status, body)
        }
        _ => (200, data),
    };
    match classify(status, body, &Redactor::none()) {
        Ok((token, expires_in)) => {
            assert!((200..300).contains(&status), "a token from HTTP {status}");
            assert!(!token.is_empty());
            assert!(expires_in.is_none_or(|s| s.is_finite() && s > 0.0));
        }
        Err(failed) => {
            let f = failed.failure;
            assert_eq!(f.status, Some(status));
            if let Some(code) = &f.error {
                assert!(!code.is_empty() && code.len() <= 64);
                assert!(code
                    .bytes()
                    .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'));
            }
            assert!(
                !f.description.chars().any(char::is_control),
                "a control character in {:?}",
                f.description
            );
            assert!(f.description.chars().count() <= MAX_ERROR_TEXT);
            if !(200..300).contains(&status) && (status == 408 || status == 429 || status >= 500) {
                assert!(f.retryable, "HTTP {status} is worth another try");
            }
        }
    }
}

/// What the redaction target needs: the texts that must never appear in its output, and the
/// client authentications whose `redact` is under test.
pub struct Redaction {
    /// The secret as configured, and as it travels in a form body or a Basic header's pair.
    pub forbidden: Vec<String>,
    auths: Vec<ClientAuth>,
}

impl Redaction {
    /// The secret-bearing methods, all with `secret`.
    pub fn new(secret: &str) -> Self {
        let secret = || Zeroizing::new(secret.to_string());
        let auths = vec![
            ClientAuth::new("agent".into(), Credentials::SecretPost(secret())),
            ClientAuth::new("agent".into(), Credentials::SecretBasic(secret())),
            ClientAuth::new("agent".into(), Credentials::SecretJwt(secret())),
        ];
        let encoded: String = form_urlencoded::byte_serialize(secret().as_bytes()).collect();
        Redaction {
            forbidden: vec![secret().to_string(), encoded],
            auths,
        }
    }

    /// `text` as each method redacts it.
    pub fn outputs(&self, text: &str) -> Vec<String> {
        self.auths.iter().map(|auth| auth.redact(text)).collect()
    }
}

/// The shortest secret `redact` looks for: shorter ones are left alone, since cutting every
/// two-letter match out of a message would make it unreadable.
/// (`ClientAuth::redact` has the same bound; the property only holds above it.)
pub const MIN_REDACTED_LEN: usize = 4;

/// Redaction. Input: the secret, `\n`, then the text, in which the byte 0x01 stands for the
/// secret and 0x02 for its form-urlencoded form (so the fuzzer can place them anywhere).
/// Property: no output contains the secret or its encoded form.
pub fn redact(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Some((secret, template)) = input.split_once('\n') else {
        return;
    };
    if secret.len() < MIN_REDACTED_LEN || secret.contains(['\x01', '\x02']) {
        return;
    }
    let redaction = Redaction::new(secret);
    let text = template
        .replace('\x01', &redaction.forbidden[0])
        .replace('\x02', &redaction.forbidden[1]);
    for out in redaction.outputs(&text) {
        for needle in &redaction.forbidden {
            assert!(
                !out.contains(needle.as_str()),
                "{needle:?} survives redaction of {text:?}: {out:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every seed in `fuzz/corpus/` holds its target's property, so `cargo test` runs the entry
    /// points without the nightly toolchain, and a seed that stops parsing is noticed.
    #[test]
    fn the_seed_corpus_holds() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        type Entry = fn(&[u8]);
        let targets: [(&str, Entry); 5] = [
            ("jws", super::jws),
            ("jwks", super::jwks),
            ("policy", super::policy),
            ("token_response", super::token_response),
            ("redact", super::redact),
        ];
        for (target, entry) in targets {
            let mut seeds = 0;
            for file in std::fs::read_dir(corpus.join(target)).expect(target) {
                let path = file.expect("a directory entry").path();
                // Only the hand-made seeds: a local run may have left other files beside them.
                if !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
                {
                    continue;
                }
                entry(&std::fs::read(&path).expect("a seed"));
                seeds += 1;
            }
            assert!(seeds >= 4, "{target} has {seeds} seeds");
        }
    }
}
