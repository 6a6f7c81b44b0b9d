//! The `allowed_azp` list: exact names, and prefix patterns that end in `*` (`SmartEM_Agent_*`),
//! so per-workstation clients need no backend change when one is enrolled.
//!
//! The hot path asks the exact set first (one hash lookup), then the few prefixes in order.

use std::collections::HashSet;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AzpAllowlist {
    exact: HashSet<String>,
    prefixes: Vec<String>,
}

impl AzpAllowlist {
    /// Validates the entries: a `*` only as the last character, after at least one other, so a
    /// pattern always names a prefix. A bare `*` is refused rather than read as "any": leaving
    /// `allowed_azp` unset already says that, and a wildcard that silently switches the check off
    /// is the kind of setting nobody notices.
    pub(crate) fn parse(entries: &[String]) -> Result<Self> {
        if entries.is_empty() {
            return Err(Error::config(
                "allowed_azp",
                "is empty, which would reject every token; pass None to allow any azp",
            ));
        }
        let mut exact = HashSet::new();
        let mut prefixes = Vec::new();
        for entry in entries {
            match entry.find('*') {
                None => {
                    exact.insert(entry.clone());
                }
                Some(at) if at + 1 == entry.len() && at > 0 => {
                    let prefix = &entry[..at];
                    if !prefixes.iter().any(|p: &String| p == prefix) {
                        prefixes.push(prefix.to_string());
                    }
                }
                Some(_) if entry == "*" => {
                    return Err(Error::config(
                        "allowed_azp",
                        "a bare \"*\" is not accepted; leave allowed_azp unset to allow any azp",
                    ))
                }
                Some(_) => {
                    return Err(Error::config(
                        "allowed_azp",
                        format!(
                            "entry {entry:?}: \"*\" may only end a prefix pattern \
                             (like \"SmartEM_Agent_*\")"
                        ),
                    ))
                }
            }
        }
        Ok(Self { exact, prefixes })
    }

    pub(crate) fn allows(&self, azp: &str) -> bool {
        self.exact.contains(azp) || self.prefixes.iter().any(|p| azp.starts_with(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Result<AzpAllowlist> {
        AzpAllowlist::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    }

    fn setting_and_message(entries: &[&str]) -> (String, String) {
        let err = list(entries).unwrap_err();
        let message = err.to_string();
        match err {
            Error::Config { setting, .. } => (setting, message),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn exact_entries_match_only_themselves() {
        let l = list(&["SmartEM_User", "SmartEM_Agent"]).unwrap();
        assert!(l.allows("SmartEM_User"));
        assert!(l.allows("SmartEM_Agent"));
        assert!(!l.allows("SmartEM_Agent_ws01"));
        assert!(!l.allows("SmartEM_Use"));
        assert!(!l.allows(""));
    }

    #[test]
    fn a_trailing_star_is_a_prefix() {
        let l = list(&["SmartEM_User", "SmartEM_Agent_*"]).unwrap();
        assert!(l.allows("SmartEM_User"));
        assert!(l.allows("SmartEM_Agent_ws01"));
        // The prefix itself, with nothing after it, matches too: `*` is "any rest", empty included.
        assert!(l.allows("SmartEM_Agent_"));
        assert!(!l.allows("SmartEM_Agent"));
        assert!(!l.allows("smartem_agent_ws01"));
        assert!(!l.allows("X_SmartEM_Agent_ws01"));
    }

    #[test]
    fn misplaced_or_bare_stars_are_config_errors() {
        for bad in [
            &["*"][..],
            &["SmartEM_*_Agent"],
            &["*_Agent"],
            &["a**"],
            &["ok", "a*b*"],
        ] {
            let (setting, message) = setting_and_message(bad);
            assert_eq!(setting, "allowed_azp", "{bad:?}");
            assert!(message.contains("allowed_azp"), "{message}");
        }
        assert!(setting_and_message(&["*"]).1.contains("unset"));
        assert_eq!(setting_and_message(&[]).0, "allowed_azp");
    }
}
