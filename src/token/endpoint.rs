//! One token request over HTTP and what its answer means: the token, or a failure classified as
//! retryable (network, timeout, 5xx, 429) or final (the OAuth errors of RFC 6749 5.2), with
//! bounded retries for callers that have no token to fall back on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;
use url::form_urlencoded;
use zeroize::Zeroizing;

use crate::discovery::{Discovery, Member};
use crate::error::{Error, TokenRequestFailure};
use crate::http::{self, describe, BodyError, Http};

use super::auth::{ClientAuth, Redactor};
use super::exchange::{Exchange, ACCESS_TOKEN_TYPE};
use super::retry;
use super::stats::TokenStats;

/// A token as the endpoint issued it.
pub(crate) struct Issued {
    pub access_token: Zeroizing<String>,
    pub expires_in: Option<f64>,
    pub received_at: Instant,
    pub received_unix: f64,
}

/// A failed request, and how long the server asked us to wait.
#[derive(Debug, Clone)]
pub(crate) struct Failed {
    pub failure: TokenRequestFailure,
    pub retry_after: Option<Duration>,
}

impl Failed {
    fn new(
        status: Option<u16>,
        error: Option<String>,
        description: String,
        retryable: bool,
    ) -> Self {
        Failed {
            failure: TokenRequestFailure {
                status,
                error,
                description,
                retryable,
                transport: None,
            },
            retry_after: None,
        }
    }

    pub(super) fn into_error(self) -> Error {
        Error::TokenRequest(self.failure)
    }
}

/// What a request asks for: the client's own token, or a token exchange.
pub(super) enum Grant<'a> {
    ClientCredentials,
    Exchange(&'a Exchange<'a>),
}

pub(super) struct Endpoint {
    http: Http,
    configured: Option<String>,
    /// Where `configured` is absent, the token URL comes from here (validation requires one).
    discovery: Option<Discovery>,
    auth: ClientAuth,
    scope: Option<String>,
    audience: Option<String>,
    stats: Arc<TokenStats>,
}

impl Endpoint {
    pub(super) fn new(
        http: Http,
        token_url: Option<String>,
        issuer: Option<String>,
        auth: ClientAuth,
        scope: Option<String>,
        audience: Option<String>,
        stats: Arc<TokenStats>,
    ) -> Self {
        Endpoint {
            http,
            configured: token_url,
            discovery: issuer.map(|issuer| Discovery::new(&issuer)),
            auth,
            scope,
            audience,
            stats,
        }
    }

    pub(super) fn auth(&self) -> &ClientAuth {
        &self.auth
    }

    /// The token URL, if known without a request (configured, or discovered already).
    pub(crate) fn known_url(&self) -> Option<String> {
        self.configured.clone().or_else(|| {
            self.discovery
                .as_ref()
                .and_then(|d| d.known(Member::TokenEndpoint))
        })
    }

    async fn url(&self) -> String {
        match (&self.configured, &self.discovery) {
            (Some(url), _) => url.clone(),
            (None, Some(discovery)) => discovery.locate(&self.http, Member::TokenEndpoint).await,
            (None, None) => unreachable!("validation requires token_url or issuer"),
        }
    }

    /// Up to `max_attempts` requests, pausing with backoff between retryable failures, all within
    /// `DEADLINE_TIMEOUTS` request timeouts. Every attempt gets the whole timeout (a retry that
    /// would not fit is not made), so its failure says which phase ran out: a cut-short attempt
    /// would call a hanging connect a plain timeout.
    pub(super) async fn request(
        &self,
        max_attempts: u32,
        grant: &Grant<'_>,
    ) -> Result<Issued, Failed> {
        let timeout = self.http.timeout();
        let deadline = crate::clock::instant() + timeout * retry::DEADLINE_TIMEOUTS;
        let mut attempt = 1;
        loop {
            let result = self.attempt(timeout, grant).await;
            let failed = match result {
                Ok(issued) => return Ok(issued),
                Err(failed) => failed,
            };
            if !failed.failure.retryable || attempt >= max_attempts {
                return Err(failed);
            }
            let pause = match failed.retry_after {
                Some(asked) => asked.max(retry::delay(attempt)),
                None => retry::delay(attempt),
            };
            if crate::clock::instant() + pause + timeout > deadline {
                return Err(failed);
            }
            log::warn!(
                "token request {attempt}/{max_attempts} for {} failed, retrying in {:.1}s: {}",
                self.auth.client_id(),
                pause.as_secs_f64(),
                failed.failure.description
            );
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, timeout: Duration, grant: &Grant<'_>) -> Result<Issued, Failed> {
        self.stats.token_requests.bump();
        let result = self.send(timeout, grant).await;
        if result.is_err() {
            self.stats.token_errors.bump();
        }
        result
    }

    async fn send(&self, timeout: Duration, grant: &Grant<'_>) -> Result<Issued, Failed> {
        let url = self.url().await;
        let parts = self.auth.parts(&url).map_err(|_| {
            Failed::new(None, None, "cannot sign the client assertion".into(), false)
        })?;
        // Built now: the answer is read against this request's own assertion.
        let (redactor, issued_type) = match grant {
            Grant::ClientCredentials => (self.auth.redactor(Some(&parts), None), None),
            Grant::Exchange(exchange) => (
                self.auth
                    .redactor(Some(&parts), Some(exchange.subject_token())),
                Some(exchange.expected_token_type()),
            ),
        };
        let mut body = Zeroizing::new(String::new());
        {
            let mut form = form_urlencoded::Serializer::new(&mut *body);
            match grant {
                Grant::ClientCredentials => {
                    form.append_pair("grant_type", "client_credentials");
                    if let Some(scope) = &self.scope {
                        form.append_pair("scope", scope);
                    }
                    if let Some(audience) = &self.audience {
                        form.append_pair("audience", audience);
                    }
                }
                Grant::Exchange(exchange) => exchange.append_to(&mut form),
            }
            for (name, value) in &parts.form {
                form.append_pair(name, value);
            }
            form.finish();
        }
        log::debug!(
            "token request: POST {url} (client {}, {})",
            self.auth.client_id(),
            self.auth.method()
        );
        let mut request = self
            .http
            .client()
            .post(&url)
            .timeout(timeout)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json");
        if let Some(header) = parts.authorization.clone() {
            request = request.header(AUTHORIZATION, header);
        }
        // reqwest owns (and frees, unwiped) this copy of the body; ours is wiped on drop.
        let response = request
            .body(body.as_bytes().to_vec())
            .send()
            .await
            .map_err(|e| self.transport(&url, &e))?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            // The client follows no redirect (`crate::http`): the form and the Authorization
            // header went to `url` only. Following would re-send them where the answer says.
            let description = self.auth.redact(&format!(
                "HTTP {status}: the token endpoint answered with a redirect, which a request \
                 carrying credentials never follows (POST {url})"
            ));
            return Err(Failed::new(Some(status), None, description, false));
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, crate::clock::system_time()));
        let bytes = self.http.body(response).await.map_err(|e| match e {
            BodyError::Read(e) => self.transport(&url, &e),
            // A server that sends this much is broken or hostile: asking again would not help.
            too_large @ BodyError::TooLarge(_) => Failed::new(
                Some(status),
                None,
                self.auth.redact(&format!("{too_large} (POST {url})")),
                false,
            ),
        })?;
        let received_at = crate::clock::instant();
        let received_unix = crate::clock::unix_seconds() as f64;
        match classify_grant(status, &bytes, &redactor, issued_type) {
            Ok((access_token, expires_in)) => Ok(Issued {
                access_token,
                expires_in,
                received_at,
                received_unix,
            }),
            Err(mut failed) => {
                failed.retry_after = retry_after;
                failed.failure.description =
                    redactor.redact(&format!("{} (POST {url})", failed.failure.description));
                Err(failed)
            }
        }
    }

    fn transport(&self, url: &str, e: &reqwest::Error) -> Failed {
        let description = self.auth.redact(&format!("POST {url}: {}", describe(e)));
        let mut failed = Failed::new(None, None, description, true);
        failed.failure.transport = Some(http::transport(e));
        failed
    }
}

/// An OAuth `error` code is a short printable-ASCII string (RFC 6749 5.2); anything else from
/// the body is not repeated. A credential the server echoed in it is cut out before the code is
/// judged, so `.error` never carries one.
fn error_code(doc: &Value, redactor: &Redactor) -> Option<String> {
    let code = redactor.redact(doc.get("error")?.as_str()?);
    let printable = code
        .bytes()
        .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\');
    (printable && !code.is_empty() && code.len() <= 64).then_some(code)
}

/// What is repeated of a free-text member of the answer.
const MAX_REPEATED_CHARS: usize = 200;

/// Reads an answer of the token endpoint: the token and its `expires_in`, or the failure. Every
/// text taken from the answer passes `redactor` before it is cut or formatted.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn classify(
    status: u16,
    body: &[u8],
    redactor: &Redactor,
) -> Result<(Zeroizing<String>, Option<f64>), Failed> {
    classify_grant(status, body, redactor, None)
}

/// `classify`; with `issued_type`, the answer to a token exchange, which must have issued that
/// type (RFC 8693's `issued_token_type`, when the IdP sends it; Keycloak does). A type other
/// than an access token comes back with RFC 8693's `token_type` `N_A`.
fn classify_grant(
    status: u16,
    body: &[u8],
    redactor: &Redactor,
    issued_type: Option<&str>,
) -> Result<(Zeroizing<String>, Option<f64>), Failed> {
    let any_token_type = issued_type.is_some_and(|t| t != ACCESS_TOKEN_TYPE);
    let doc: Option<Value> = serde_json::from_slice(body).ok();
    let object = doc.as_ref().filter(|d| d.is_object());
    if (200..300).contains(&status) {
        let Some(doc) = object else {
            // Typically a proxy's error page: not the IdP refusing us, so worth another try.
            return Err(Failed::new(
                Some(status),
                None,
                format!("HTTP {status}, but the body is not a JSON token response"),
                true,
            ));
        };
        if let Some(code) = error_code(doc, redactor) {
            return Err(Failed::new(
                Some(status),
                Some(code.clone()),
                format!("{code} (HTTP {status})"),
                false,
            ));
        }
        let token = doc
            .get("access_token")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if token.is_empty() {
            return Err(Failed::new(
                Some(status),
                None,
                "the response has no access_token".into(),
                false,
            ));
        }
        if let (Some(wanted), Some(issued)) = (
            issued_type,
            doc.get("issued_token_type").and_then(Value::as_str),
        ) {
            // Handing downstream an ID token where an access token was asked for is a mistake.
            if issued != wanted {
                return Err(Failed::new(
                    Some(status),
                    None,
                    format!(
                        "issued_token_type {:?} is not the requested {wanted:?}",
                        redactor.field(issued, MAX_REPEATED_CHARS)
                    ),
                    false,
                ));
            }
        }
        if let Some(kind) = doc.get("token_type").and_then(Value::as_str) {
            let other = any_token_type && kind.eq_ignore_ascii_case("n_a");
            if !kind.eq_ignore_ascii_case("bearer") && !other {
                return Err(Failed::new(
                    Some(status),
                    None,
                    format!(
                        "token_type {:?} is not Bearer",
                        redactor.field(kind, MAX_REPEATED_CHARS)
                    ),
                    false,
                ));
            }
        }
        let expires_in = match doc.get("expires_in") {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|s| s.is_finite() && *s > 0.0);
        return Ok((Zeroizing::new(token.to_string()), expires_in));
    }
    let code = object.and_then(|d| error_code(d, redactor));
    let transient = matches!(
        code.as_deref(),
        Some("temporarily_unavailable" | "server_error")
    );
    let retryable = status == 408 || status == 429 || status >= 500 || transient;
    let description = match (
        &code,
        object.and_then(|d| d.get("error_description")?.as_str()),
    ) {
        (Some(code), Some(text)) => format!(
            "{code}: {} (HTTP {status})",
            redactor.field(text, MAX_REPEATED_CHARS)
        ),
        (Some(code), None) => format!("{code} (HTTP {status})"),
        (None, _) => format!("HTTP {status}"),
    };
    Err(Failed::new(Some(status), code, description, retryable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails(status: u16, body: &str) -> TokenRequestFailure {
        classify(status, body.as_bytes(), &Redactor::none())
            .expect_err("a failure")
            .failure
    }

    #[test]
    fn reads_a_token_response() {
        let (token, expires_in) = classify(
            200,
            br#"{"access_token":"abc","token_type":"bearer","expires_in":"300"}"#,
            &Redactor::none(),
        )
        .unwrap();
        assert_eq!(token.as_str(), "abc");
        assert_eq!(expires_in, Some(300.0));
        let (_, expires_in) = classify(
            200,
            br#"{"access_token":"abc","expires_in":0}"#,
            &Redactor::none(),
        )
        .unwrap();
        assert_eq!(expires_in, None);
    }

    #[test]
    fn oauth_errors_are_final() {
        for code in [
            "invalid_client",
            "unauthorized_client",
            "invalid_grant",
            "invalid_scope",
        ] {
            let f = fails(
                400,
                &format!(r#"{{"error":"{code}","error_description":"no"}}"#),
            );
            assert_eq!(f.error.as_deref(), Some(code));
            assert_eq!(f.status, Some(400));
            assert!(!f.retryable);
            assert!(f.description.starts_with(code));
        }
        let f = fails(401, r#"{"error":"invalid_client"}"#);
        assert!(!f.retryable && f.error.as_deref() == Some("invalid_client"));
        assert!(!fails(404, "<html>").retryable);
        assert!(!fails(200, r#"{"token_type":"Bearer"}"#).retryable);
        assert!(!fails(200, r#"{"access_token":"a","token_type":"DPoP"}"#).retryable);
    }

    #[test]
    fn transient_failures_are_retryable() {
        for status in [500, 502, 503, 504, 429, 408] {
            let f = fails(status, "oops");
            assert!(f.retryable, "{status}");
            assert_eq!(f.status, Some(status));
            assert_eq!(f.error, None);
        }
        assert!(fails(400, r#"{"error":"temporarily_unavailable"}"#).retryable);
        assert!(fails(200, "<html>garbage").retryable);
    }

    #[test]
    fn odd_error_codes_are_not_repeated() {
        let f = fails(400, "{\"error\":\"bad\\\"quote\"}");
        assert_eq!(f.error, None);
    }

    #[test]
    fn echoed_credentials_leave_no_trace_in_any_field() {
        use super::super::auth::{ClientAuth, Credentials};
        let secret = "S3cret-0123456789-abcdefghij";
        let auth = ClientAuth::new(
            "agent".into(),
            Credentials::SecretPost(Zeroizing::new(secret.into())),
        );
        let redactor = auth.redactor(None, None);
        let fails = |status: u16, doc: Value| {
            classify(status, doc.to_string().as_bytes(), &redactor)
                .expect_err("a failure")
                .failure
        };
        // The secret as the `error` code itself, and inside one.
        for code in [secret.to_string(), format!("invalid_client:{secret}")] {
            let f = fails(401, serde_json::json!({"error": code}));
            let shown = format!("{:?} {}", f.error, f.description);
            assert!(!shown.contains("0123456789"), "{shown}");
        }
        // The secret straddling the 200-character cut of error_description.
        let text = format!("{}{secret} and more", "x".repeat(MAX_REPEATED_CHARS - 10));
        let f = fails(
            400,
            serde_json::json!({"error": "invalid_request", "error_description": text}),
        );
        assert!(!f.description.contains("S3cret-0123"), "{}", f.description);
        assert!(f.description.contains("[redact"));
        // Echoed as the token type of a 200.
        let f = fails(
            200,
            serde_json::json!({"access_token": "a", "token_type": secret}),
        );
        assert!(!f.description.contains(secret));
    }
}
