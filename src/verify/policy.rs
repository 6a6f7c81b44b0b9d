//! The claim rules (docs/architecture.md, "Verification policy"). Run on every verify, cached or not.

use serde_json::{Map, Value};

use crate::error::{Code, Error, Result};

use super::azp::AzpAllowlist;

#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub issuer: String,
    pub verify_issuer: bool,
    pub audience: Vec<String>,
    pub allowed_azp: Option<AzpAllowlist>,
    pub leeway: u64,
    pub required_claims: Vec<String>,
    pub token_types: Option<Vec<String>>,
    /// Longest `exp - iat` accepted, in seconds; only checked when the token has an `iat`.
    pub max_lifetime: Option<u64>,
}

fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| Error::invalid(Code::BadClaim, format!("{name} is not a number"))),
        Some(_) => Err(Error::invalid(
            Code::BadClaim,
            format!("{name} must be a number"),
        )),
    }
}

impl Policy {
    /// `now` in seconds since the epoch.
    pub(crate) fn check(&self, claims: &Map<String, Value>, now: u64) -> Result<()> {
        for name in &self.required_claims {
            if !claims.contains_key(name) {
                return Err(Error::invalid(
                    Code::MissingClaim,
                    format!("the token has no {name} claim"),
                ));
            }
        }
        let now = now as f64;
        let leeway = self.leeway as f64;
        let exp = number(claims, "exp")?;
        let nbf = number(claims, "nbf")?;
        let iat = number(claims, "iat")?;
        for name in ["sub", "jti"] {
            if claims.get(name).is_some_and(|v| !v.is_string()) {
                return Err(Error::invalid(
                    Code::BadClaim,
                    format!("{name} must be a string"),
                ));
            }
        }
        if let Some(exp) = exp {
            if now >= exp + leeway {
                return Err(Error::invalid(Code::Expired, "the token has expired"));
            }
        }
        if nbf.is_some_and(|nbf| nbf > now + leeway) {
            return Err(Error::invalid(
                Code::NotYetValid,
                "the token is not valid yet (nbf)",
            ));
        }
        if iat.is_some_and(|iat| iat > now + leeway) {
            return Err(Error::invalid(
                Code::NotYetValid,
                "the token was issued in the future (iat)",
            ));
        }
        if let (Some(iat), Some(exp)) = (iat, exp) {
            if exp < iat {
                return Err(Error::invalid(
                    Code::BadClaim,
                    "the token expires before it was issued (exp < iat)",
                ));
            }
            if self.max_lifetime.is_some_and(|max| exp - iat > max as f64) {
                return Err(Error::invalid(
                    Code::LifetimeTooLong,
                    "the token's lifetime (exp - iat) exceeds max_lifetime",
                ));
            }
        }
        if self.verify_issuer && claims.get("iss").and_then(Value::as_str) != Some(&self.issuer) {
            return Err(Error::invalid(
                Code::BadIssuer,
                "the token's issuer is not trusted",
            ));
        }
        if !self.audience.is_empty() && !self.audience_matches(claims.get("aud")) {
            return Err(Error::invalid(
                Code::BadAudience,
                "the token is not meant for this audience",
            ));
        }
        if let Some(allowed) = &self.allowed_azp {
            let azp = claims.get("azp").and_then(Value::as_str);
            if !azp.is_some_and(|azp| allowed.allows(azp)) {
                return Err(Error::invalid(
                    Code::AzpNotAllowed,
                    "the token's authorized party is not permitted",
                ));
            }
        }
        if let (Some(types), Some(typ)) = (&self.token_types, claims.get("typ")) {
            if !typ.as_str().is_some_and(|t| types.iter().any(|a| a == t)) {
                return Err(Error::invalid(
                    Code::WrongTokenType,
                    "the token is not an access token",
                ));
            }
        }
        Ok(())
    }

    fn audience_matches(&self, aud: Option<&Value>) -> bool {
        let ours = |v: &Value| {
            v.as_str()
                .is_some_and(|a| self.audience.iter().any(|o| o == a))
        };
        match aud {
            Some(Value::Array(items)) => items.iter().any(ours),
            Some(v) => ours(v),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        Policy {
            issuer: "https://kc/realms/dls".into(),
            verify_issuer: true,
            audience: vec!["app".into()],
            allowed_azp: Some(AzpAllowlist::parse(&["SmartEM_User".into()]).unwrap()),
            leeway: 60,
            required_claims: vec!["exp".into()],
            token_types: Some(vec!["Bearer".into()]),
            max_lifetime: None,
        }
    }

    fn code(claims: Value) -> Option<&'static str> {
        let map = claims.as_object().unwrap().clone();
        policy()
            .check(&map, 1_000_000)
            .err()
            .map(|e| e.code().unwrap().as_str())
    }

    fn good() -> Value {
        json!({"iss": "https://kc/realms/dls", "aud": ["account", "app"], "azp": "SmartEM_User",
               "typ": "Bearer", "exp": 1_000_100, "iat": 999_990, "sub": "u1"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut c = good();
        c[key] = value;
        c
    }

    #[test]
    fn accepts_a_good_token_and_applies_leeway() {
        assert_eq!(code(good()), None);
        let early = |exp: u64| {
            let mut c = with("exp", json!(exp));
            c["iat"] = json!(999_000);
            code(c)
        };
        assert_eq!(early(999_950), None);
        assert_eq!(early(999_940), Some("expired"));
        assert_eq!(code(with("nbf", json!(1_000_060))), None);
        assert_eq!(code(with("nbf", json!(1_000_061))), Some("not_yet_valid"));
        assert_eq!(code(with("iat", json!(1_000_061))), Some("not_yet_valid"));
    }

    #[test]
    fn rejects_each_rule() {
        let mut missing = good();
        missing.as_object_mut().unwrap().remove("exp");
        assert_eq!(code(missing), Some("missing_claim"));
        assert_eq!(code(with("exp", json!("1000100"))), Some("bad_claim"));
        assert_eq!(code(with("sub", json!(5))), Some("bad_claim"));
        assert_eq!(
            code(with("iss", json!("https://kc/realms/dls.evil"))),
            Some("bad_issuer")
        );
        assert_eq!(code(with("aud", json!(["account"]))), Some("bad_audience"));
        assert_eq!(code(with("aud", json!("app"))), None);
        assert_eq!(code(with("azp", json!("other"))), Some("azp_not_allowed"));
        assert_eq!(code(with("typ", json!("ID"))), Some("wrong_token_type"));
        assert_eq!(
            code(with("typ", json!("Refresh"))),
            Some("wrong_token_type")
        );
    }

    #[test]
    fn relates_exp_to_iat() {
        // exp before iat is malformed whatever the ceiling (here none), even inside the leeway.
        let mut inverted = with("iat", json!(1_000_030));
        inverted["exp"] = json!(1_000_020);
        assert_eq!(code(inverted), Some("bad_claim"));
        let ceiling = |max: u64, claims: Value| {
            let p = Policy {
                max_lifetime: Some(max),
                ..policy()
            };
            p.check(claims.as_object().unwrap(), 1_000_000)
                .err()
                .map(|e| e.code().unwrap().as_str())
        };
        // good(): exp - iat = 110 s.
        assert_eq!(ceiling(110, good()), None);
        assert_eq!(ceiling(109, good()), Some("lifetime_too_long"));
        let mut no_iat = good();
        no_iat.as_object_mut().unwrap().remove("iat");
        assert_eq!(ceiling(1, no_iat), None);
    }
}
