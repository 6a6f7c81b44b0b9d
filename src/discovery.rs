//! An issuer's discovery document (OpenID Connect Discovery 1.0, section 4): the one place that
//! asks an issuer where its key set (`jwks_uri`) and its token endpoint (`token_endpoint`) are.
//!
//! A member found is remembered for the owner's lifetime. A failed discovery (no answer, not
//! JSON, no usable member) is not remembered: it is tried again on the next request, and
//! Keycloak's own path under the issuer is used meanwhile, since a realm answers there even
//! when its discovery document cannot be read.

use parking_lot::Mutex;
use serde_json::Value;

use crate::http::{describe, Http};

const DOCUMENT_PATH: &str = "/.well-known/openid-configuration";

/// The members of the discovery document the core uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Member {
    /// Where the verifier's key set is.
    JwksUri,
    /// Where the token client asks for tokens.
    TokenEndpoint,
}

impl Member {
    fn name(self) -> &'static str {
        match self {
            Member::JwksUri => "jwks_uri",
            Member::TokenEndpoint => "token_endpoint",
        }
    }

    fn keycloak_path(self) -> &'static str {
        match self {
            Member::JwksUri => "/protocol/openid-connect/certs",
            Member::TokenEndpoint => "/protocol/openid-connect/token",
        }
    }

    /// The token client posts credentials to its endpoint: never to anything but http(s). The
    /// key set's URI has always been taken as given (the hardening issue may tighten it).
    fn accepts(self, url: &str) -> bool {
        match self {
            Member::JwksUri => true,
            Member::TokenEndpoint => url.starts_with("https://") || url.starts_with("http://"),
        }
    }
}

#[derive(Default)]
struct Found {
    jwks_uri: Option<String>,
    token_endpoint: Option<String>,
}

impl Found {
    fn slot(&mut self, member: Member) -> &mut Option<String> {
        match member {
            Member::JwksUri => &mut self.jwks_uri,
            Member::TokenEndpoint => &mut self.token_endpoint,
        }
    }
}

/// The paths below an issuer URL that a Keycloak realm serves: its discovery document, and
/// the fallbacks used when discovery fails. The DevIdP serves exactly these.
// Only the bindings hand these out (to the DevIdP and the SmartEM drop-in).
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) fn issuer_paths() -> [(&'static str, &'static str); 3] {
    [
        ("discovery", DOCUMENT_PATH),
        ("jwks", Member::JwksUri.keycloak_path()),
        ("token", Member::TokenEndpoint.keycloak_path()),
    ]
}

/// One issuer's endpoints, as its discovery document names them.
pub(crate) struct Discovery {
    issuer: String,
    found: Mutex<Found>,
}

impl Discovery {
    pub(crate) fn new(issuer: &str) -> Self {
        Discovery {
            issuer: issuer.trim_end_matches('/').to_string(),
            found: Mutex::new(Found::default()),
        }
    }

    /// `member`, if an earlier discovery found it.
    pub(crate) fn known(&self, member: Member) -> Option<String> {
        self.found.lock().slot(member).clone()
    }

    /// `member`'s URL: remembered, discovered now, or else Keycloak's path for it.
    pub(crate) async fn locate(&self, http: &Http, member: Member) -> String {
        if let Some(url) = self.known(member) {
            return url;
        }
        let document = format!("{}{DOCUMENT_PATH}", self.issuer);
        let fallback = format!("{}{}", self.issuer, member.keycloak_path());
        match self.discover(http, &document).await {
            Ok(()) => match self.known(member) {
                Some(url) => return url,
                None => log::warn!(
                    "discovery document at {document} has no usable {}; using Keycloak's path \
                     {fallback}",
                    member.name()
                ),
            },
            Err(e) => {
                log::warn!(
                    "discovery at {document} failed ({e}); using Keycloak's path {fallback}"
                );
            }
        }
        fallback
    }

    /// Reads the document and remembers every member it names usably.
    async fn discover(&self, http: &Http, document: &str) -> Result<(), String> {
        // Room for the hardening issue, which checks here, before anything is remembered: the
        // document's `issuer` equals `self.issuer`; the request follows no redirect; the body
        // is capped at `max_response_bytes`.
        let doc = get_json(http, document).await?;
        let mut found = self.found.lock();
        for member in [Member::JwksUri, Member::TokenEndpoint] {
            if let Some(url) = doc
                .get(member.name())
                .and_then(Value::as_str)
                .filter(|url| member.accepts(url))
            {
                *found.slot(member) = Some(url.to_string());
            }
        }
        Ok(())
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
