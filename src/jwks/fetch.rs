//! Getting a JWKS over HTTP: discovery of its URI, the request, and the freshness it declares.

use std::time::Duration;

use crate::discovery::{Discovery, IssuerCheck, Member};
use crate::http::Http;

use super::key::{parse_jwks, KeySet};

pub(super) struct Fetched {
    pub keys: KeySet,
    /// `Cache-Control: max-age`, when the server sent one.
    pub max_age: Option<Duration>,
}

/// Where the key set is configured to be: a URL, or the issuer's discovery document, which is
/// trusted as `verify_issuer` says (`crate::discovery`).
#[derive(Debug, Clone)]
pub(crate) struct KeySetLocation {
    pub jwks_uri: Option<String>,
    pub verify_issuer: bool,
}

/// Where the key set lives: given, or found through the issuer's discovery document.
pub(crate) struct Source {
    configured: Option<String>,
    discovery: Discovery,
}

impl Source {
    pub(crate) fn new(issuer: &str, location: KeySetLocation) -> Self {
        let check = if location.verify_issuer {
            IssuerCheck::Exact
        } else {
            IssuerCheck::LogOnly
        };
        Source {
            configured: location.jwks_uri,
            discovery: Discovery::checking(issuer, check),
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
        // Redirects only within the URL's origin; the body capped at `max_response_bytes`.
        let response = http.get(&uri, "application/json").await?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {uri}: HTTP {status}"));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let body = http
            .body(response)
            .await
            .map_err(|e| format!("GET {uri}: {e}"))?;
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
