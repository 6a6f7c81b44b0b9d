//! SmartEM's Keycloak conventions, in one place: the environment variables a service or an
//! agent is configured with, the default realm, and the `/realms/{realm}` shape of a Keycloak
//! issuer URL. The configs (`VerifierConfig::from_env`, `TokenClientConfig::from_env`) call in
//! here; nothing else in the core knows these names.

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::token::{AuthMethod, TokenClientConfig};
use crate::verify::azp::AzpAllowlist;
use crate::verify::VerifierConfig;

/// The Keycloak base URL, e.g. `https://auth.example.org` (required).
pub const URL: &str = "KEYCLOAK_URL";
/// The realm (default [`DEFAULT_REALM`]).
pub const REALM: &str = "KEYCLOAK_REALM";
/// The realm SmartEM deployments use when `KEYCLOAK_REALM` is unset.
pub const DEFAULT_REALM: &str = "dls";
/// Whether the verifier checks `iss` (default true).
pub const VERIFY_ISS: &str = "KEYCLOAK_VERIFY_ISS";
/// The `azp` values a verifier accepts (a comma list; `Prefix_*` entries are prefixes; unset: any).
pub const ALLOWED_AZP: &str = "KEYCLOAK_ALLOWED_AZP";
/// The audiences a verifier accepts (a comma list; unset: not checked).
pub const AUDIENCE: &str = "KEYCLOAK_AUDIENCE";
/// The key set's URL, when discovery is not to be used.
pub const JWKS_URL: &str = "KEYCLOAK_JWKS_URL";
/// The agent's client id, the first one set wins.
pub const CLIENT_ID: [&str; 2] = ["AGENT_CLIENT_ID", "KEYCLOAK_CLIENT_ID"];
/// The agent's client secret, the first one set wins.
pub const CLIENT_SECRET: [&str; 2] = ["AGENT_CLIENT_SECRET", "KEYCLOAK_CLIENT_SECRET"];
/// A PEM private key file; selects private_key_jwt.
pub const PRIVATE_KEY_FILE: &str = "AGENT_PRIVATE_KEY_FILE";

/// The issuer URL of `realm` on the Keycloak at `url` (a trailing `/` on `url` is ignored).
pub fn realm_issuer(url: &str, realm: &str) -> String {
    format!("{}/realms/{realm}", url.trim_end_matches('/'))
}

/// Reads variables through `var`, trimmed, with empty values treated as unset (on Windows
/// `set X=value ` keeps the trailing space).
struct Env<F>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn first(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| self.get(n))
    }

    fn issuer(&self) -> Result<String> {
        let url = self
            .get(URL)
            .ok_or_else(|| Error::config(URL, "is not set"))?;
        let realm = self.get(REALM).unwrap_or_else(|| DEFAULT_REALM.into());
        Ok(realm_issuer(&url, &realm))
    }
}

/// A verifier's settings from the environment (`VerifierConfig::from_env`).
pub(crate) fn verifier_config(var: impl Fn(&str) -> Option<String>) -> Result<VerifierConfig> {
    let env = Env(var);
    let mut config = VerifierConfig::new(env.issuer()?);
    if let Some(flag) = env.get(VERIFY_ISS) {
        config.verify_issuer =
            parse_bool(&flag).ok_or_else(|| Error::config(VERIFY_ISS, "must be true or false"))?;
    }
    config.allowed_azp = env.get(ALLOWED_AZP).map(|v| comma_list(&v));
    if let Some(entries) = &config.allowed_azp {
        // Checked here as well as at construction, so the error names the variable.
        AzpAllowlist::parse(entries).map_err(|e| match e {
            Error::Config { message, .. } => Error::config(ALLOWED_AZP, message),
            other => other,
        })?;
    }
    config.audience = env
        .get(AUDIENCE)
        .map(|v| comma_list(&v))
        .unwrap_or_default();
    config.jwks_uri = env.get(JWKS_URL);
    Ok(config)
}

/// An agent's token client settings from the environment (`TokenClientConfig::from_env`).
pub(crate) fn token_client_config(
    var: impl Fn(&str) -> Option<String>,
    require_credentials: bool,
) -> Result<TokenClientConfig> {
    let env = Env(var);
    let issuer = env.issuer()?;
    let client_id = env
        .first(&CLIENT_ID)
        .ok_or_else(|| Error::config(CLIENT_ID[0], format!("is not set (nor {})", CLIENT_ID[1])))?;
    let mut config = TokenClientConfig::new(client_id);
    config.issuer = Some(issuer);
    config.client_secret = env.first(&CLIENT_SECRET).map(Zeroizing::new);
    if let Some(path) = env.get(PRIVATE_KEY_FILE) {
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| Error::config(PRIVATE_KEY_FILE, format!("cannot read {path}: {e}")))?;
        config.private_key = Some(Zeroizing::new(pem));
        config.auth_method = Some(AuthMethod::PrivateKeyJwt);
    }
    if require_credentials && config.client_secret.is_none() && config.private_key.is_none() {
        return Err(Error::config(
            CLIENT_SECRET[0],
            format!(
                "is not set (nor {}), and no {PRIVATE_KEY_FILE} is given",
                CLIENT_SECRET[1]
            ),
        ));
    }
    Ok(config)
}

fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn realm_issuer_ignores_a_trailing_slash() {
        assert_eq!(realm_issuer("https://kc/", "dls"), "https://kc/realms/dls");
        assert_eq!(realm_issuer("https://kc", "r"), "https://kc/realms/r");
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn env_reads_agent_variables_first() {
        let config = TokenClientConfig::from_env(
            env(&[
                ("KEYCLOAK_URL", "http://kc:8080/"),
                ("AGENT_CLIENT_ID", "agent"),
                ("KEYCLOAK_CLIENT_ID", "other"),
                ("KEYCLOAK_CLIENT_SECRET", " s3cret "),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(config.issuer.as_deref(), Some("http://kc:8080/realms/dls"));
        assert_eq!(config.client_id, "agent");
        assert_eq!(
            config.client_secret.as_deref().map(String::as_str),
            Some("s3cret")
        );
    }

    #[test]
    fn env_names_the_missing_variable() {
        let missing = |pairs: &[(&str, &str)]| {
            setting(TokenClientConfig::from_env(env(pairs), true).unwrap_err())
        };
        assert_eq!(missing(&[]), "KEYCLOAK_URL");
        assert_eq!(missing(&[("KEYCLOAK_URL", "http://kc")]), "AGENT_CLIENT_ID");
        assert_eq!(
            missing(&[("KEYCLOAK_URL", "http://kc"), ("KEYCLOAK_CLIENT_ID", "a")]),
            "AGENT_CLIENT_SECRET"
        );
        assert_eq!(
            missing(&[
                ("KEYCLOAK_URL", "http://kc"),
                ("KEYCLOAK_CLIENT_ID", "a"),
                ("AGENT_PRIVATE_KEY_FILE", "/nonexistent/key.pem"),
            ]),
            "AGENT_PRIVATE_KEY_FILE"
        );
        let lenient = TokenClientConfig::from_env(
            env(&[("KEYCLOAK_URL", "http://kc"), ("KEYCLOAK_CLIENT_ID", "a")]),
            false,
        );
        assert!(lenient.is_ok());
    }

    #[test]
    fn env_allowed_azp_takes_prefix_patterns_and_names_the_variable() {
        let read = |azp: &str| {
            VerifierConfig::from_env(env(&[
                ("KEYCLOAK_URL", "http://kc"),
                ("KEYCLOAK_ALLOWED_AZP", azp),
            ]))
        };
        let config = read("SmartEM_User, SmartEM_Agent_*").unwrap();
        assert_eq!(
            config.allowed_azp.as_deref(),
            Some(&["SmartEM_User".to_string(), "SmartEM_Agent_*".to_string()][..])
        );
        assert_eq!(setting(read("*").unwrap_err()), "KEYCLOAK_ALLOWED_AZP");
        assert_eq!(
            setting(read("SmartEM_User,Smart*_Agent").unwrap_err()),
            "KEYCLOAK_ALLOWED_AZP"
        );
    }

    fn setting(e: Error) -> String {
        match e {
            Error::Config { setting, .. } => setting,
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}
