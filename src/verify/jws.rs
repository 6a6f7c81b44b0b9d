//! Splitting a compact JWS and reading its protected header. The signature itself is checked by
//! jsonwebtoken; this only finds the parts and refuses shapes we never accept.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Code, Error, Result};

/// Header parameters a verifier must understand if they are marked critical. We understand none
/// beyond the registered ones, and `b64: false` (RFC 7797) changes what is signed: refused too.
const UNDERSTOOD_CRIT: &[&str] = &[];

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
    b64: Option<Value>,
    enc: Option<Value>,
}

pub(super) struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

pub(super) struct Parts<'a> {
    pub header: Header,
    /// `base64(header) "." base64(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
}

fn malformed(detail: &str) -> Error {
    Error::invalid(Code::Malformed, detail)
}

pub(super) fn split<'a>(token: &'a str, allowed: &[Algorithm]) -> Result<Parts<'a>> {
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
    let raw: RawHeader = serde_json::from_slice(&header_json)
        .map_err(|_| malformed("the header is not a JSON object"))?;
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

pub(super) fn decode_payload(payload: &str) -> Result<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| malformed("the payload is not base64url"))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(malformed("the payload is not a JSON object")),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}
