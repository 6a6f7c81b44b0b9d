//! The one HTTP client setup: rustls with the OS trust store (plus an optional CA bundle),
//! a timeout on every request, `User-Agent: tokenward/<version>`, the caller's extra headers,
//! and a proxy: the `proxy` setting, else `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` with
//! `NO_PROXY` (reqwest's system proxy, which also reads macOS's and Windows' settings).
//! A TLS failure names its reason (`describe`): a certificate refused says why.
//!
//! What every request to an IdP shares, and what it refuses:
//! - the client itself follows no redirect. A POST that carries credentials (the token
//!   endpoint) sees a 3xx as its answer; a GET (`Http::get`: key sets, discovery) follows at
//!   most [`MAX_REDIRECTS`] redirects, each within the URL's own origin (scheme, host and port),
//!   so never from https to http. A redirect to another origin is a failed fetch, logged with
//!   both origins.
//! - a body is read chunk by chunk and given up as soon as it passes `max_response_bytes`
//!   (`Http::body`): what a server sends beyond the limit is never held in memory.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use parking_lot::Mutex;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, LOCATION};
use url::Url;

use crate::error::{Error, Result, Transport};

/// The default of `max_response_bytes`: 1 MiB, far above any real key set, discovery document
/// or token response.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Redirects a GET follows, all within the first URL's origin.
pub(crate) const MAX_REDIRECTS: usize = 3;

#[derive(Debug, Clone)]
pub(crate) struct HttpConfig {
    pub timeout: Duration,
    pub ca_bundle: Option<PathBuf>,
    /// A response body longer than this is refused while it is read.
    pub max_response_bytes: usize,
    /// An http(s) proxy URL for every request; None: the environment's.
    pub proxy: Option<String>,
    /// Headers added to every request (not Authorization, Host or the framing ones).
    pub headers: Vec<(String, String)>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(5),
            ca_bundle: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            proxy: None,
            headers: Vec::new(),
        }
    }
}

/// Headers a caller may not set: the credentials and the request's own framing, which the
/// client owns.
const RESERVED_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
];

fn proxy(url: &str) -> Result<reqwest::Proxy> {
    // The URL may carry credentials (user:password@): errors never repeat it.
    let usable = Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    let proxy = usable
        .and_then(|u| reqwest::Proxy::all(u).ok())
        .ok_or_else(|| {
            Error::config(
                "proxy",
                "must be an http(s) URL such as http://proxy.example:3128",
            )
        })?;
    Ok(proxy.no_proxy(reqwest::NoProxy::from_env()))
}

fn header_map(headers: &[(String, String)]) -> Result<reqwest::header::HeaderMap> {
    use reqwest::header::{HeaderName, HeaderValue};
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::config("headers", format!("{name:?} is not a header name")))?;
        if RESERVED_HEADERS.contains(&parsed.as_str()) {
            return Err(Error::config(
                "headers",
                format!("{name} cannot be set: tokenward sets it"),
            ));
        }
        // The value is never repeated: it may be an API key.
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            Error::config(
                "headers",
                format!("the value of {name} is not a header value"),
            )
        })?;
        value.set_sensitive(true);
        map.insert(parsed, value);
    }
    Ok(map)
}

/// `max_response_bytes` from a setting: a positive number of bytes.
pub(crate) fn max_response_bytes(value: i64) -> Result<usize> {
    usize::try_from(value)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| Error::config("max_response_bytes", "must be a number of bytes > 0"))
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Longer than `max_response_bytes` (the limit): the server is broken or hostile, and
    /// asking again would not help.
    TooLarge(usize),
    /// The connection failed or timed out while reading.
    Read(reqwest::Error),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge(limit) => write!(
                f,
                "the response body is larger than max_response_bytes ({limit} bytes)"
            ),
            BodyError::Read(e) if e.is_timeout() => f.write_str("timed out reading the body"),
            // `describe` would call a broken chunked framing "not valid JSON".
            BodyError::Read(_) => f.write_str("the connection failed while reading the body"),
        }
    }
}

/// The origin of a URL as the redirect rule compares it: scheme, host and port (the default
/// port of the scheme when none is given).
pub(crate) fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Whether `a` and `b` (absolute URLs) share an origin. An unparsable URL shares none.
pub(crate) fn same_origin(a: &str, b: &str) -> bool {
    match (Url::parse(a), Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin().is_tuple() && a.origin() == b.origin(),
        _ => false,
    }
}

/// A client that is rebuilt after fork: its pooled connections belong to the parent's runtime.
pub(crate) struct Http {
    config: HttpConfig,
    extra_roots: Vec<reqwest::Certificate>,
    proxy: Option<reqwest::Proxy>,
    headers: reqwest::header::HeaderMap,
    client: Mutex<Option<(u32, reqwest::Client)>>,
}

impl Http {
    pub(crate) fn new(config: HttpConfig) -> Result<Self> {
        if config.timeout.is_zero() {
            return Err(Error::config("http_timeout", "must be greater than zero"));
        }
        let extra_roots = match &config.ca_bundle {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::config("ca_bundle", format!("cannot read {}: {e}", path.display()))
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    Error::config(
                        "ca_bundle",
                        format!("{} is not a PEM bundle: {e}", path.display()),
                    )
                })?;
                if certs.is_empty() {
                    return Err(Error::config(
                        "ca_bundle",
                        format!("{} holds no certificate", path.display()),
                    ));
                }
                certs
            }
        };
        let proxy = config.proxy.as_deref().map(proxy).transpose()?;
        let headers = header_map(&config.headers)?;
        let http = Http {
            config,
            extra_roots,
            proxy,
            headers,
            client: Mutex::new(None),
        };
        http.build()?;
        Ok(http)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.config.timeout
    }

    /// A GET of `url` that follows redirects only within its origin, at most [`MAX_REDIRECTS`]
    /// of them. The answer is the first response that is not a redirect, whatever its status.
    /// Errors name the URL (a GET to an IdP carries no credential, so the URL is safe to show).
    pub(crate) async fn get(
        &self,
        url: &str,
        accept: &str,
    ) -> std::result::Result<reqwest::Response, String> {
        let mut current = Url::parse(url).map_err(|e| format!("GET {url}: not a URL ({e})"))?;
        let client = self.client();
        for hop in 0..=MAX_REDIRECTS {
            let response = client
                .get(current.clone())
                .header(ACCEPT, accept)
                .send()
                .await
                .map_err(|e| format!("GET {current}: {}", describe(&e)))?;
            let status = response.status();
            let location = response.headers().get(LOCATION);
            let (true, Some(location)) = (is_followed(status), location) else {
                return Ok(response);
            };
            let next = location
                .to_str()
                .ok()
                .and_then(|l| current.join(l).ok())
                .ok_or_else(|| format!("GET {current}: HTTP {status} with an unusable Location"))?;
            if next.origin() != current.origin() {
                let message = format!(
                    "GET {current}: HTTP {status} redirects from origin {} to another origin, {}; \
                     redirects are followed only within one origin",
                    origin(&current),
                    origin(&next)
                );
                log::warn!("{message}");
                return Err(message);
            }
            if hop == MAX_REDIRECTS {
                break;
            }
            log::debug!("GET {current}: HTTP {status}, following to {next}");
            current = next;
        }
        Err(format!("GET {url}: more than {MAX_REDIRECTS} redirects"))
    }

    /// The body of `response`, read chunk by chunk and refused as soon as it is longer than
    /// `max_response_bytes` (or announces so in `Content-Length`): nothing beyond the limit is
    /// read into memory. Dropping the response then closes the connection.
    pub(crate) async fn body(
        &self,
        mut response: reqwest::Response,
    ) -> std::result::Result<Vec<u8>, BodyError> {
        let limit = self.config.max_response_bytes;
        let announced = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(BodyError::TooLarge(limit));
        }
        let mut body = Vec::with_capacity(announced.map_or(0, |n| n as usize).min(limit));
        while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
            if chunk.len() > limit - body.len() {
                return Err(BodyError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn build(&self) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .timeout(self.config.timeout)
            // A little under the whole: were both equal, the request's timeout would fire with
            // the connector's and hide that it was the connect that hung (`transport`).
            .connect_timeout(self.config.timeout.mul_f64(0.9))
            .user_agent(concat!("tokenward/", env!("CARGO_PKG_VERSION")))
            // Redirects are the callers' decision (see the module comment): `get` follows them
            // within one origin, the token POST never.
            .redirect(reqwest::redirect::Policy::none())
            // After `user_agent`: a caller's own User-Agent wins.
            .default_headers(self.headers.clone());
        if let Some(proxy) = &self.proxy {
            builder = builder.proxy(proxy.clone());
        }
        if !self.extra_roots.is_empty() {
            builder = builder.tls_certs_merge(self.extra_roots.iter().cloned());
        }
        builder
            .build()
            .map_err(|e| Error::config("ca_bundle", format!("cannot set up TLS: {e}")))
    }

    /// The client for this process.
    pub(crate) fn client(&self) -> reqwest::Client {
        let pid = crate::fork::pid();
        let mut slot = self.client.lock();
        if let Some((owner, client)) = slot.as_ref() {
            if *owner == pid {
                return client.clone();
            }
        }
        if let Some(stale) = slot.take() {
            std::mem::forget(stale);
        }
        // The configuration was accepted once in `new`; building again cannot fail differently.
        let client = self.build().unwrap_or_default();
        *slot = Some((pid, client.clone()));
        client
    }
}

/// The redirect statuses `Http::get` follows (those with a `Location` to go to).
fn is_followed(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// What went wrong with a request, for a log line or an error message: short for the common
/// cases, else reqwest's message with its causes (which name the URL, never headers or bodies).
/// Which phase of a request failed, for a request that got no answer.
pub(crate) fn transport(e: &reqwest::Error) -> Transport {
    // reqwest marks a connect timeout as both: the timeout fired inside the connector.
    match (e.is_connect(), e.is_timeout()) {
        (true, true) => Transport::ConnectTimeout,
        (true, false) => Transport::Connect,
        (false, true) => Transport::Timeout,
        (false, false) => Transport::Dropped,
    }
}

/// Why the TLS handshake failed, if that is why a connect failed: rustls's own words (its
/// error is in the source chain; the certificate verifier logs it elsewhere), with a hint for
/// the mistake it most often is.
fn tls_reason(e: &reqwest::Error) -> Option<String> {
    let tls = std::error::Error::source(e).and_then(find_tls)?;
    let mut reason = tls.to_string();
    if reason.contains("CaUsedAsEndEntity") {
        reason.push_str(
            " (the server presents a CA certificate as its own: a self-signed certificate \
             given as ca_bundle is not accepted; give the CA that signed the server's \
             certificate)",
        );
    }
    Some(reason)
}

/// The rustls error in a chain of causes. An io::Error's `source` skips the error it wraps
/// (and hyper wraps it in two), so each one is looked inside.
fn find_tls<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let wrapped = e
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        .and_then(|inner| find_tls(inner));
    wrapped.or_else(|| e.source().and_then(find_tls))
}

pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        match tls_reason(e) {
            Some(reason) => format!("cannot connect: TLS: {reason}"),
            None => "cannot connect".into(),
        }
    } else if e.is_decode() {
        "body is not valid JSON".into()
    } else {
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::testutil::{respond, RawServer};

    fn http(max_response_bytes: usize) -> Http {
        Http::new(HttpConfig {
            timeout: Duration::from_secs(5),
            ca_bundle: None,
            max_response_bytes,
            ..HttpConfig::default()
        })
        .unwrap()
    }

    async fn fetch(http: &Http, url: &str) -> std::result::Result<Vec<u8>, String> {
        let response = http.get(url, "application/json").await?;
        http.body(response).await.map_err(|e| e.to_string())
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert!(same_origin("http://a:80/x", "http://a/y?z"));
        assert!(same_origin("https://A/x", "https://a:443/"));
        assert!(!same_origin("https://a/x", "http://a/x"));
        assert!(!same_origin("http://a:8080/", "http://a:8081/"));
        assert!(!same_origin("http://a/", "http://b/"));
        assert!(!same_origin("file:///etc/passwd", "file:///etc/passwd"));
        assert!(!same_origin("not a url", "not a url"));
    }

    #[tokio::test]
    async fn redirects_are_followed_within_the_origin_only() {
        let elsewhere = RawServer::start(|_, s| respond(s, 200, &[], "{\"evil\":1}"));
        let target = format!("{}/keys", elsewhere.base);
        let server = RawServer::start(move |line, s| {
            if line.starts_with("GET /moved ") {
                respond(s, 307, &[("location", "/here")], "");
            } else if line.starts_with("GET /here ") {
                respond(s, 200, &[], "{\"good\":1}");
            } else if line.starts_with("GET /away ") {
                respond(s, 302, &[("location", &target)], "");
            } else {
                respond(s, 301, &[("location", "/loop")], "");
            }
        });
        let http = http(DEFAULT_MAX_RESPONSE_BYTES);
        let body = fetch(&http, &format!("{}/moved", server.base))
            .await
            .unwrap();
        assert_eq!(body, b"{\"good\":1}");

        let e = fetch(&http, &format!("{}/away", server.base))
            .await
            .unwrap_err();
        assert!(
            e.contains(&server.base) && e.contains(&elsewhere.base),
            "{e}"
        );
        assert!(e.contains("another origin"), "{e}");
        assert_eq!(elsewhere.hits(), 0, "the other origin was never asked");

        let before = server.hits();
        let e = fetch(&http, &format!("{}/loop", server.base))
            .await
            .unwrap_err();
        assert!(e.contains("more than 3 redirects"), "{e}");
        assert_eq!(server.hits() - before, MAX_REDIRECTS + 1);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_while_it_is_read() {
        const LIMIT: usize = 64 * 1024;
        const STREAMED: usize = 256 << 20;
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let server = RawServer::start(move |line, s| {
            if line.starts_with("GET /announced ") {
                // Says how long it is, then would send it all: refused from the header.
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {STREAMED}\r\n\r\n");
                let _ = s.write_all(head.as_bytes());
            } else if line.starts_with("GET /exact ") {
                respond(s, 200, &[], &"x".repeat(LIMIT));
                return;
            } else {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
            }
            let chunk = format!("{:x}\r\n{}\r\n", 4096, "0,".repeat(2048));
            for _ in 0..STREAMED / 4096 {
                if s.write_all(chunk.as_bytes()).is_err() {
                    return;
                }
                counter.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        });
        let http = http(LIMIT);
        for path in ["/streamed", "/announced"] {
            let e = fetch(&http, &format!("{}{path}", server.base))
                .await
                .unwrap_err();
            assert!(
                e.contains("max_response_bytes (65536 bytes)"),
                "{path}: {e}"
            );
        }
        assert_eq!(
            fetch(&http, &format!("{}/exact", server.base))
                .await
                .unwrap()
                .len(),
            LIMIT
        );
        // The client stopped reading: the server could hand over only what the socket buffers
        // took before its writes failed, far less than it meant to send.
        let written = sent.load(Ordering::SeqCst);
        assert!(written < 32 << 20, "the server wrote {written} bytes");
    }
}
