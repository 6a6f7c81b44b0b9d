//! The report-only rollout mode (docs/architecture.md, "Verification policy"): the audience
//! and issuer checks may be reported rather than enforced, so a service can see what it would
//! refuse before it does. A token that fails only those checks is accepted, counted
//! (`report_only_accepted`) and logged at most once per interval; every other check (signature,
//! algorithm, expiry, type, azp, required claims) is enforced as ever. Costs nothing unless a
//! token fails one of the two checks: the strict policy runs first, and only its refusal for a
//! reported check runs the relaxed one.

use serde_json::{Map, Value};

use crate::error::{Code, Error, Result};
use crate::throttle::{self, LogThrottle};

use super::policy::Policy;
use super::VerifierStats;

/// The checks that may be reported only, by their setting names.
pub(crate) const REPORTABLE: [&str; 2] = ["audience", "issuer"];

#[derive(Debug)]
pub(crate) struct ReportOnly {
    /// The policy without the reported checks: what a token must still pass.
    relaxed: Policy,
    audience: bool,
    issuer: bool,
    log: LogThrottle,
}

impl ReportOnly {
    /// From the names in `report_only` (each of `REPORTABLE`); None when there are none.
    pub(super) fn new(names: &[String], policy: &Policy) -> Result<Option<Self>> {
        if let Some(bad) = names.iter().find(|n| !REPORTABLE.contains(&n.as_str())) {
            return Err(Error::config(
                "report_only",
                format!(
                    "{bad:?} cannot be report-only; only \"audience\" and \"issuer\" can \
                     (signature, algorithm, expiry, type and azp are always enforced)"
                ),
            ));
        }
        if names.is_empty() {
            return Ok(None);
        }
        let audience = names.iter().any(|n| n == "audience");
        let issuer = names.iter().any(|n| n == "issuer");
        let mut relaxed = policy.clone();
        if audience {
            relaxed.audience.clear();
        }
        if issuer {
            relaxed.verify_issuer = false;
        }
        let checks: Vec<&str> = REPORTABLE
            .into_iter()
            .filter(|n| names.iter().any(|m| m == n))
            .collect();
        log::warn!(
            "report-only mode for the {} check(s) of issuer {}: tokens failing only them are \
             ACCEPTED, counted (stats()[\"report_only_accepted\"]) and logged; remove \
             report_only to enforce",
            checks.join(" and "),
            policy.issuer
        );
        Ok(Some(ReportOnly {
            relaxed,
            audience,
            issuer,
            log: LogThrottle::default(),
        }))
    }

    fn excuses(&self, error: &Error) -> bool {
        match error.code() {
            Some(Code::BadAudience) => self.audience,
            Some(Code::BadIssuer) => self.issuer,
            _ => false,
        }
    }

    /// After the strict policy refused `claims` with `error`: Ok when only reported checks
    /// fail (counted and logged), else the refusal.
    pub(super) fn recheck(
        &self,
        claims: &Map<String, Value>,
        now: u64,
        error: Error,
        stats: &VerifierStats,
    ) -> Result<()> {
        if !self.excuses(&error) {
            return Err(error);
        }
        self.relaxed.check(claims, now)?;
        stats.report_only_accepted.bump();
        if let Some(left_out) = self.log.admit() {
            // Debug formatting escapes control and format characters: a signed claim cannot
            // forge or hide a log line.
            let check = if error.code() == Some(Code::BadIssuer) {
                "issuer"
            } else {
                "audience"
            };
            log::warn!(
                "report-only: accepted a token failing the {check} check ({error}; iss={:?}, \
                 aud={}){}",
                claims.get("iss").and_then(Value::as_str).unwrap_or(""),
                audiences(claims.get("aud")),
                throttle::suffix(left_out)
            );
        }
        Ok(())
    }
}

fn audiences(aud: Option<&Value>) -> String {
    let names: Vec<String> = match aud {
        Some(Value::Array(items)) => items.iter().map(|v| format!("{:?}", text(v))).collect(),
        Some(v) => vec![format!("{:?}", text(v))],
        None => Vec::new(),
    };
    format!("[{}]", names.join(", "))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.chars().take(200).collect(),
        other => other.to_string().chars().take(200).collect(),
    }
}
