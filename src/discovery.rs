//! An issuer's discovery document (OpenID Connect Discovery 1.0, section 4): the one place that
//! asks an issuer where its key set (`jwks_uri`) and its token endpoint (`token_endpoint`) are.
//!
//! A member found is remembered for the owner's lifetime. A failed discovery (no answer, not
//! JSON, no usable member) is not remembered: it is tried again on the next request, and
//! Keycloak's own path under the issuer is used meanwhile, since a realm answers there even
//! when its discovery document cannot be read.
//!
//! What a document must be before anything in it is used:
//! - its `issuer` equals the issuer it was fetched for, exactly (section 4.3), when the owner
//!   checks issuers ([`IssuerCheck::Exact`]: a verifier with `verify_issuer`, and always the
//!   token client, which sends credentials where the document points); else the document is not
//!   used (a failed discovery, logged). A verifier without `verify_issuer`
//!   ([`IssuerCheck::LogOnly`]) uses it and logs which issuer it named;
//! - it was fetched through `Http::get` (redirects within the issuer's origin only) and is no
//!   longer than `max_response_bytes`;
//! - a URL it names is https (any host: some IdPs serve keys from another origin), or plain
//!   http on the issuer's own origin only.

use parking_lot::Mutex;
use serde_json::Value;

use crate::http::{same_origin, Http};

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
}

/// Whether a URL the document at `issuer` names may be used: https anywhere, plain http only on
/// the issuer's own origin (a document served over http names nothing off its host).
fn accepts(issuer: &str, url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.scheme() {
        "https" => parsed.has_host(),
        "http" => same_origin(issuer, url),
        _ => false,
    }
}

/// How a discovery document's `issuer` is checked against the issuer it was fetched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IssuerCheck {
    /// It must be equal, else the document is not used.
    Exact,
    /// A different one is logged, and the document used (`verify_issuer` off).
    LogOnly,
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
    check: IssuerCheck,
    found: Mutex<Found>,
}

impl Discovery {
    /// Discovery for `issuer`, whose documents must name it exactly.
    pub(crate) fn new(issuer: &str) -> Self {
        Discovery::checking(issuer, IssuerCheck::Exact)
    }

    pub(crate) fn checking(issuer: &str, check: IssuerCheck) -> Self {
        Discovery {
            issuer: issuer.trim_end_matches('/').to_string(),
            check,
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

    /// Reads the document and, once it passes the checks of the module comment, remembers every
    /// member it names usably.
    async fn discover(&self, http: &Http, document: &str) -> Result<(), String> {
        let doc = get_json(http, document).await?;
        self.check_issuer(&doc)?;
        let mut found = self.found.lock();
        for member in [Member::JwksUri, Member::TokenEndpoint] {
            let Some(url) = doc.get(member.name()).and_then(Value::as_str) else {
                continue;
            };
            if accepts(&self.issuer, url) {
                *found.slot(member) = Some(url.to_string());
            } else {
                log::warn!(
                    "discovery document at {document}: {} {url:?} is not used: a URL it names \
                     must be https, or http on the issuer's own origin",
                    member.name()
                );
            }
        }
        Ok(())
    }

    /// OpenID Connect Discovery 1.0, section 4.3: the document names the issuer it was fetched
    /// for.
    fn check_issuer(&self, doc: &Value) -> Result<(), String> {
        let named = doc.get("issuer").and_then(Value::as_str);
        if named == Some(self.issuer.as_str()) {
            return Ok(());
        }
        let named = match named {
            Some(issuer) => format!("{issuer:?}"),
            None => "no issuer".to_string(),
        };
        match self.check {
            IssuerCheck::Exact => Err(format!(
                "the document names {named}, not the issuer {:?} it was fetched for",
                self.issuer
            )),
            IssuerCheck::LogOnly => {
                // Once per verifier (a document used is remembered), so a warning is not noise.
                log::warn!(
                    "discovery document for {:?} names {named}; used, since verify_issuer is off",
                    self.issuer
                );
                Ok(())
            }
        }
    }
}

async fn get_json(http: &Http, url: &str) -> Result<Value, String> {
    let response = http.get(url, "application/json").await?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = http.body(response).await.map_err(|e| e.to_string())?;
    let doc: Value =
        serde_json::from_slice(&body).map_err(|_| "body is not valid JSON".to_string())?;
    if doc.is_object() {
        Ok(doc)
    } else {
        Err("body is not a JSON object".to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex as Slot;

    use super::*;
    use crate::http::HttpConfig;
    use crate::testutil::{respond, RawServer};

    #[test]
    fn named_urls_are_https_or_on_the_issuers_own_http_origin() {
        let http_issuer = "http://idp:8080/realms/r";
        assert!(accepts(http_issuer, "http://idp:8080/keys"));
        assert!(accepts(http_issuer, "https://keys.example.org/jwks"));
        assert!(!accepts(http_issuer, "http://idp:8081/keys"));
        assert!(!accepts(http_issuer, "http://evil/keys"));
        assert!(!accepts(http_issuer, "file:///etc/passwd"));
        assert!(!accepts(http_issuer, "/relative"));
        let https_issuer = "https://idp/realms/r";
        assert!(accepts(https_issuer, "https://cdn.example.org/jwks"));
        assert!(
            !accepts(https_issuer, "http://idp/keys"),
            "never down to http"
        );
    }

    /// A server whose discovery document names `issuer` (given the server's base) and a key set
    /// on the same server.
    fn server(issuer: fn(&str) -> String) -> (RawServer, String) {
        let base = Arc::new(Slot::new(String::new()));
        let shared = base.clone();
        let server = RawServer::start(move |_, s| {
            let base = shared.lock().clone();
            let doc = format!(
                r#"{{"issuer":"{}","jwks_uri":"{base}/named/keys"}}"#,
                issuer(&base)
            );
            respond(s, 200, &[], &doc);
        });
        *base.lock() = server.base.clone();
        let issuer = format!("{}/realms/r", server.base);
        (server, issuer)
    }

    #[tokio::test]
    async fn the_document_must_name_the_issuer_it_was_fetched_for() {
        let http = Http::new(HttpConfig::default()).unwrap();
        let (_good, issuer) = server(|base| format!("{base}/realms/r"));
        let found = Discovery::new(&issuer).locate(&http, Member::JwksUri).await;
        assert!(found.ends_with("/named/keys"), "{found}");

        for named in [
            (|base: &str| format!("{base}/realms/other")) as fn(&str) -> String,
            |base| format!("{base}/realms/r/"),
            |_| "https://evil.example.org/realms/r".into(),
        ] {
            let (_server, issuer) = server(named);
            let exact = Discovery::new(&issuer);
            let found = exact.locate(&http, Member::JwksUri).await;
            assert_eq!(found, format!("{issuer}/protocol/openid-connect/certs"));
            assert_eq!(exact.known(Member::JwksUri), None, "not remembered");
            // verify_issuer off: used (and logged).
            let lenient = Discovery::checking(&issuer, IssuerCheck::LogOnly);
            let found = lenient.locate(&http, Member::JwksUri).await;
            assert!(found.ends_with("/named/keys"), "{found}");
        }
    }
}
