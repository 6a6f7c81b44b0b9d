//! Getting a JWKS over HTTP: discovery of its URI, the request, and the freshness it declares.

use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use crate::http::Http;

use super::key::{parse_jwks, KeySet};

pub struct Fetched {
    pub keys: KeySet,
    /// `Cache-Control: max-age`, when the server sent one.
    pub max_age: Option<Duration>,
}

/// Where the key set lives: given, or found through the issuer's discovery document.
pub struct Source {
    issuer: String,
    configured: Option<String>,
    discovered: Mutex<Option<String>>,
}

impl Source {
    pub fn new(issuer: &str, jwks_uri: Option<String>) -> Self {
        Source {
            issuer: issuer.trim_end_matches('/').to_string(),
            configured: jwks_uri,
            discovered: Mutex::new(None),
        }
    }

    async fn uri(&self, http: &Http) -> String {
        if let Some(uri) = &self.configured {
            return uri.clone();
        }
        if let Some(uri) = self.discovered.lock().clone() {
            return uri;
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        match get_json(http, &url).await {
            Ok(doc) => {
                if let Some(uri) = doc.get("jwks_uri").and_then(Value::as_str) {
                    *self.discovered.lock() = Some(uri.to_string());
                    return uri.to_string();
                }
                log::warn!("discovery document at {url} has no jwks_uri; using Keycloak's path");
            }
            // Not remembered: discovery is tried again on the next fetch.
            Err(e) => log::warn!("discovery at {url} failed ({e}); using Keycloak's path"),
        }
        format!("{}/protocol/openid-connect/certs", self.issuer)
    }

    pub async fn fetch(&self, http: &Http) -> Result<Fetched, String> {
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

async fn get_json(http: &Http, url: &str) -> Result<Value, String> {
    let response = http
        .client()
        .get(url)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    response.json::<Value>().await.map_err(|e| describe(&e))
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else if e.is_decode() {
        "body is not valid JSON".into()
    } else {
        // reqwest's Display includes the URL, never headers or bodies.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }
}

/// `max-age` of a Cache-Control header value.
pub fn max_age(header: &str) -> Option<Duration> {
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
