//! The one HTTP client setup: rustls with the OS trust store (plus an optional CA bundle),
//! a timeout on every request, proxies from the environment (reqwest's default).

use std::path::PathBuf;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub(crate) struct HttpConfig {
    pub timeout: Duration,
    pub ca_bundle: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(5),
            ca_bundle: None,
        }
    }
}

/// A client that is rebuilt after fork: its pooled connections belong to the parent's runtime.
pub(crate) struct Http {
    config: HttpConfig,
    extra_roots: Vec<reqwest::Certificate>,
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
        let http = Http {
            config,
            extra_roots,
            client: Mutex::new(None),
        };
        http.build()?;
        Ok(http)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.config.timeout
    }

    fn build(&self) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .timeout(self.config.timeout)
            .connect_timeout(self.config.timeout)
            .user_agent(concat!("tokenward/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(3));
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

/// What went wrong with a request, for a log line or an error message: short for the common
/// cases, else reqwest's message with its causes (which name the URL, never headers or bodies).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
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
