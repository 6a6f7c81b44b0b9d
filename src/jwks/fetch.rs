//! Getting a JWKS over HTTP: discovery of its URI, the request, and the freshness it declares.

use std::time::Duration;

use crate::discovery::{Discovery, Member};
use crate::http::{describe, Http};

use super::key::{parse_jwks, KeySet};

pub(super) struct Fetched {
    pub keys: KeySet,
    /// `Cache-Control: max-age`, when the server sent one.
    pub max_age: Option<Duration>,
}

/// Where the key set lives: given, or found through the issuer's discovery document.
pub(crate) struct Source {
    configured: Option<String>,
    discovery: Discovery,
}

impl Source {
    pub(crate) fn new(issuer: &str, jwks_uri: Option<String>) -> Self {
        Source {
            configured: jwks_uri,
            discovery: Discovery::new(issuer),
        }
    }

    async fn uri(&self, http: &Http) -> String {
        match &self.configured {
            Some(uri) => uri.clone(),
            None => self.discovery.locate(http, Member::JwksUri).await,
        }
    }

    pub(super) async fn fetch(&self, http: &Http) -> Result<Fetched, String> {
        let uri = self.uri(http).await;
        let response = http
            .client()
            .get(&uri)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {uri}: {}", describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {uri}: HTTP {status}"));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("GET {uri}: {}", describe(&e)))?;
        let keys = parse_jwks(&body).map_err(|e| format!("GET {uri}: {e}"))?;
        Ok(Fetched { keys, max_age })
    }
}

/// `max-age` of a Cache-Control header value.
pub(super) fn max_age(header: &str) -> Option<Duration> {
    header.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("max-age") {
            value
                .trim()
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("Max-Age = \"42\""), Some(Duration::from_secs(42)));
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=-1"), None);
    }
}
