//! The token client against a tiny scripted HTTP server on 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use super::*;
use crate::error::Error;

#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    }
}

type Script = dyn Fn(usize, &Seen) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync;

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    hits: Arc<AtomicUsize>,
}

/// Serves `script(n, request)` for the n-th request (0-based), one request per connection.
async fn serve(script: Arc<Script>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (seen2, hits2) = (seen.clone(), hits.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (seen, hits, script) = (seen2.clone(), hits2.clone(), script.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.split("\r\n");
                let line = lines.next().unwrap_or_default().to_string();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                    .collect();
                let length = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
                let request = Seen {
                    line,
                    headers,
                    body,
                };
                let n = hits.fetch_add(1, Ordering::SeqCst);
                seen.lock().push(request.clone());
                let (status, extra, body) = script(n, &request);
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (name, value) in extra {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&body);
                let _ = sock.write_all(out.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Server { base, seen, hits }
}

fn ok(token: &str, expires_in: u64) -> (u16, Vec<(&'static str, String)>, String) {
    let body =
        format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{expires_in}}}"#);
    (200, vec![], body)
}

const SECRET: &str = "s3cr3t-value-xyz";

fn config(token_url: Option<String>) -> TokenClientConfig {
    let mut c = TokenClientConfig::new("agent");
    c.token_url = token_url;
    c.client_secret = Some(Zeroizing::new(SECRET.into()));
    c.timeout = 2.0;
    c
}

#[tokio::test]
async fn secret_post_fetches_once_and_caches() {
    let server = serve(Arc::new(|n, _: &Seen| ok(&format!("tok-{n}"), 300))).await;
    let mut c = config(Some(format!("{}/token", server.base)));
    c.scope = Some("api:read".into());
    c.audience = Some("backend".into());
    let client = TokenClient::new(c).unwrap();
    assert_eq!(client.get_token().await.unwrap().value(), "tok-0");
    assert_eq!(client.get_token().await.unwrap().value(), "tok-0");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    let seen = server.seen.lock()[0].clone();
    assert!(seen.line.starts_with("POST /token "));
    assert_eq!(
        seen.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        seen.form("grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(seen.form("client_id").as_deref(), Some("agent"));
    assert_eq!(seen.form("client_secret").as_deref(), Some(SECRET));
    assert_eq!(seen.form("scope").as_deref(), Some("api:read"));
    assert_eq!(seen.form("audience").as_deref(), Some("backend"));
    assert_eq!(client.stats().token_requests.get(), 1);
}

#[tokio::test]
async fn secret_basic_sends_the_header_only() {
    let server = serve(Arc::new(|_, _: &Seen| ok("t", 300))).await;
    let mut c = config(Some(format!("{}/token", server.base)));
    c.auth_method = Some(AuthMethod::ClientSecretBasic);
    TokenClient::new(c).unwrap().get_token().await.unwrap();
    let seen = server.seen.lock()[0].clone();
    assert!(seen.header("authorization").unwrap().starts_with("Basic "));
    assert_eq!(seen.form("client_secret"), None);
    assert_eq!(seen.form("client_id"), None);
}

#[tokio::test]
async fn oauth_errors_fail_after_one_request_without_the_secret() {
    let server = serve(Arc::new(|_, _: &Seen| {
        let body =
            format!(r#"{{"error":"invalid_client","error_description":"bad secret {SECRET}"}}"#);
        (401, vec![], body)
    }))
    .await;
    let client = TokenClient::new(config(Some(format!("{}/token", server.base)))).unwrap();
    let e = client.get_token().await.unwrap_err();
    let Error::TokenRequest(f) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(f.status, Some(401));
    assert_eq!(f.error.as_deref(), Some("invalid_client"));
    assert!(!f.retryable);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    let text = format!("{e} {e:?}");
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("invalid_client"));
    // The next call inside the backoff window answers the same error without a request.
    assert!(client.get_token().await.is_err());
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn transient_failures_are_retried_within_one_call() {
    let server = serve(Arc::new(|n, _: &Seen| match n {
        0 => (503, vec![], "{}".into()),
        1 => (429, vec![("Retry-After", "0".into())], "{}".into()),
        _ => ok("finally", 300),
    }))
    .await;
    let client = TokenClient::new(config(Some(format!("{}/token", server.base)))).unwrap();
    assert_eq!(client.get_token().await.unwrap().value(), "finally");
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_stop_after_max_attempts() {
    let server = serve(Arc::new(|_, _: &Seen| (502, vec![], "bad gateway".into()))).await;
    let client = TokenClient::new(config(Some(format!("{}/token", server.base)))).unwrap();
    let e = client.get_token().await.unwrap_err();
    assert!(matches!(e, Error::TokenRequest(ref f) if f.retryable && f.status == Some(502)));
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        retry::MAX_ATTEMPTS as usize
    );
}

#[tokio::test]
async fn a_redirect_is_a_final_error_and_is_not_followed() {
    let elsewhere = serve(Arc::new(|_, _: &Seen| ok("stolen", 300))).await;
    for status in [301u16, 302, 303, 307, 308] {
        for method in [AuthMethod::ClientSecretPost, AuthMethod::ClientSecretBasic] {
            let target = format!("{}/token", elsewhere.base);
            let server = serve(Arc::new(move |_, _: &Seen| {
                (status, vec![("Location", target.clone())], String::new())
            }))
            .await;
            let mut c = config(Some(format!("{}/token", server.base)));
            c.auth_method = Some(method);
            let e = TokenClient::new(c).unwrap().get_token().await.unwrap_err();
            let Error::TokenRequest(f) = &e else {
                panic!("{e:?}")
            };
            assert_eq!(f.status, Some(status));
            assert!(!f.retryable);
            assert!(f.description.contains("redirect"), "{}", f.description);
            assert_eq!(server.hits.load(Ordering::SeqCst), 1, "not retried");
        }
    }
    assert_eq!(elsewhere.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_oversized_token_response_is_refused_while_read() {
    let server = serve(Arc::new(|_, _: &Seen| {
        let padding = "x".repeat(2048);
        let body = format!(r#"{{"access_token":"t","token_type":"Bearer","pad":"{padding}"}}"#);
        (200, vec![], body)
    }))
    .await;
    let mut c = config(Some(format!("{}/token", server.base)));
    c.max_response_bytes = 1024;
    let e = TokenClient::new(c).unwrap().get_token().await.unwrap_err();
    let Error::TokenRequest(f) = &e else {
        panic!("{e:?}")
    };
    assert!(!f.retryable);
    assert!(
        f.description.contains("max_response_bytes (1024 bytes)"),
        "{}",
        f.description
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_not_used() {
    let elsewhere = serve(Arc::new(|_, _: &Seen| ok("stolen", 300))).await;
    let target = format!("{}/token", elsewhere.base);
    let server = serve(Arc::new(move |_, seen: &Seen| {
        if seen
            .line
            .starts_with("GET /realms/r/.well-known/openid-configuration")
        {
            let doc = format!(r#"{{"issuer":"http://evil/realms/r","token_endpoint":"{target}"}}"#);
            (200, vec![], doc)
        } else if seen
            .line
            .starts_with("POST /realms/r/protocol/openid-connect/token")
        {
            ok("keycloak-path", 300)
        } else {
            (404, vec![], "{}".into())
        }
    }))
    .await;
    let mut c = config(None);
    c.issuer = Some(format!("{}/realms/r", server.base));
    let client = TokenClient::new(c).unwrap();
    assert_eq!(client.get_token().await.unwrap().value(), "keycloak-path");
    assert_eq!(elsewhere.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn token_url_comes_from_discovery() {
    let base = Arc::new(Mutex::new(String::new()));
    let base2 = base.clone();
    let server = serve(Arc::new(move |_, seen: &Seen| {
        if seen
            .line
            .starts_with("GET /realms/r/.well-known/openid-configuration")
        {
            let base = base2.lock();
            let doc =
                format!(r#"{{"issuer":"{base}/realms/r","token_endpoint":"{base}/custom/token"}}"#);
            (200, vec![], doc)
        } else if seen.line.starts_with("POST /custom/token") {
            ok("via-discovery", 300)
        } else {
            (404, vec![], "{}".into())
        }
    }))
    .await;
    *base.lock() = server.base.clone();
    let mut c = config(None);
    c.issuer = Some(format!("{}/realms/r", server.base));
    let client = TokenClient::new(c).unwrap();
    assert_eq!(client.token_url(), None);
    assert_eq!(client.get_token().await.unwrap().value(), "via-discovery");
    assert_eq!(
        client.token_url(),
        Some(format!("{}/custom/token", server.base))
    );
}

#[tokio::test]
async fn without_discovery_the_keycloak_path_is_used() {
    let server = serve(Arc::new(|_, seen: &Seen| {
        if seen
            .line
            .starts_with("POST /realms/r/protocol/openid-connect/token")
        {
            ok("keycloak-path", 300)
        } else {
            (404, vec![], "{}".into())
        }
    }))
    .await;
    let mut c = config(None);
    c.issuer = Some(format!("{}/realms/r", server.base));
    let client = TokenClient::new(c).unwrap();
    assert_eq!(client.get_token().await.unwrap().value(), "keycloak-path");
}

#[test]
fn blocking_calls_work_from_plain_threads() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(serve(Arc::new(|n, _: &Seen| ok(&format!("tok-{n}"), 300))));
    let client = TokenClient::new(config(Some(format!("{}/token", server.base)))).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || client.get_token_blocking().unwrap().value().to_string())
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), "tok-0");
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    assert!(!format!("{client:?}").contains(SECRET));
}

#[tokio::test]
async fn a_miss_is_fetched_from_its_lookup() {
    let server = serve(Arc::new(|n, _: &Seen| ok(&format!("tok-{n}"), 300))).await;
    let client = TokenClient::new(config(Some(format!("{}/token", server.base)))).unwrap();
    let Err(miss) = client.lookup() else {
        panic!("a new client holds no token")
    };
    assert_eq!(client.fetch(miss).await.unwrap().value(), "tok-0");
    assert_eq!(client.lookup().unwrap().value(), "tok-0");
    assert_eq!(client.stats().cache_hits.get(), 1);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}
