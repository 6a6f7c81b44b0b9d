//! A private JWK (RFC 7518 §6) into the PKCS#8 / PKCS#1 PEM that jsonwebtoken loads.

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pkcs1::der::asn1::{AnyRef, OctetStringRef};
use pkcs1::der::{Decode, Encode, Reader, SliceReader};
use pkcs1::UintRef;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

fn bad(message: impl Into<String>) -> Error {
    Error::config("private_key", message)
}

/// A parsed private JWK: PEM, the algorithm it implies, and its kid.
pub(super) struct PrivateJwk {
    pub pem: Zeroizing<String>,
    pub alg: String,
    pub kid: Option<String>,
}

fn member(jwk: &Map<String, Value>, name: &str) -> Result<Zeroizing<Vec<u8>>> {
    let text = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("the JWK has no {name:?} member")))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map(Zeroizing::new)
        .map_err(|_| bad(format!("the JWK's {name:?} is not base64url")))
}

pub(super) fn parse(text: &str) -> Result<PrivateJwk> {
    let value: Zeroizing<String> = Zeroizing::new(text.to_string());
    let jwk: Map<String, Value> =
        serde_json::from_str(&value).map_err(|_| bad("not a JSON object (JWK)"))?;
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
    let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or_default();
    let (der, label, natural_alg) = match (kty, crv) {
        ("RSA", _) => (rsa_pkcs1(&jwk)?, "RSA PRIVATE KEY", "RS256"),
        ("EC", "P-256") => (
            ec_pkcs8(&jwk, &ECDSA_P256_SHA256_FIXED_SIGNING)?,
            "PRIVATE KEY",
            "ES256",
        ),
        ("EC", "P-384") => (
            ec_pkcs8(&jwk, &ECDSA_P384_SHA384_FIXED_SIGNING)?,
            "PRIVATE KEY",
            "ES384",
        ),
        ("OKP", "Ed25519") => {
            let pair =
                Ed25519KeyPair::from_seed_and_public_key(&member(&jwk, "d")?, &member(&jwk, "x")?)
                    .map_err(|_| bad("the Ed25519 JWK's d and x do not form a key pair"))?;
            let doc = pair
                .to_pkcs8v1()
                .map_err(|_| bad("cannot encode the Ed25519 key"))?;
            (
                Zeroizing::new(doc.as_ref().to_vec()),
                "PRIVATE KEY",
                "EdDSA",
            )
        }
        _ => {
            return Err(bad(format!(
                "unsupported private JWK (kty {kty:?}, crv {crv:?})"
            )))
        }
    };
    let pem = Zeroizing::new(pem::encode(&pem::Pem::new(label, der.to_vec())));
    let alg = jwk
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or(natural_alg)
        .to_string();
    let kid = jwk.get("kid").and_then(Value::as_str).map(String::from);
    Ok(PrivateJwk { pem, alg, kid })
}

fn rsa_pkcs1(jwk: &Map<String, Value>) -> Result<Zeroizing<Vec<u8>>> {
    let parts: Vec<Zeroizing<Vec<u8>>> = ["n", "e", "d", "p", "q", "dp", "dq", "qi"]
        .iter()
        .map(|name| member(jwk, name))
        .collect::<Result<_>>()?;
    fn uint(bytes: &[u8]) -> Result<UintRef<'_>> {
        // DER integers carry no leading zero bytes beyond the one a sign bit needs.
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len().saturating_sub(1));
        UintRef::new(&bytes[start..]).map_err(|_| bad("an RSA JWK member is not a valid integer"))
    }
    let key = pkcs1::RsaPrivateKey {
        modulus: uint(&parts[0])?,
        public_exponent: uint(&parts[1])?,
        private_exponent: uint(&parts[2])?,
        prime1: uint(&parts[3])?,
        prime2: uint(&parts[4])?,
        exponent1: uint(&parts[5])?,
        exponent2: uint(&parts[6])?,
        coefficient: uint(&parts[7])?,
        other_prime_infos: None,
    };
    key.to_der()
        .map(Zeroizing::new)
        .map_err(|_| bad("cannot encode the RSA key"))
}

fn ec_pkcs8(
    jwk: &Map<String, Value>,
    alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
) -> Result<Zeroizing<Vec<u8>>> {
    let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
    let mut public = Vec::with_capacity(1 + x.len() + y.len());
    public.push(0x04); // an uncompressed point
    public.extend_from_slice(&x);
    public.extend_from_slice(&y);
    let pair = EcdsaKeyPair::from_private_key_and_public_key(alg, &member(jwk, "d")?, &public)
        .map_err(|_| bad("the EC JWK's d, x and y do not form a key pair"))?;
    let doc = pair
        .to_pkcs8v1()
        .map_err(|_| bad("cannot encode the EC key"))?;
    Ok(Zeroizing::new(doc.as_ref().to_vec()))
}

/// The private JWK of a PKCS#8 key: the public JWK plus the private members.
pub(super) fn export(pkcs8_der: &[u8], alg: &str, public_jwk: &Value) -> Result<Zeroizing<String>> {
    let fail = || bad("cannot export the key as a JWK");
    let mut jwk = public_jwk.clone();
    let obj = jwk.as_object_mut().ok_or_else(fail)?;
    let b64 = |bytes: &[u8]| Value::String(URL_SAFE_NO_PAD.encode(bytes));
    match alg {
        "ES256" | "ES384" => {
            let signing = if alg == "ES256" {
                &ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8_der).map_err(|_| fail())?;
            let d = pair.private_key().as_be_bytes().map_err(|_| fail())?;
            obj.insert("d".into(), b64(d.as_ref()));
        }
        "EdDSA" => {
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8_der).map_err(|_| fail())?;
            let seed = pair.seed().map_err(|_| fail())?;
            let seed = seed.as_be_bytes().map_err(|_| fail())?;
            obj.insert("d".into(), b64(seed.as_ref()));
        }
        _ => {
            let inner = pkcs8_inner(pkcs8_der).ok_or_else(fail)?;
            let rsa = pkcs1::RsaPrivateKey::from_der(&inner).map_err(|_| fail())?;
            for (name, v) in [
                ("d", rsa.private_exponent),
                ("p", rsa.prime1),
                ("q", rsa.prime2),
                ("dp", rsa.exponent1),
                ("dq", rsa.exponent2),
                ("qi", rsa.coefficient),
            ] {
                obj.insert(name.into(), b64(v.as_bytes()));
            }
        }
    }
    Ok(Zeroizing::new(jwk.to_string()))
}

/// The PKCS#1 key inside a PKCS#8 envelope (the OCTET STRING after version and algorithm).
fn pkcs8_inner(der: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut reader = SliceReader::new(der).ok()?;
    reader
        .sequence(|r| {
            let _version: AnyRef = r.decode()?;
            let _algorithm: AnyRef = r.decode()?;
            let key: OctetStringRef = r.decode()?;
            Ok(Zeroizing::new(key.as_bytes().to_vec()))
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::SigningKey;

    #[test]
    fn private_jwks_round_trip_through_export() {
        for alg in ["RS256", "ES256", "ES384", "EdDSA"] {
            let key = SigningKey::generate(alg, Some("k1".into())).unwrap();
            let jwk = key.private_jwk().unwrap();
            let loaded = SigningKey::from_jwk(&jwk, None, None).unwrap();
            assert_eq!(loaded.alg_name(), alg);
            assert_eq!(loaded.kid(), "k1");
            assert_eq!(loaded.public_jwk(), key.public_jwk());
        }
    }

    #[test]
    fn broken_private_jwks_are_config_errors() {
        for text in [
            "not json",
            r#"{"kty":"RSA","n":"AQAB"}"#,
            r#"{"kty":"oct","k":"AA"}"#,
            r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}"#,
        ] {
            let result = SigningKey::from_jwk(text, None, None);
            assert!(matches!(result, Err(Error::Config { .. })), "{text}");
        }
    }
}
