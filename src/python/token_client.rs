//! `tokenward._native.TokenClient`. The Python subclass in `tokenward/token_client.py` adds
//! `get_token_async` on top.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyType};
use zeroize::Zeroizing;

use super::async_bridge::future_into_py;
use super::exchange;
use super::from_env::{self, Given, Prepared};
use crate::error::Error;
use crate::token::{AuthMethod, TokenClient, TokenClientConfig};

#[pyclass(frozen, subclass, name = "TokenClient", module = "tokenward._native")]
pub struct PyTokenClient {
    inner: TokenClient,
}

/// A credential from str or bytes, copied straight into wiped memory.
fn secret_text(
    value: Option<&Bound<'_, PyAny>>,
    setting: &str,
) -> PyResult<Option<Zeroizing<String>>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let py = value.py();
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Some(Zeroizing::new(s.to_str()?.to_owned())));
    }
    if let Ok(b) = value.cast::<PyBytes>() {
        let text = std::str::from_utf8(b.as_bytes())
            .map_err(|_| Error::config(setting, "is not UTF-8"))?;
        return Ok(Some(Zeroizing::new(text.to_owned())));
    }
    if value.cast::<PyDict>().is_ok() {
        // A JWK given as a dict: the core reads JWKs as JSON text.
        let text: String = py
            .import("json")?
            .call_method1("dumps", (value,))?
            .extract()?;
        return Ok(Some(Zeroizing::new(text)));
    }
    Err(Error::config(setting, "must be a PEM (str or bytes) or a JWK (dict)").into())
}

/// `scope` as a string or a sequence of scopes (joined with spaces, as OAuth sends them).
pub(super) fn scope_text(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Ok(one) = value.extract::<String>() {
        return Ok(Some(one));
    }
    let all = value
        .extract::<Vec<String>>()
        .map_err(|_| Error::config("scope", "must be a string or a sequence of strings"))?;
    Ok(Some(all.join(" ")))
}

fn auth_method(name: Option<&str>) -> PyResult<Option<AuthMethod>> {
    Ok(name.map(str::parse::<AuthMethod>).transpose()?)
}

/// The credentials: one given in code replaces the environment's, and the method it implied.
const CREDENTIALS: [&str; 2] = ["client_secret", "private_key"];

/// One keyword argument of `from_env`, converted as the constructor converts it.
fn apply(config: &mut TokenClientConfig, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
    match name {
        "token_url" => config.token_url = value.extract()?,
        "issuer" => config.issuer = value.extract()?,
        "client_id" => config.client_id = value.extract()?,
        "client_secret" => config.client_secret = secret_text(Some(value), name)?,
        "private_key" => config.private_key = secret_text(Some(value), name)?,
        "key_id" => config.key_id = value.extract()?,
        "auth_method" => config.auth_method = auth_method(value.extract()?)?,
        "scope" => config.scope = scope_text(Some(value))?,
        "audience" => config.audience = value.extract()?,
        "refresh_margin" => config.refresh_margin = value.extract()?,
        "timeout" => config.timeout = value.extract()?,
        "signing_alg" => config.signing_alg = value.extract()?,
        "ca_bundle" => config.ca_bundle = value.extract()?,
        "max_response_bytes" => config.max_response_bytes = value.extract()?,
        "proxy" => config.proxy = value.extract()?,
        "headers" => config.headers = super::transport::headers(Some(value))?,
        "shared_cache" => config.shared_cache = value.extract()?,
        "exchange_cache_size" => config.exchange_cache_size = value.extract()?,
        other => return Err(from_env::unexpected("TokenClient", other)),
    }
    Ok(())
}

#[pymethods]
impl PyTokenClient {
    #[new]
    #[pyo3(signature = (
        token_url = None, *, issuer = None, client_id, client_secret = None, private_key = None,
        key_id = None, auth_method = None, scope = None, audience = None, refresh_margin = 30.0,
        timeout = 10.0, signing_alg = None, ca_bundle = None, max_response_bytes = 1_048_576,
        proxy = None, headers = None, shared_cache = None, exchange_cache_size = 1024
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        token_url: Option<String>,
        issuer: Option<String>,
        client_id: Given<String>,
        client_secret: Option<&Bound<'_, PyAny>>,
        private_key: Option<&Bound<'_, PyAny>>,
        key_id: Option<String>,
        auth_method: Option<&str>,
        scope: Option<&Bound<'_, PyAny>>,
        audience: Option<String>,
        refresh_margin: f64,
        timeout: f64,
        signing_alg: Option<String>,
        ca_bundle: Option<PathBuf>,
        max_response_bytes: i64,
        proxy: Option<String>,
        headers: Option<&Bound<'_, PyAny>>,
        shared_cache: Option<String>,
        exchange_cache_size: i64,
    ) -> PyResult<Self> {
        let client_id = match client_id {
            // From `from_env`, which has applied every setting already.
            Given::Prepared(prepared) => {
                return Ok(PyTokenClient {
                    inner: prepared.get().take()?,
                })
            }
            Given::Value(client_id) => client_id,
        };
        let mut config = TokenClientConfig::new(client_id);
        config.token_url = token_url;
        config.issuer = issuer;
        config.client_secret = secret_text(client_secret, "client_secret")?;
        config.private_key = secret_text(private_key, "private_key")?;
        config.key_id = key_id;
        config.auth_method = self::auth_method(auth_method)?;
        config.scope = scope_text(scope)?;
        config.audience = audience;
        config.refresh_margin = refresh_margin;
        config.timeout = timeout;
        config.signing_alg = signing_alg;
        config.ca_bundle = ca_bundle;
        config.max_response_bytes = max_response_bytes;
        config.proxy = proxy;
        config.headers = super::transport::headers(headers)?;
        config.shared_cache = shared_cache;
        config.exchange_cache_size = exchange_cache_size;
        // Key parsing and a test signature: not worth holding the GIL for.
        let inner = py.detach(|| TokenClient::new(config))?;
        Ok(PyTokenClient { inner })
    }

    /// A client configured from KEYCLOAK_URL, KEYCLOAK_REALM (default "dls"), AGENT_CLIENT_ID
    /// or KEYCLOAK_CLIENT_ID, AGENT_CLIENT_SECRET or KEYCLOAK_CLIENT_SECRET, and
    /// AGENT_PRIVATE_KEY_FILE (a PEM key: private_key_jwt); the keyword arguments (those of the
    /// constructor) win. Returns an instance of `cls`.
    ///
    /// Raises ConfigError naming the variable when one is missing, so an agent fails at
    /// start-up rather than on its first request.
    #[classmethod]
    #[pyo3(signature = (**overrides))]
    fn from_env<'py>(
        cls: &Bound<'py, PyType>,
        overrides: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut given = false;
        for name in CREDENTIALS {
            if let Some(overrides) = overrides {
                given |= overrides.get_item(name)?.is_some_and(|v| !v.is_none());
            }
        }
        let mut config = TokenClientConfig::from_env(from_env::var, !given)?;
        if given {
            config.client_secret = None;
            config.private_key = None;
            config.auth_method = None;
        }
        for (name, value) in overrides.into_iter().flatten() {
            apply(&mut config, name.cast::<PyString>()?.to_str()?, &value)?;
        }
        let py = cls.py();
        let inner = py.detach(|| TokenClient::new(config))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("client_id", Prepared::new(inner))?;
        cls.call((), Some(&kwargs))
    }

    #[getter]
    fn client_id(&self) -> &str {
        self.inner.client_id()
    }

    #[getter]
    fn auth_method(&self) -> &'static str {
        self.inner.auth_method().as_str()
    }

    /// The token endpoint; None until discovery has found it (when built from `issuer`).
    #[getter]
    fn token_url(&self) -> Option<String> {
        self.inner.token_url()
    }

    #[getter]
    fn key_id(&self) -> Option<&str> {
        self.inner.key_id()
    }

    #[getter]
    fn signing_alg(&self) -> Option<&'static str> {
        self.inner.assertion_alg()
    }

    /// A valid access token; waits (without the GIL) only when a new one must be fetched.
    fn get_token(&self, py: Python<'_>) -> PyResult<String> {
        let token = match self.inner.lookup() {
            Ok(token) => token,
            Err(miss) => py.detach(|| self.inner.fetch_blocking(miss))?,
        };
        Ok(token.value().to_owned())
    }

    /// The cached token when it is usable now, else None. Never touches the network.
    fn _token_now(&self) -> Option<String> {
        self.inner.cached_token().map(|t| t.value().to_owned())
    }

    /// An awaitable for `get_token`, run on the shared runtime.
    fn _get_token_fetching<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        future_into_py(py, async move {
            Ok(inner.get_token().await?.value().to_owned())
        })
    }

    /// `subject_token` exchanged for a token for `audience` (RFC 8693); waits (without the
    /// GIL) only when the exchange is not cached.
    #[pyo3(signature = (subject_token, *, audience = None, scope = None, requested_token_type = None))]
    fn exchange(
        &self,
        py: Python<'_>,
        subject_token: &str,
        audience: Option<&Bound<'_, PyAny>>,
        scope: Option<&Bound<'_, PyAny>>,
        requested_token_type: Option<String>,
    ) -> PyResult<String> {
        let request = exchange::request(subject_token, audience, scope, requested_token_type)?;
        let token = match self.inner.exchange_cached(&request) {
            Some(answer) => answer?,
            None => py.detach(|| self.inner.exchange_blocking(&request))?,
        };
        Ok(token.value().to_owned())
    }

    /// The cached answer for this exchange (a held refusal is raised), else None; never
    /// touches the network. `exchange_async` probes with it before going through the runtime.
    #[pyo3(signature = (subject_token, *, audience = None, scope = None, requested_token_type = None))]
    fn _exchange_now(
        &self,
        subject_token: &str,
        audience: Option<&Bound<'_, PyAny>>,
        scope: Option<&Bound<'_, PyAny>>,
        requested_token_type: Option<String>,
    ) -> PyResult<Option<String>> {
        let request = exchange::request(subject_token, audience, scope, requested_token_type)?;
        match self.inner.exchange_cached(&request) {
            Some(answer) => Ok(Some(answer?.value().to_owned())),
            None => Ok(None),
        }
    }

    /// An awaitable for `exchange`; a cached answer is ready at once.
    #[pyo3(signature = (subject_token, *, audience = None, scope = None, requested_token_type = None))]
    fn _exchange_async<'py>(
        &self,
        py: Python<'py>,
        subject_token: &str,
        audience: Option<&Bound<'py, PyAny>>,
        scope: Option<&Bound<'py, PyAny>>,
        requested_token_type: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        // Owned: the request outlives this call's borrow of the subject token.
        let request =
            exchange::request(subject_token, audience, scope, requested_token_type)?.into_owned();
        let inner = self.inner.clone();
        future_into_py(py, async move {
            Ok(inner.exchange(&request).await?.value().to_owned())
        })
    }

    /// Drops the cached token; with `token`, only if that is still the cached one. Returns
    /// whether a token was dropped.
    #[pyo3(signature = (token = None))]
    fn invalidate(&self, token: Option<&str>) -> bool {
        self.inner.invalidate(token)
    }

    /// The cached token's state for readiness probes; no I/O.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let h = self.inner.health();
        let out = PyDict::new(py);
        out.set_item("ready", h.ready)?;
        out.set_item("expires_in", h.expires_in)?;
        out.set_item("last_error", h.last_error)?;
        out.set_item("last_success", h.last_success)?;
        // Only with a shared cache: the dict of a plain client keeps its four keys.
        if let Some(shared) = h.shared_cache {
            let d = PyDict::new(py);
            d.set_item("connected", shared.connected)?;
            d.set_item("last_error", shared.last_error)?;
            out.set_item("shared_cache", d)?;
        }
        Ok(out)
    }

    /// Gets a token now unless a valid one is held; raises TokenRequestError.
    fn warm(&self, py: Python<'_>) -> PyResult<()> {
        if self.inner.health().ready {
            return Ok(());
        }
        py.detach(|| self.inner.get_token_blocking())?;
        Ok(())
    }

    /// An awaitable for `warm`, run on the shared runtime.
    fn warm_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        future_into_py(py, async move {
            inner.get_token().await?;
            Ok(())
        })
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (name, value) in self.inner.stats().snapshot() {
            out.set_item(name, value)?;
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        let url = self
            .inner
            .token_url()
            .unwrap_or_else(|| "<discovery>".into());
        format!(
            "TokenClient(client_id={:?}, auth_method={:?}, token_url={:?})",
            self.inner.client_id(),
            self.inner.auth_method().as_str(),
            url
        )
    }
}
