//! `tokenward._native.SigningKey`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::{Map, Value};

use super::convert;
use crate::error::Error;
use crate::sign::SigningKey;

#[pyclass(frozen, name = "SigningKey", module = "tokenward._native")]
pub struct PySigningKey {
    inner: SigningKey,
}

fn text(value: &Bound<'_, PyAny>, setting: &str) -> PyResult<String> {
    if let Ok(s) = value.extract::<String>() {
        return Ok(s);
    }
    if let Ok(b) = value.extract::<Vec<u8>>() {
        return Ok(String::from_utf8(b).map_err(|_| Error::config(setting, "is not UTF-8"))?);
    }
    Err(Error::config(setting, "must be str or bytes").into())
}

#[pymethods]
impl PySigningKey {
    #[staticmethod]
    #[pyo3(signature = (alg = "RS256", kid = None))]
    fn generate(py: Python<'_>, alg: &str, kid: Option<String>) -> PyResult<Self> {
        let inner = py.detach(|| SigningKey::generate(alg, kid))?;
        Ok(PySigningKey { inner })
    }

    #[staticmethod]
    #[pyo3(signature = (pem, alg, kid = None))]
    fn from_pem(pem: &Bound<'_, PyAny>, alg: &str, kid: Option<String>) -> PyResult<Self> {
        let pem = zeroize::Zeroizing::new(text(pem, "private_key")?);
        let inner = SigningKey::from_pem(&pem, alg, kid)?;
        Ok(PySigningKey { inner })
    }

    #[getter]
    fn kid(&self) -> &str {
        self.inner.kid()
    }

    #[getter]
    fn alg(&self) -> &'static str {
        self.inner.alg_name()
    }

    fn public_jwk<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::value(py, self.inner.public_jwk())
    }

    fn private_pem(&self) -> &str {
        self.inner.private_pem()
    }

    /// The private key as a JWK dict (public members and kid included).
    fn private_jwk<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = self.inner.private_jwk()?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| PyValueError::new_err(e.to_string()))?;
        convert::value(py, &value)
    }

    #[pyo3(signature = (claims_json, header_json = None))]
    fn sign(&self, claims_json: &str, header_json: Option<&str>) -> PyResult<String> {
        let overrides: Option<Map<String, Value>> = match header_json {
            None => None,
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|_| Error::config("header_json", "must be a JSON object"))?,
            ),
        };
        Ok(self
            .inner
            .sign(claims_json.as_bytes(), overrides.as_ref())?)
    }

    fn __repr__(&self) -> String {
        format!(
            "SigningKey(alg={:?}, kid={:?})",
            self.inner.alg_name(),
            self.inner.kid()
        )
    }
}
