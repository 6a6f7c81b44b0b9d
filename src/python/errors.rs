//! Core errors -> the exception classes of `tokenward.errors`. Those stay defined in Python so
//! that `ConfigError` can also be a `ValueError` and every class pickles as a plain Python one;
//! `import_exception!` binds each (imported once, on first use).
//!
//! With `From<Error> for PyErr`, `?` converts a core error wherever a `PyResult` is returned.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::{Code, Error};

mod classes {
    pyo3::import_exception!(tokenward.errors, InvalidToken);
    pyo3::import_exception!(tokenward.errors, ExpiredToken);
    pyo3::import_exception!(tokenward.errors, KeySetUnavailable);
    pyo3::import_exception!(tokenward.errors, TokenRequestError);
    pyo3::import_exception!(tokenward.errors, ConfigError);
}

use classes::{ConfigError, ExpiredToken, InvalidToken, KeySetUnavailable, TokenRequestError};

/// The exception instance, made at once: `ConfigError` and `TokenRequestError` take keyword-only
/// arguments, which a lazily built `PyErr` cannot pass.
fn exception(py: Python<'_>, e: Error) -> PyResult<PyErr> {
    let message = e.to_string();
    let instance = match e {
        Error::InvalidToken { code, .. } => {
            let args = (message, code.as_str());
            if code == Code::Expired {
                py.get_type::<ExpiredToken>().call1(args)?
            } else {
                py.get_type::<InvalidToken>().call1(args)?
            }
        }
        Error::KeySetUnavailable(_) => py.get_type::<KeySetUnavailable>().call1((message,))?,
        Error::TokenRequest(failure) => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("status", failure.status)?;
            kwargs.set_item("error", failure.error)?;
            kwargs.set_item("retryable", failure.retryable)?;
            kwargs.set_item("transport", failure.transport.map(|t| t.as_str()))?;
            py.get_type::<TokenRequestError>()
                .call((message,), Some(&kwargs))?
        }
        Error::Config { setting, .. } => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("setting", setting)?;
            py.get_type::<ConfigError>()
                .call((message,), Some(&kwargs))?
        }
    };
    Ok(PyErr::from_value(instance))
}

impl From<Error> for PyErr {
    /// Attaches to the interpreter (free when the caller already is, as every wrapper is after
    /// its `detach`; a future's error is converted on a runtime thread, which attaches briefly).
    fn from(e: Error) -> PyErr {
        // Should building the exception itself fail, that failure is what the caller sees.
        Python::attach(|py| exception(py, e).unwrap_or_else(|failure| failure))
    }
}
