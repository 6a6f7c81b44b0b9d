//! One JWK into one verifying key. A bad key is skipped with a reason; it never poisons the set.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use serde_json::Value;

/// The key types the verifier accepts, each with the header algorithms it can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    pub(crate) fn accepts(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::EcP256 => alg == ES256,
            KeyKind::EcP384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }
}

/// The largest signature we check: RSA-8192.
const MAX_SIGNATURE_BYTES: usize = 1024;

/// The aws-lc-rs algorithm that checks `alg`, as jsonwebtoken's aws-lc provider maps them.
fn verification(alg: Algorithm) -> Option<&'static dyn sig::VerificationAlgorithm> {
    if let Some(rsa) = rsa_params(alg) {
        return Some(rsa);
    }
    Some(match alg {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        _ => return None,
    })
}

/// RSA's parameters double as its verification algorithms.
fn rsa_params(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

pub(crate) struct VerifyingKey {
    pub kid: String,
    pub kind: KeyKind,
    /// The JWK's own `alg`, which the token's header must then equal.
    pub alg: Option<Algorithm>,
    /// The key parsed once per algorithm it may check (aws-lc keeps an RSA key's Montgomery
    /// set-up with it): a verify never rebuilds the key from its JWK.
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
    /// Identifies the key material, so a kid reused for another key is noticed.
    pub fingerprint: u64,
}

impl VerifyingKey {
    /// Whether `signature` (base64url, as in the token) is this key's signature of `message`
    /// under `alg`. False for an algorithm the key does not take.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &str) -> bool {
        let Some((_, key)) = self.parsed.iter().find(|(a, _)| *a == alg) else {
            return false;
        };
        let mut buf = [0u8; MAX_SIGNATURE_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(signature, &mut buf) {
            Ok(len) => key.verify_sig(message, &buf[..len]).is_ok(),
            Err(_) => false,
        }
    }
}

/// Parses the key material once for each algorithm this key may check.
fn parse_material(
    key: &DecodingKey,
    kind: KeyKind,
    alg: Option<Algorithm>,
) -> Result<Vec<(Algorithm, ParsedPublicKey)>, String> {
    let mut parsed = Vec::new();
    for &candidate in crate::verify::ASYMMETRIC_ALGORITHMS {
        if !kind.accepts(candidate) || alg.is_some_and(|a| a != candidate) {
            continue;
        }
        let result = match key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                let params = rsa_params(candidate).ok_or("not an RSA algorithm")?;
                RsaPublicKeyComponents { n, e }.to_parsed_public_key(params)
            }
            DecodingKeyKind::SecretOrDer(bytes) => {
                let algorithm = verification(candidate).ok_or("unsupported algorithm")?;
                ParsedPublicKey::new(algorithm, bytes)
            }
        };
        parsed.push((
            candidate,
            result.map_err(|e| format!("unusable key material: {e}"))?,
        ));
    }
    Ok(parsed)
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish()
    }
}

/// The usable keys of one fetch, by kid.
#[derive(Debug, Default)]
pub struct KeySet {
    pub(crate) keys: HashMap<String, Arc<VerifyingKey>>,
}

impl KeySet {
    pub(crate) fn get(&self, kid: Option<&str>) -> Option<&Arc<VerifyingKey>> {
        match kid {
            Some(kid) => self.keys.get(kid),
            // A token without a kid is only unambiguous against a single-key set.
            None if self.keys.len() == 1 => self.keys.values().next(),
            None => None,
        }
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What the verifier makes of one entry of a JWKS document: `skipped` is None for a key it
/// uses, else the reason it is left out (the same reason `parse_jwks` logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVerdict {
    /// The entry's position in the `keys` array.
    pub index: usize,
    /// Its `kid`, when it has a string one.
    pub kid: Option<String>,
    /// Why it is skipped; None when it is used.
    pub skipped: Option<String>,
}

/// Parses a JWKS document. Fails only when the document itself is unusable; unusable keys are
/// logged and skipped.
pub fn parse_jwks(body: &[u8]) -> Result<KeySet, String> {
    let (set, verdicts, entries) = sift(body)?;
    for verdict in &verdicts {
        let Some(reason) = &verdict.skipped else {
            continue;
        };
        let kid = verdict.kid.as_deref().unwrap_or("<none>");
        let index = verdict.index;
        // Encryption keys sit in every Keycloak realm's set: expected, so not a warning.
        let enc = entries[index].get("use").and_then(Value::as_str) == Some("enc");
        let level = if enc && reason != DUPLICATE_KID {
            log::Level::Info
        } else {
            log::Level::Warn
        };
        log::log!(level, "JWKS key #{index} (kid {kid:?}) skipped: {reason}");
    }
    Ok(set)
}

/// Every entry of a JWKS document with the verifier's verdict on it, in order (for operators:
/// `tokenward jwks`). Fails only when the document itself is unusable, as `parse_jwks` does.
pub fn review_jwks(body: &[u8]) -> Result<Vec<KeyVerdict>, String> {
    sift(body).map(|(_, verdicts, _)| verdicts)
}

const DUPLICATE_KID: &str = "duplicate kid";

/// The one pass over a JWKS document that both `parse_jwks` and `review_jwks` report on.
fn sift(body: &[u8]) -> Result<(KeySet, Vec<KeyVerdict>, Vec<Value>), String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    let entries = match doc {
        Value::Object(mut map) => match map.remove("keys") {
            Some(Value::Array(entries)) => entries,
            _ => return Err("JWKS has no \"keys\" array".to_string()),
        },
        _ => return Err("JWKS has no \"keys\" array".to_string()),
    };
    let mut set = KeySet::default();
    let mut verdicts = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let kid = entry.get("kid").and_then(Value::as_str).map(str::to_owned);
        let skipped = match parse_key(entry) {
            Ok(key) if set.keys.contains_key(&key.kid) => Some(DUPLICATE_KID.to_string()),
            Ok(key) => {
                set.keys.insert(key.kid.clone(), Arc::new(key));
                None
            }
            Err(reason) => Some(reason),
        };
        verdicts.push(KeyVerdict {
            index,
            kid,
            skipped,
        });
    }
    Ok((set, verdicts, entries))
}

fn parse_key(entry: &Value) -> Result<VerifyingKey, String> {
    let obj = entry.as_object().ok_or("not a JSON object")?;
    // Check what the crate's types cannot express (Ed448, P-521) before handing it over.
    let kty = obj.get("kty").and_then(Value::as_str).ok_or("no kty")?;
    if let Some(crv) = obj.get("crv").and_then(Value::as_str) {
        if !matches!(crv, "P-256" | "P-384" | "Ed25519") {
            return Err(format!("unsupported curve {crv}"));
        }
    }
    if !matches!(kty, "RSA" | "EC" | "OKP") {
        return Err(format!("unsupported key type {kty}"));
    }
    let jwk: Jwk =
        serde_json::from_value(entry.clone()).map_err(|e| format!("invalid JWK: {e}"))?;
    if let Some(PublicKeyUse::Encryption) = jwk.common.public_key_use {
        return Err("use is \"enc\"".into());
    }
    if let Some(PublicKeyUse::Other(other)) = &jwk.common.public_key_use {
        return Err(format!("use is {other:?}"));
    }
    let alg = match obj.get("alg").and_then(Value::as_str) {
        None => None,
        Some(name) => match Algorithm::from_str(name) {
            Ok(a) if a.family() != jsonwebtoken::AlgorithmFamily::Hmac => Some(a),
            _ => return Err(format!("unsupported alg {name}")),
        },
    };
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => KeyKind::EcP256,
            EllipticCurve::P384 => KeyKind::EcP384,
            ref other => return Err(format!("unsupported curve {other:?}")),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => KeyKind::Ed25519,
            ref other => return Err(format!("unsupported curve {other:?}")),
        },
        _ => return Err(format!("unsupported key type {kty}")),
    };
    if let Some(a) = alg {
        if !kind.accepts(a) {
            return Err(format!("alg {a:?} does not fit a {kind:?} key"));
        }
    }
    if let Some(KeyAlgorithm::UNKNOWN_ALGORITHM) = jwk.common.key_algorithm {
        return Err("unknown alg".into());
    }
    refuse_weak(&jwk.algorithm)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key material: {e}"))?;
    let parsed = parse_material(&key, kind, alg)?;
    let kid = jwk.common.key_id.clone().unwrap_or_default();
    Ok(VerifyingKey {
        kid,
        kind,
        alg,
        parsed,
        fingerprint: fingerprint(&jwk.algorithm),
    })
}

/// The smallest RSA modulus we accept, as NIST SP 800-131A and aws-lc's verifiers require.
const MIN_RSA_BITS: usize = 2048;
/// The largest: aws-lc checks signatures up to RSA-8192 (`MAX_SIGNATURE_BYTES`).
const MAX_RSA_BITS: usize = 8192;

/// The encodings of the y coordinate of Ed25519's eight points of small order (the identity,
/// one point of order 2, two of order 4 and four of order 8), with the sign bit of x (the top
/// bit of the last byte) cleared: y = 0, 1, p - 1, the two order-8 values, and the
/// non-canonical p and p + 1 (which decode to 0 and 1). These are libsodium's blocklist
/// (`ge25519_has_small_order`); `tests/test_hostile_keys.py` derives them again from the curve
/// equation. A key on this list lets anyone make a signature that verifies for any message
/// (with R the identity and S = 0, for the identity itself).
const ED25519_SMALL_ORDER: [[u8; 32]; 7] = {
    const fn le(mut bytes: [u8; 32], last: u8) -> [u8; 32] {
        bytes[31] = last;
        bytes
    }
    const ALL_FF: [u8; 32] = [0xff; 32];
    let mut p_minus_1 = le(ALL_FF, 0x7f);
    p_minus_1[0] = 0xec;
    let mut p = le(ALL_FF, 0x7f);
    p[0] = 0xed;
    let mut p_plus_1 = le(ALL_FF, 0x7f);
    p_plus_1[0] = 0xee;
    let mut one = [0u8; 32];
    one[0] = 1;
    [
        [0u8; 32],
        one,
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ],
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ],
        p_minus_1,
        p,
        p_plus_1,
    ]
};

/// Whether `point` (an encoded Ed25519 public key) is one of the small-order points, in any of
/// its encodings.
fn is_small_order(point: &[u8; 32]) -> bool {
    ED25519_SMALL_ORDER
        .iter()
        .any(|listed| listed[..31] == point[..31] && listed[31] == point[31] & 0x7f)
}

/// Keys that parse but must never verify: RSA moduli outside [2048, 8192] bits, and Ed25519
/// points of small order.
fn refuse_weak(params: &AlgorithmParameters) -> Result<(), String> {
    match params {
        AlgorithmParameters::RSA(rsa) => {
            let n = URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .map_err(|_| "the RSA modulus is not base64url".to_string())?;
            let bits = modulus_bits(&n);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
            if bits > MAX_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits; at most {MAX_RSA_BITS} are supported"
                ));
            }
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            let x = URL_SAFE_NO_PAD
                .decode(&okp.x)
                .map_err(|_| "the Ed25519 point is not base64url".to_string())?;
            let point: [u8; 32] = x
                .as_slice()
                .try_into()
                .map_err(|_| format!("an Ed25519 point has 32 bytes, not {}", x.len()))?;
            if is_small_order(&point) {
                return Err(
                    "Ed25519 point of small order (it would verify forged signatures)".into(),
                );
            }
        }
        _ => {}
    }
    Ok(())
}

/// The bit length of a big-endian unsigned integer.
fn modulus_bits(n: &[u8]) -> usize {
    let digits = match n.iter().position(|b| *b != 0) {
        Some(first) => &n[first..],
        None => return 0,
    };
    digits.len() * 8 - digits[0].leading_zeros() as usize
}

fn fingerprint(params: &AlgorithmParameters) -> u64 {
    let mut h = DefaultHasher::new();
    match params {
        AlgorithmParameters::RSA(p) => (&p.n, &p.e).hash(&mut h),
        AlgorithmParameters::EllipticCurve(p) => (&p.x, &p.y).hash(&mut h),
        AlgorithmParameters::OctetKeyPair(p) => p.x.hash(&mut h),
        _ => {}
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::SigningKey;
    use serde_json::json;

    #[test]
    fn skips_bad_keys_and_keeps_good_ones() {
        let rsa = SigningKey::generate("RS256", Some("r1".into())).unwrap();
        let ec = SigningKey::generate("ES256", Some("e1".into())).unwrap();
        let ed = SigningKey::generate("EdDSA", Some("d1".into())).unwrap();
        let mut enc = rsa.public_jwk().clone();
        enc["kid"] = json!("enc1");
        enc["use"] = json!("enc");
        let doc = json!({"keys": [
            rsa.public_jwk(), ec.public_jwk(), ed.public_jwk(), enc,
            {"kty": "OKP", "crv": "Ed448", "kid": "x448", "x": "AAAA"},
            {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not an object",
        ]});
        let set = parse_jwks(doc.to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = set.keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["d1", "e1", "r1"]);
    }

    #[test]
    fn small_order_ed25519_points_and_short_rsa_keys_are_skipped() {
        let ed = SigningKey::generate("EdDSA", Some("good".into())).unwrap();
        let mut keys = vec![ed.public_jwk().clone()];
        for (i, point) in ED25519_SMALL_ORDER.iter().enumerate() {
            for sign in [0u8, 0x80] {
                let mut encoded = *point;
                encoded[31] |= sign;
                keys.push(json!({
                    "kty": "OKP", "crv": "Ed25519", "kid": format!("small-{i}-{sign}"),
                    "x": URL_SAFE_NO_PAD.encode(encoded),
                }));
            }
        }
        let rsa = SigningKey::generate("RS256", Some("rsa".into())).unwrap();
        let n = URL_SAFE_NO_PAD
            .decode(rsa.public_jwk()["n"].as_str().unwrap())
            .unwrap();
        assert_eq!(modulus_bits(&n), 2048);
        let mut short = rsa.public_jwk().clone();
        short["kid"] = json!("rsa-1024");
        short["n"] = json!(URL_SAFE_NO_PAD.encode(&n[..128]));
        let mut padded = rsa.public_jwk().clone();
        padded["kid"] = json!("rsa-1024-zero-padded");
        let mut zeros = vec![0u8; 128];
        zeros.extend_from_slice(&n[..128]);
        padded["n"] = json!(URL_SAFE_NO_PAD.encode(&zeros));
        keys.extend([rsa.public_jwk().clone(), short, padded]);
        let set = parse_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = set.keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["good", "rsa"]);
        assert_eq!(modulus_bits(&[0, 0, 1]), 1);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
        assert_eq!(modulus_bits(&[]), 0);
    }

    #[test]
    fn rejects_documents_without_keys() {
        assert!(parse_jwks(b"not json").is_err());
        assert!(parse_jwks(b"{\"foo\": []}").is_err());
        assert!(parse_jwks(b"{\"keys\": []}").unwrap().is_empty());
    }
}
