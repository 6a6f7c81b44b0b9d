//! `tokenward._native.TokenClient`. The Python subclass in `tokenward/token_client.py` adds
//! `get_token_async` and `from_env` on top.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use zeroize::Zeroizing;

use super::async_bridge::future_into_py;
use super::errors::{to_py, to_py_attached};
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
            .map_err(|_| to_py(py, Error::config(setting, "is not UTF-8")))?;
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
    Err(to_py(
        py,
        Error::config(setting, "must be a PEM (str or bytes) or a JWK (dict)"),
    ))
}

/// `scope` as a string or a sequence of scopes (joined with spaces, as OAuth sends them).
fn scope_text(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Ok(one) = value.extract::<String>() {
        return Ok(Some(one));
    }
    value
        .extract::<Vec<String>>()
        .map(|all| Some(all.join(" ")))
        .map_err(|_| {
            to_py(
                value.py(),
                Error::config("scope", "must be a string or a sequence of strings"),
            )
        })
}

#[pymethods]
impl PyTokenClient {
    #[new]
    #[pyo3(signature = (
        token_url = None, *, issuer = None, client_id, client_secret = None, private_key = None,
        key_id = None, auth_method = None, scope = None, audience = None, refresh_margin = 30.0,
        timeout = 10.0, signing_alg = None, ca_bundle = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        token_url: Option<String>,
        issuer: Option<String>,
        client_id: String,
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
    ) -> PyResult<Self> {
        let mut config = TokenClientConfig::new(client_id);
        config.token_url = token_url;
        config.issuer = issuer;
        config.client_secret = secret_text(client_secret, "client_secret")?;
        config.private_key = secret_text(private_key, "private_key")?;
        config.key_id = key_id;
        config.auth_method = auth_method
            .map(str::parse::<AuthMethod>)
            .transpose()
            .map_err(|e| to_py(py, e))?;
        config.scope = scope_text(scope)?;
        config.audience = audience;
        config.refresh_margin = refresh_margin;
        config.timeout = timeout;
        config.signing_alg = signing_alg;
        config.ca_bundle = ca_bundle;
        // Key parsing and a test signature: not worth holding the GIL for.
        let inner = py
            .detach(|| TokenClient::new(config))
            .map_err(|e| to_py(py, e))?;
        Ok(PyTokenClient { inner })
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
        if let Some(token) = self.inner.cached_token() {
            return Ok(token.value().to_owned());
        }
        py.detach(|| self.inner.get_token_blocking())
            .map(|t| t.value().to_owned())
            .map_err(|e| to_py(py, e))
    }

    /// The cached token when it is usable now, else None. Never touches the network.
    fn _token_now(&self) -> Option<String> {
        self.inner.cached_token().map(|t| t.value().to_owned())
    }

    /// An awaitable for `get_token`, run on the shared runtime.
    fn _get_token_fetching<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        future_into_py(py, async move {
            inner
                .get_token()
                .await
                .map(|t| t.value().to_owned())
                .map_err(to_py_attached)
        })
    }

    /// Drops the cached token; with `token`, only if that is still the cached one. Returns
    /// whether a token was dropped.
    #[pyo3(signature = (token = None))]
    fn invalidate(&self, token: Option<&str>) -> bool {
        self.inner.invalidate(token)
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

/// The keyword arguments `TokenClient.from_env()` passes, read from `os.environ`.
/// `require_credentials=False` when the caller passes its own secret or key.
#[pyfunction(name = "token_client_env_settings")]
#[pyo3(signature = (require_credentials = true))]
pub(super) fn env_settings<'py>(
    py: Python<'py>,
    require_credentials: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let environ = py.import("os")?.getattr("environ")?;
    let var = |name: &str| -> Option<String> {
        environ
            .call_method1("get", (name,))
            .ok()?
            .extract::<Option<String>>()
            .ok()?
    };
    let config = TokenClientConfig::from_env(var, require_credentials).map_err(|e| to_py(py, e))?;
    let out = PyDict::new(py);
    out.set_item("issuer", config.issuer)?;
    out.set_item("client_id", config.client_id)?;
    if let Some(secret) = &config.client_secret {
        out.set_item("client_secret", secret.as_str())?;
    }
    if let Some(pem) = &config.private_key {
        out.set_item("private_key", pem.as_str())?;
    }
    if let Some(method) = config.auth_method {
        out.set_item("auth_method", method.as_str())?;
    }
    Ok(out)
}
