//! Splitting a compact JWS and reading its protected header. The signature itself is checked by
//! jsonwebtoken; this only finds the parts and refuses shapes we never accept.
//!
//! Header and payload are read by one parser, [`object`], which refuses a JSON object that
//! names a member twice, at any depth (RFC 7515 section 5.2 and RFC 7519 section 4 allow a
//! parser to). serde_json would keep the last copy, and another component reading the first
//! could then disagree with us about `iss`, `exp` or `typ`.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Code, Error, Result};

/// Header parameters a verifier must understand if they are marked critical. We understand none
/// beyond the registered ones, and `b64: false` (RFC 7797) changes what is signed: refused too.
const UNDERSTOOD_CRIT: &[&str] = &[];

struct RawHeader {
    alg: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
    b64: Option<Value>,
    enc: Option<Value>,
}

impl RawHeader {
    fn from(mut header: Map<String, Value>) -> Self {
        RawHeader {
            alg: header.remove("alg"),
            kid: header.remove("kid"),
            crit: header.remove("crit"),
            b64: header.remove("b64"),
            enc: header.remove("enc"),
        }
    }
}

/// A JSON value read like serde_json's `Value`, except that an object naming a member twice is
/// an error.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        // JSON has no NaN or infinity, so a parsed float always fits.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let Unique(value) = map.next_value()?;
            if members.insert(name, value).is_some() {
                return Err(de::Error::custom("duplicate member name"));
            }
        }
        Ok(Value::Object(members))
    }
}

/// A JSON object whose members (at any depth) all have distinct names; `what` names the part
/// in the error.
fn object(json: &[u8], what: &str) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Unique>(json) {
        Ok(Unique(Value::Object(map))) => Ok(map),
        Err(e) if e.to_string().starts_with("duplicate member name") => {
            Err(malformed(&format!("the {what} names a member twice")))
        }
        _ => Err(malformed(&format!("the {what} is not a JSON object"))),
    }
}

pub(crate) struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

pub(crate) struct Parts<'a> {
    pub header: Header,
    /// `base64(header) "." base64(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
}

fn malformed(detail: &str) -> Error {
    Error::invalid(Code::Malformed, detail)
}

pub(crate) fn split<'a>(token: &'a str, allowed: &[Algorithm]) -> Result<Parts<'a>> {
    let mut dots = token.match_indices('.').map(|(i, _)| i);
    let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(malformed("a JWS has exactly three dot-separated parts"));
    };
    let (header_b64, payload, signature) = (
        &token[..first],
        &token[first + 1..second],
        &token[second + 1..],
    );
    if header_b64.is_empty() || payload.is_empty() {
        return Err(malformed("empty header or payload"));
    }
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| malformed("the header is not base64url"))?;
    let raw = RawHeader::from(object(&header_json, "header")?);
    if raw.enc.is_some() {
        return Err(malformed("encrypted tokens (JWE) are not accepted"));
    }
    let alg_name = match raw.alg {
        Some(Value::String(s)) => s,
        Some(_) => return Err(malformed("the header's alg is not a string")),
        None => return Err(malformed("the header has no alg")),
    };
    let alg = match alg_name.parse::<Algorithm>() {
        Ok(a) if allowed.contains(&a) => a,
        _ => {
            return Err(Error::invalid(
                Code::AlgNotAllowed,
                format!("algorithm {:?} is not allowed", truncate(&alg_name)),
            ))
        }
    };
    if let Some(crit) = raw.crit {
        let names = crit
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| malformed("crit must be a non-empty array"))?;
        for name in names {
            let understood = name.as_str().is_some_and(|n| UNDERSTOOD_CRIT.contains(&n));
            if !understood {
                return Err(malformed(
                    "the header marks a parameter we do not understand as critical",
                ));
            }
        }
    }
    if raw.b64.is_some() {
        return Err(malformed("unencoded payloads (b64) are not accepted"));
    }
    // Only after the alg check: an unsigned `alg: none` token is an alg problem first.
    if signature.is_empty() {
        return Err(Error::invalid(
            Code::BadSignature,
            "the token is not signed",
        ));
    }
    let kid = match raw.kid {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(malformed("the header's kid is not a string")),
    };
    Ok(Parts {
        header: Header { alg, kid },
        signing_input: &token[..second],
        payload,
        signature,
    })
}

pub(crate) fn decode_payload(payload: &str) -> Result<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| malformed("the payload is not base64url"))?;
    object(&bytes, "payload")
}

fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(json: &str) -> Option<String> {
        object(json.as_bytes(), "payload")
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn duplicate_member_names_are_refused_at_any_depth() {
        assert_eq!(
            code(r#"{"iss":"a","exp":1,"nested":{"a":[{"b":1}]}}"#),
            None
        );
        for doc in [
            r#"{"iss":"evil","iss":"good"}"#,
            r#"{"exp":1,"sub":"x","exp":2}"#,
            r#"{"realm_access":{"roles":["a"],"roles":["admin"]}}"#,
            r#"{"a":[{"x":1,"x":1}]}"#,
            r#"{"\u0069ss":"evil","iss":"good"}"#,
        ] {
            let text = code(doc).expect(doc);
            assert!(text.contains("names a member twice"), "{doc}: {text}");
        }
        assert!(code("[1]").unwrap().contains("not a JSON object"));
        assert!(code("{").unwrap().contains("not a JSON object"));
    }

    #[test]
    fn values_read_as_serde_json_reads_them() {
        let doc = r#"{"a":1,"b":-2,"c":1.5,"d":18446744073709551615,"e":null,"f":[true,"s"]}"#;
        let ours = Value::Object(object(doc.as_bytes(), "payload").unwrap());
        let theirs: Value = serde_json::from_str(doc).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn header_duplicates_use_the_same_parser() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","x":1,"x":2}"#);
        let token = format!("{header}.e30.c2ln");
        let e = split(&token, &[Algorithm::RS256]).err().unwrap();
        assert!(e.to_string().contains("names a member twice"), "{e}");
    }
}
