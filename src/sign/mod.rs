//! Signing keys: generate, load from PEM, sign. Used for private_key_jwt client assertions and by
//! the DevIdP, which must not need Python's `cryptography`.

use std::str::FromStr;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

mod jwk;

/// A private key and what a verifier needs of it (alg, kid, public JWK).
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    pem: Zeroizing<String>,
    public_jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(alg={:?}, kid={:?})", self.alg, self.kid)
    }
}

fn parse_alg(name: &str) -> Result<Algorithm> {
    match Algorithm::from_str(name) {
        Ok(a) if a.family() != AlgorithmFamily::Hmac => Ok(a),
        _ => Err(Error::config(
            "alg",
            format!("{name:?} is not a supported signing algorithm"),
        )),
    }
}

impl SigningKey {
    /// A fresh key for `alg`: RSA 2048 for RS*/PS*, P-256/P-384 for ES256/ES384, Ed25519 for EdDSA.
    pub fn generate(alg: &str, kid: Option<String>) -> Result<Self> {
        let alg = parse_alg(alg)?;
        let failed = |_| Error::config("alg", "key generation failed");
        let der: Vec<u8> = match alg {
            Algorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Algorithm::ES384 => EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Algorithm::EdDSA => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            _ => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .and_then(|k| k.as_der())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
        };
        let der = Zeroizing::new(der);
        let pem = Zeroizing::new(pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec())));
        Self::build(alg, pem, kid)
    }

    /// Loads a PKCS#8 (or, for RSA, PKCS#1) PEM private key.
    pub fn from_pem(pem: &str, alg: &str, kid: Option<String>) -> Result<Self> {
        let alg = parse_alg(alg)?;
        Self::build(alg, Zeroizing::new(pem.to_string()), kid)
    }

    /// Loads a private JWK (RSA, EC P-256/P-384, Ed25519). `alg` and `kid` default to the
    /// JWK's own, then to the key type's natural algorithm and the key's thumbprint.
    pub fn from_jwk(text: &str, alg: Option<&str>, kid: Option<String>) -> Result<Self> {
        let parsed = jwk::parse(text)?;
        let alg = parse_alg(alg.unwrap_or(&parsed.alg))?;
        Self::build(alg, parsed.pem, kid.or(parsed.kid))
    }

    fn build(alg: Algorithm, pem: Zeroizing<String>, kid: Option<String>) -> Result<Self> {
        let bad = || Error::config("private_key", format!("not a PEM private key for {alg:?}"));
        let key = match alg.family() {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| bad())?,
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| bad())?,
            AlgorithmFamily::Ed => EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|_| bad())?,
            AlgorithmFamily::Hmac => return Err(bad()),
        };
        let jwk = Jwk::from_encoding_key(&key, alg).map_err(|_| bad())?;
        let kid = match kid {
            Some(kid) => kid,
            None => jwk.thumbprint(ThumbprintHash::SHA256).map_err(|_| bad())?,
        };
        let mut public_jwk = serde_json::to_value(&jwk).map_err(|_| bad())?;
        if let Some(obj) = public_jwk.as_object_mut() {
            obj.insert("kid".into(), json!(kid));
            obj.insert("use".into(), json!("sig"));
            obj.insert("alg".into(), json!(alg_name(alg)));
        }
        let signer = SigningKey {
            alg,
            kid,
            key,
            pem,
            public_jwk,
        };
        // A key that loads but cannot sign (wrong curve for the alg, say) fails here, not later.
        jsonwebtoken::crypto::sign(b"probe", &signer.key, alg).map_err(|_| bad())?;
        Ok(signer)
    }

    /// The algorithm it signs with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The algorithm's JOSE name (`RS256`, `ES256`, ...).
    pub fn alg_name(&self) -> &'static str {
        alg_name(self.alg)
    }

    /// The key id its tokens' headers carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK, ready for a JWKS.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// The private key as PKCS#8 PEM.
    pub fn private_pem(&self) -> &str {
        &self.pem
    }

    /// The private key as a JWK (JSON text), public members and kid included.
    pub fn private_jwk(&self) -> Result<Zeroizing<String>> {
        let der = pem::parse(self.pem.as_bytes())
            .map_err(|_| Error::config("private_key", "cannot export the key"))?;
        // Only PKCS#8 can be exported; a PKCS#1 RSA PEM is wrapped on the way.
        let pkcs8 = match der.tag() {
            "PRIVATE KEY" => Zeroizing::new(der.contents().to_vec()),
            _ => {
                let pair = aws_lc_rs::rsa::KeyPair::from_der(der.contents())
                    .map_err(|_| Error::config("private_key", "cannot export the key"))?;
                let doc = pair
                    .as_der()
                    .map_err(|_| Error::config("private_key", "cannot export the key"))?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
        };
        jwk::export(&pkcs8, self.alg_name(), &self.public_jwk)
    }

    /// A compact JWS over `payload` with header {alg, typ: JWT, kid} updated by `overrides`
    /// (null removes a member). The signature always uses this key's own algorithm.
    pub fn sign(&self, payload: &[u8], overrides: Option<&Map<String, Value>>) -> Result<String> {
        let mut header = Map::new();
        header.insert("alg".into(), json!(self.alg_name()));
        header.insert("typ".into(), json!("JWT"));
        header.insert("kid".into(), json!(self.kid));
        for (name, value) in overrides.into_iter().flatten() {
            if value.is_null() {
                header.remove(name);
            } else {
                header.insert(name.clone(), value.clone());
            }
        }
        let header = serde_json::to_vec(&header).expect("a JSON map always serialises");
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let signature = jsonwebtoken::crypto::sign(token.as_bytes(), &self.key, self.alg)
            .map_err(|e| Error::config("private_key", format!("signing failed: {e}")))?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }
}

pub(crate) fn alg_name(alg: Algorithm) -> &'static str {
    crate::verify::ASYMMETRIC_ALGORITHMS
        .iter()
        .zip([
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ])
        .find_map(|(a, name)| (*a == alg).then_some(name))
        .unwrap_or("HS256")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_loads_and_signs_every_algorithm() {
        for alg in ["RS256", "PS256", "ES256", "ES384", "EdDSA"] {
            let key = SigningKey::generate(alg, None).unwrap();
            assert_eq!(key.alg_name(), alg);
            assert!(!key.kid().is_empty());
            let again = SigningKey::from_pem(key.private_pem(), alg, Some("k".into())).unwrap();
            assert_eq!(again.public_jwk()["kid"], "k");
            let token = again.sign(b"{\"a\":1}", None).unwrap();
            assert_eq!(token.split('.').count(), 3);
        }
    }

    #[test]
    fn refuses_symmetric_and_mismatched_keys() {
        assert!(SigningKey::generate("HS256", None).is_err());
        let ec = SigningKey::generate("ES256", None).unwrap();
        assert!(SigningKey::from_pem(ec.private_pem(), "RS256", None).is_err());
        assert!(SigningKey::from_pem("garbage", "RS256", None).is_err());
    }
}
