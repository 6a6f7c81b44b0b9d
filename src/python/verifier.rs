//! `tokenward._native.Verifier`. The Python subclass in `tokenward/verifier.py` adds
//! `verify_async` and `from_env` on top.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use super::async_bridge::future_into_py;
use super::convert::{self, ClaimsObject};
use super::errors::{to_py, to_py_attached};
use crate::error::{Code, Error};
use crate::verify::{Claims, Verifier, VerifierConfig};

#[pyclass(frozen, subclass, name = "Verifier", module = "tokenward._native")]
pub struct PyVerifier {
    inner: Arc<Verifier>,
}

/// A token as `&str` without copying: str directly, bytes after a UTF-8 check.
fn with_token<R>(
    py: Python<'_>,
    token: &Bound<'_, PyAny>,
    f: impl FnOnce(&str) -> PyResult<R>,
) -> PyResult<R> {
    if let Ok(s) = token.cast::<PyString>() {
        return f(s.to_str()?);
    }
    if let Ok(b) = token.cast::<PyBytes>() {
        let text = std::str::from_utf8(b.as_bytes()).map_err(|_| {
            to_py(
                py,
                Error::invalid(Code::Malformed, "the token is not UTF-8"),
            )
        })?;
        return f(text);
    }
    Err(PyTypeError::new_err("token must be str or bytes"))
}

fn string_list(value: Option<&Bound<'_, PyAny>>, setting: &str) -> PyResult<Option<Vec<String>>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Ok(one) = value.extract::<String>() {
        return Ok(Some(vec![one]));
    }
    value.extract::<Vec<String>>().map(Some).map_err(|_| {
        to_py(
            value.py(),
            Error::config(setting, "must be a string or a sequence of strings"),
        )
    })
}

impl PyVerifier {
    /// A verified-token cache hit, served with the GIL held: it takes less time than releasing
    /// and re-taking the GIL would, and hands no GIL switch to other threads. Only the signature
    /// check (a miss) runs with the GIL released.
    fn cached(&self, py: Python<'_>, token: &str) -> PyResult<Option<Claims>> {
        self.inner.cached(token).map_err(|e| to_py(py, e))
    }
}

#[pymethods]
impl PyVerifier {
    #[new]
    #[pyo3(signature = (
        issuer, *, jwks_uri = None, audience = None, allowed_azp = None, algorithms = None,
        leeway = 60, verify_issuer = true, required_claims = None, token_types = Some(vec!["Bearer".to_string()]),
        max_token_bytes = 16384, cache_size = 10_000, jwks_ttl = 300.0, jwks_cooldown = 30.0,
        jwks_max_stale = 86400.0, http_timeout = 5.0, ca_bundle = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        issuer: String,
        jwks_uri: Option<String>,
        audience: Option<&Bound<'_, PyAny>>,
        allowed_azp: Option<&Bound<'_, PyAny>>,
        algorithms: Option<&Bound<'_, PyAny>>,
        leeway: i64,
        verify_issuer: bool,
        required_claims: Option<&Bound<'_, PyAny>>,
        token_types: Option<Vec<String>>,
        max_token_bytes: i64,
        cache_size: i64,
        jwks_ttl: f64,
        jwks_cooldown: f64,
        jwks_max_stale: f64,
        http_timeout: f64,
        ca_bundle: Option<PathBuf>,
    ) -> PyResult<Self> {
        let mut config = VerifierConfig::new(issuer);
        config.jwks_uri = jwks_uri;
        config.audience = string_list(audience, "audience")?.unwrap_or_default();
        config.allowed_azp = string_list(allowed_azp, "allowed_azp")?;
        config.algorithms = string_list(algorithms, "algorithms")?;
        config.leeway = leeway;
        config.verify_issuer = verify_issuer;
        if let Some(claims) = string_list(required_claims, "required_claims")? {
            config.required_claims = claims;
        }
        config.token_types = token_types;
        config.max_token_bytes = max_token_bytes;
        config.cache_size = cache_size;
        config.jwks_ttl = jwks_ttl;
        config.jwks_cooldown = jwks_cooldown;
        config.jwks_max_stale = jwks_max_stale;
        config.http_timeout = http_timeout;
        config.ca_bundle = ca_bundle;
        let inner = Verifier::new(config).map_err(|e| to_py(py, e))?;
        Ok(PyVerifier {
            inner: Arc::new(inner),
        })
    }

    #[getter]
    fn issuer(&self) -> &str {
        self.inner.issuer()
    }

    /// The claims as a fresh dict. Blocks (without the GIL) only when keys must be fetched.
    fn verify<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let claims = with_token(py, token, |t| match self.cached(py, t)? {
            Some(claims) => Ok(claims),
            None => py
                .detach(|| self.inner.verify_blocking(t))
                .map_err(|e| to_py(py, e)),
        })?;
        convert::claims(py, &claims)
    }

    /// The claims, or None when a key fetch is needed first. Never touches the network.
    fn _verify_now<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let claims = with_token(py, token, |t| match self.cached(py, t)? {
            Some(claims) => Ok(Some(claims)),
            None => py
                .detach(|| self.inner.verify_now(t))
                .map_err(|e| to_py(py, e)),
        })?;
        claims.map(|c| convert::claims(py, &c)).transpose()
    }

    /// An awaitable for the full verify, key fetches included, run on the shared runtime.
    fn _verify_fetching<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let token = with_token(py, token, |t| Ok(t.to_owned()))?;
        let inner = self.inner.clone();
        future_into_py(py, async move {
            inner
                .verify(&token)
                .await
                .map(ClaimsObject)
                .map_err(to_py_attached)
        })
    }

    /// Fetches the key set now; raises KeySetUnavailable if that fails (held keys stay in use).
    fn refresh_keys(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.clone();
        py.detach(|| crate::runtime::block_on(inner.refresh_keys()))
            .map_err(|e| to_py(py, e))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (name, value) in self.inner.stats().snapshot() {
            out.set_item(name, value)?;
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!("Verifier(issuer={:?})", self.inner.issuer())
    }
}

/// The keyword arguments `Verifier.from_env()` passes, read from `os.environ`.
#[pyfunction]
pub(super) fn verifier_env_settings<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let environ = py.import("os")?.getattr("environ")?;
    let var = |name: &str| -> Option<String> {
        environ
            .call_method1("get", (name,))
            .ok()?
            .extract::<Option<String>>()
            .ok()?
    };
    let config = VerifierConfig::from_env(var).map_err(|e| to_py(py, e))?;
    let out = PyDict::new(py);
    out.set_item("issuer", config.issuer)?;
    out.set_item("verify_issuer", config.verify_issuer)?;
    out.set_item("jwks_uri", config.jwks_uri)?;
    out.set_item("allowed_azp", config.allowed_azp)?;
    if !config.audience.is_empty() {
        out.set_item("audience", config.audience)?;
    }
    Ok(out)
}

/// Moves the clock the verifier and key cache read forward by `seconds` (tests only).
#[pyfunction]
pub(super) fn _advance_clock(seconds: f64) -> PyResult<()> {
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "seconds must be >= 0",
        ));
    }
    crate::clock::advance(std::time::Duration::from_secs_f64(seconds));
    Ok(())
}

/// Back to the real time (tests only).
#[pyfunction]
pub(super) fn _reset_clock() {
    crate::clock::reset();
}
