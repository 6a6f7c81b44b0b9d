//! `tokenward._native.Verifier`. The Python subclass in `tokenward/verifier.py` adds
//! `verify_async` on top.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyType};

use super::async_bridge::future_into_py;
use super::convert::{self, ClaimsObject};
use super::from_env::{self, Given, Prepared};
use crate::error::{Code, Error};
use crate::revoke::Revocation;
use crate::verify::{Lookup, Verifier, VerifierConfig};

#[pyclass(frozen, subclass, name = "Verifier", module = "tokenward._native")]
pub struct PyVerifier {
    inner: Arc<Verifier>,
}

/// A token as `&str` without copying: str directly, bytes after a UTF-8 check.
fn with_token<R>(token: &Bound<'_, PyAny>, f: impl FnOnce(&str) -> PyResult<R>) -> PyResult<R> {
    if let Ok(s) = token.cast::<PyString>() {
        return f(s.to_str()?);
    }
    if let Ok(b) = token.cast::<PyBytes>() {
        let text = std::str::from_utf8(b.as_bytes())
            .map_err(|_| Error::invalid(Code::Malformed, "the token is not UTF-8"))?;
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
    let many = value.extract::<Vec<String>>();
    Ok(Some(many.map_err(|_| {
        Error::config(setting, "must be a string or a sequence of strings")
    })?))
}

/// One keyword argument of `from_env`, converted as the constructor converts it.
fn apply(config: &mut VerifierConfig, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
    match name {
        "issuer" => config.issuer = value.extract()?,
        "jwks_uri" => config.jwks_uri = value.extract()?,
        "audience" => config.audience = string_list(Some(value), name)?.unwrap_or_default(),
        "allowed_azp" => config.allowed_azp = string_list(Some(value), name)?,
        "algorithms" => config.algorithms = string_list(Some(value), name)?,
        "leeway" => config.leeway = value.extract()?,
        "verify_issuer" => config.verify_issuer = value.extract()?,
        "required_claims" => {
            if let Some(claims) = string_list(Some(value), name)? {
                config.required_claims = claims;
            }
        }
        "token_types" => config.token_types = value.extract()?,
        "max_lifetime" => config.max_lifetime = value.extract()?,
        "max_token_bytes" => config.max_token_bytes = value.extract()?,
        "cache_size" => config.cache_size = value.extract()?,
        "jwks_ttl" => config.jwks_ttl = value.extract()?,
        "jwks_cooldown" => config.jwks_cooldown = value.extract()?,
        "jwks_max_stale" => config.jwks_max_stale = value.extract()?,
        "http_timeout" => config.http_timeout = value.extract()?,
        "ca_bundle" => config.ca_bundle = value.extract()?,
        "max_response_bytes" => config.max_response_bytes = value.extract()?,
        "report_only" => config.report_only = string_list(Some(value), name)?.unwrap_or_default(),
        "proxy" => config.proxy = value.extract()?,
        "headers" => config.headers = super::transport::headers(Some(value))?,
        "revocations" => config.revocations = value.extract()?,
        "revocation_horizon" => config.revocation_horizon = value.extract()?,
        other => return Err(from_env::unexpected("Verifier", other)),
    }
    Ok(())
}

#[pymethods]
impl PyVerifier {
    #[new]
    #[pyo3(signature = (
        issuer, *, jwks_uri = None, audience = None, allowed_azp = None, algorithms = None,
        leeway = 60, verify_issuer = true, required_claims = None, token_types = Some(vec!["Bearer".to_string()]),
        max_lifetime = None, max_token_bytes = 16384, cache_size = 10_000, jwks_ttl = 300.0, jwks_cooldown = 5.0,
        jwks_max_stale = 86400.0, http_timeout = 5.0, ca_bundle = None,
        max_response_bytes = 1_048_576, report_only = None, proxy = None, headers = None,
        revocations = None, revocation_horizon = 86_400
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        issuer: Given<String>,
        jwks_uri: Option<String>,
        audience: Option<&Bound<'_, PyAny>>,
        allowed_azp: Option<&Bound<'_, PyAny>>,
        algorithms: Option<&Bound<'_, PyAny>>,
        leeway: i64,
        verify_issuer: bool,
        required_claims: Option<&Bound<'_, PyAny>>,
        token_types: Option<Vec<String>>,
        max_lifetime: Option<i64>,
        max_token_bytes: i64,
        cache_size: i64,
        jwks_ttl: f64,
        jwks_cooldown: f64,
        jwks_max_stale: f64,
        http_timeout: f64,
        ca_bundle: Option<PathBuf>,
        max_response_bytes: i64,
        report_only: Option<&Bound<'_, PyAny>>,
        proxy: Option<String>,
        headers: Option<&Bound<'_, PyAny>>,
        revocations: Option<String>,
        revocation_horizon: i64,
    ) -> PyResult<Self> {
        let issuer = match issuer {
            // From `from_env`, which has applied every setting already.
            Given::Prepared(prepared) => {
                return Ok(PyVerifier {
                    inner: prepared.get().take()?,
                })
            }
            Given::Value(issuer) => issuer,
        };
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
        config.max_lifetime = max_lifetime;
        config.max_token_bytes = max_token_bytes;
        config.cache_size = cache_size;
        config.jwks_ttl = jwks_ttl;
        config.jwks_cooldown = jwks_cooldown;
        config.jwks_max_stale = jwks_max_stale;
        config.http_timeout = http_timeout;
        config.ca_bundle = ca_bundle;
        config.max_response_bytes = max_response_bytes;
        config.report_only = string_list(report_only, "report_only")?.unwrap_or_default();
        config.proxy = proxy;
        config.headers = super::transport::headers(headers)?;
        config.revocations = revocations;
        config.revocation_horizon = revocation_horizon;
        Ok(PyVerifier {
            inner: Arc::new(Verifier::new(config)?),
        })
    }

    /// A verifier configured from KEYCLOAK_URL, KEYCLOAK_REALM (default "dls"),
    /// KEYCLOAK_VERIFY_ISS, KEYCLOAK_ALLOWED_AZP, KEYCLOAK_AUDIENCE and KEYCLOAK_JWKS_URL; the
    /// keyword arguments (those of the constructor) win. Returns an instance of `cls`.
    #[classmethod]
    #[pyo3(signature = (**overrides))]
    fn from_env<'py>(
        cls: &Bound<'py, PyType>,
        overrides: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut config = VerifierConfig::from_env(from_env::var)?;
        for (name, value) in overrides.into_iter().flatten() {
            apply(&mut config, name.cast::<PyString>()?.to_str()?, &value)?;
        }
        let inner = Arc::new(Verifier::new(config)?);
        cls.call1((Prepared::new(inner),))
    }

    #[getter]
    fn issuer(&self) -> &str {
        self.inner.issuer()
    }

    /// The claims as a fresh dict. The cache probe runs with the GIL held: a hit takes less
    /// time than releasing and re-taking the GIL would, and hands no GIL switch to other
    /// threads. Only a miss (the signature check, and any key fetch) releases it.
    fn verify<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let claims = with_token(token, |t| match self.inner.lookup(t)? {
            Lookup::Hit(claims) => Ok(claims),
            Lookup::Miss(uncached) => {
                Ok(py.detach(|| self.inner.verify_uncached_blocking(uncached))?)
            }
        })?;
        convert::claims(py, &claims)
    }

    /// The claims, or None when a key fetch is needed first. Never touches the network.
    fn _verify_now<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let claims = with_token(token, |t| match self.inner.lookup(t)? {
            Lookup::Hit(claims) => Ok(Some(claims)),
            Lookup::Miss(uncached) => Ok(py.detach(|| self.inner.verify_uncached_now(uncached))?),
        })?;
        claims.map(|c| convert::claims(py, &c)).transpose()
    }

    /// An awaitable for the full verify, key fetches included, run on the shared runtime.
    fn _verify_fetching<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let token = with_token(token, |t| Ok(t.to_owned()))?;
        let inner = self.inner.clone();
        future_into_py(
            py,
            async move { Ok(ClaimsObject(inner.verify(&token).await?)) },
        )
    }

    /// Fetches the key set now; raises KeySetUnavailable if that fails (held keys stay in use).
    fn refresh_keys(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.clone();
        Ok(py.detach(|| crate::runtime::block_on(inner.refresh_keys()))?)
    }

    /// The key set's state for readiness probes; no I/O.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let h = self.inner.health();
        let out = PyDict::new(py);
        out.set_item("ready", h.ready)?;
        out.set_item("keys", h.keys)?;
        out.set_item("key_set_age", h.age)?;
        out.set_item("stale", h.stale)?;
        out.set_item("last_error", h.last_error)?;
        out.set_item("last_success", h.last_success)?;
        let r = self.inner.revocations_health();
        let revocations = PyDict::new(py);
        revocations.set_item("shared", r.shared)?;
        revocations.set_item("connected", r.connected)?;
        revocations.set_item("entries", r.entries)?;
        revocations.set_item("pending", r.pending)?;
        revocations.set_item("last_error", r.last_error)?;
        out.set_item("revocations", revocations)?;
        Ok(out)
    }

    /// Revokes a session, subject, client or token id: InvalidToken code "revoked" from now
    /// on, here at once and (with a Redis URL) on every verifier sharing it.
    #[pyo3(signature = (*, sid = None, sub = None, azp = None, jti = None, not_before = None))]
    fn revoke(
        &self,
        sid: Option<String>,
        sub: Option<String>,
        azp: Option<String>,
        jti: Option<String>,
        not_before: Option<f64>,
    ) -> PyResult<()> {
        Ok(self.inner.revoke(Revocation {
            sid,
            sub,
            azp,
            jti,
            not_before,
        })?)
    }

    /// A verifier of this issuer's back-channel logout tokens for `client_id` (same keys).
    fn _logout_verifier(&self, client_id: &str) -> PyResult<PyVerifier> {
        Ok(PyVerifier {
            inner: Arc::new(self.inner.logout_verifier(client_id)?),
        })
    }

    /// An awaitable: True the first time this logout token id is seen (until `expires`, Unix
    /// seconds), in this process and, when shared, in Redis.
    fn _first_use_async<'py>(
        &self,
        py: Python<'py>,
        jti: String,
        expires: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        future_into_py(py, async move { Ok(inner.first_use(&jti, expires).await) })
    }

    /// Fetches the key set now unless a usable one is held; raises KeySetUnavailable.
    fn warm(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.clone();
        Ok(py.detach(|| crate::runtime::block_on(inner.warm()))?)
    }

    /// An awaitable for `warm`, run on the shared runtime.
    fn warm_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        future_into_py(py, async move { Ok(inner.warm().await?) })
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
