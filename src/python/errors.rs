//! Core errors -> the exception classes of `tokenward.errors` (defined in Python so that
//! `ConfigError` can also be a `ValueError`).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

use crate::error::{Code, Error};

fn class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<Bound<'py, PyType>> {
    cell.get_or_try_init(py, || {
        let module = py.import("tokenward.errors")?;
        Ok::<_, PyErr>(module.getattr(name)?.cast_into::<PyType>()?.unbind())
    })
    .map(|c| c.bind(py).clone())
}

static INVALID_TOKEN: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EXPIRED_TOKEN: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static KEY_SET_UNAVAILABLE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TOKEN_REQUEST_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONFIG_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn build(py: Python<'_>, e: Error) -> PyResult<PyErr> {
    let message = e.to_string();
    let instance = match e {
        Error::InvalidToken { code, .. } => {
            let cls = if code == Code::Expired {
                class(py, &EXPIRED_TOKEN, "ExpiredToken")?
            } else {
                class(py, &INVALID_TOKEN, "InvalidToken")?
            };
            cls.call1((message, code.as_str()))?
        }
        Error::KeySetUnavailable(_) => {
            class(py, &KEY_SET_UNAVAILABLE, "KeySetUnavailable")?.call1((message,))?
        }
        Error::TokenRequest(failure) => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("status", failure.status)?;
            kwargs.set_item("error", failure.error)?;
            kwargs.set_item("retryable", failure.retryable)?;
            class(py, &TOKEN_REQUEST_ERROR, "TokenRequestError")?.call((message,), Some(&kwargs))?
        }
        Error::Config { setting, .. } => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("setting", setting)?;
            class(py, &CONFIG_ERROR, "ConfigError")?.call((message,), Some(&kwargs))?
        }
    };
    Ok(PyErr::from_value(instance))
}

pub(super) fn to_py(py: Python<'_>, e: Error) -> PyErr {
    build(py, e).unwrap_or_else(|lookup| {
        PyRuntimeError::new_err(format!("tokenward.errors is unusable: {lookup}"))
    })
}

/// For `.map_err` where no `py` is at hand (inside futures): attaches briefly.
pub(super) fn to_py_attached(e: Error) -> PyErr {
    Python::attach(|py| to_py(py, e))
}
